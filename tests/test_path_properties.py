"""Property-based tests of odd file names and command lines: whatever the
image's names and the command's arguments, the manifest lists them exactly,
round-trips through TOML, and resolving paths stays inside the image."""

from __future__ import annotations

import hashlib
import posixpath

from hypothesis import given, settings
from hypothesis import strategies as st

from gsc.errors import ImageError
from gsc.manifest import dumps, loads
from gsc.trust import Choices, Reader, select_trusted

from .fstree import Tree

# A name component: any Unicode a tar member name can carry (no '/', no NUL,
# no lone surrogates, which UTF-8 cannot encode), including spaces, quotes,
# backslashes, newlines and non-ASCII letters.
COMPONENT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=20,
).filter(lambda name: name not in (".", ".."))
PATHS = st.lists(COMPONENT, min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(PATHS, min_size=1, max_size=6, unique=True))
def test_odd_file_names_are_listed_exactly_and_round_trip(paths: list[str]) -> None:
    tree = Tree()
    files = {}
    for index, path in enumerate(paths):
        if any(other.startswith(path + "/") for other in paths):
            continue  # the path is also a directory of another one
        data = f"content {index}".encode()
        tree.file("/srv" + path, data)
        files["/srv" + path] = hashlib.sha256(data).hexdigest()

    fs = tree.read()
    selection = select_trusted(fs.entries, Reader(), Choices())
    manifest = {
        "sgx": {
            "trusted_files": [
                {"uri": f"file:{path}", "sha256": digest}
                for path, digest in selection.trusted.items()
            ]
        }
    }

    assert dict(selection.trusted) == files
    assert loads(dumps(manifest)) == manifest


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_command_line_survives_the_manifest(argv: list[str]) -> None:
    manifest = {"loader": {"argv": argv}}

    assert loads(dumps(manifest))["loader"]["argv"] == argv


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "..", ".", "", "c"]), max_size=8),
    st.sampled_from(["../../etc", "/etc", "..", "b/../..", "c"]),
)
def test_resolving_never_leaves_the_image_root(parts: list[str], target: str) -> None:
    fs = Tree().dir("/a").dir("/a/b").symlink("/a/b/c", target).read()

    try:
        resolved = fs.resolve("/" + "/".join(parts))
    except ImageError as error:
        # A link to itself is a loop: a one-line error, never a hang.
        assert "too many levels of symbolic links" in str(error)
        return

    assert resolved.startswith("/")
    assert posixpath.normpath(resolved) == resolved
    assert ".." not in resolved.split("/")
