"""Tests for gsc.trust: which files of the image the enclave trusts."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import posixpath
import subprocess
import sys
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsc.image import Entry
from gsc.trust import (
    APP_FILES,
    EXCLUDED_DIRS,
    EXCLUDED_PATTERNS,
    RUNTIME_FILES,
    SECRET_PATTERNS,
    Choices,
    Reader,
    Selection,
    is_excluded,
    select_trusted,
)


def entry(path: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    data = path.encode()
    return Entry(
        path=path,
        kind="file",
        mode=mode,
        uid=uid,
        gid=gid,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def directory(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path=path, kind="dir", mode=mode, uid=uid, gid=gid)


def by_path(entries: Iterable[Entry]) -> dict[str, Entry]:
    return {e.path: e for e in entries}


@pytest.mark.parametrize(
    "path",
    [
        "/proc/cpuinfo",
        "/sys/kernel/x",
        "/dev/null",
        "/var/lib/dpkg/status",
        "/run/lock/x",
        "/tmp/scratch",
        "/boot/vmlinuz",
        "/gramine/app_files/entrypoint.manifest",
        "/gramine/app_files",
    ],
)
def test_excluded_directories(path: str) -> None:
    assert is_excluded(path)
    assert not Choices().wants_hash(path)


@pytest.mark.parametrize(
    "path",
    [
        "/etc/shadow",
        "/etc/shadow-",
        "/etc/gshadow",
        "/etc/gshadow-",
        "/etc/ssh/ssh_host_rsa_key",
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/security/opasswd",
        "/.dockerenv",
    ],
)
def test_secrets_are_excluded(path: str) -> None:
    assert is_excluded(path)


@pytest.mark.parametrize(
    "path",
    [
        "/etc/ssh/ssh_host_rsa_key.pub",
        "/etc/passwd",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/variable/data",  # only the directory /var, not names starting with it
        "/gramine/app_files2/x",
        "/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine/libsysdb.so",
        "/temporary",
    ],
)
def test_ordinary_files_are_not_excluded(path: str) -> None:
    assert not is_excluded(path)
    assert Choices().wants_hash(path)


def test_runtime_files_are_allowed_not_trusted() -> None:
    runtime = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
    files = [entry(path) for path in [*runtime, "/etc/host.conf"]]

    selection = select_trusted(by_path(files), Reader(), Choices())

    assert all(is_excluded(path) for path in runtime)
    assert list(selection.trusted) == ["/etc/host.conf"]


def test_readable_by_owner_group_or_other() -> None:
    reader = Reader(uid=1000, gids=frozenset({1000, 50}))

    # Linux uses the owner's bits for the owner, even when others have more.
    assert reader.can_read(entry("/a", 0o400, uid=1000))
    assert not reader.can_read(entry("/b", 0o044, uid=1000, gid=50))
    assert reader.can_read(entry("/c", 0o040, uid=0, gid=50))
    assert not reader.can_read(entry("/d", 0o404, uid=0, gid=50))
    assert reader.can_read(entry("/e", 0o004, uid=0, gid=0))
    assert not reader.can_read(entry("/f", 0o640, uid=0, gid=0))


def test_root_reads_everything() -> None:
    assert Reader().can_read(entry("/root-only", 0o000, uid=5, gid=5))


def test_unreadable_files_are_left_out_and_reported() -> None:
    files = [
        entry("/srv/secret.txt", 0o600),
        entry("/srv/notes.txt", 0o644),
        entry("/srv/group.txt", 0o640, gid=1000),
        entry("/etc/a-private", 0o600),
    ]

    selection = select_trusted(
        by_path(files), Reader(1000, frozenset({1000})), Choices()
    )

    assert list(selection.trusted) == ["/srv/group.txt", "/srv/notes.txt"]
    assert selection.unreadable == ("/etc/a-private", "/srv/secret.txt")


def test_allowed_paths_are_never_trusted() -> None:
    files = [entry("/app/config.json"), entry("/app/main.py")]

    selection = select_trusted(
        by_path(files), Reader(), Choices(allowed=frozenset({"/app/config.json"}))
    )

    assert list(selection.trusted) == ["/app/main.py"]


def test_files_without_hash_are_not_trusted() -> None:
    unhashed = Entry("/usr/share/doc/x", "file", 0o644, 0, 0, size=10)

    selection = select_trusted(by_path([unhashed, entry("/x")]), Reader(), Choices())

    assert list(selection.trusted) == ["/x"]


def test_trusted_files_are_sorted_with_their_hash_and_total_size() -> None:
    paths = ["/usr/bin/z", "/app/b", "/app/a", "/etc/shadow", "/lib/c"]
    files = [entry(path) for path in paths]

    selection = select_trusted(by_path(files), Reader(), Choices())

    kept = sorted(p for p in paths if p != "/etc/shadow")
    assert list(selection.trusted) == kept
    for path in kept:
        assert selection.trusted[path] == hashlib.sha256(path.encode()).hexdigest()
    assert selection.total_size == sum(len(path) for path in kept)
    assert selection.unreadable == ()


def test_only_regular_files_are_trusted() -> None:
    entries = [
        directory("/app"),
        entry("/app/main.py"),
        Entry("/app/link.py", "symlink", 0o777, 0, 0, target="main.py"),
        Entry("/app/pipe", "other", 0o644, 0, 0),
    ]

    selection = select_trusted(by_path(entries), Reader(), Choices())

    assert list(selection.trusted) == ["/app/main.py"]


APP = Reader(uid=1000, gids=frozenset({1000}))


def test_files_in_a_directory_the_user_cannot_search_are_unreadable() -> None:
    entries = [
        directory("/root", 0o700),
        entry("/root/notes.txt", 0o644),
        directory("/srv", 0o755),
        directory("/srv/private", 0o750, gid=50),
        directory("/srv/private/deep", 0o755),
        entry("/srv/private/deep/data", 0o644),
        entry("/srv/open", 0o644),
    ]

    selection = select_trusted(by_path(entries), APP, Choices())

    assert list(selection.trusted) == ["/srv/open"]
    assert selection.unreadable == ("/root/notes.txt", "/srv/private/deep/data")


def test_search_permission_alone_is_enough_to_reach_a_file() -> None:
    entries = [
        directory("/home", 0o711),
        directory("/home/team", 0o710, gid=1000),
        directory("/home/me", 0o100, uid=1000),
        entry("/home/team/shared.txt", 0o644),
        entry("/home/me/own.txt", 0o600, uid=1000),
    ]

    selection = select_trusted(by_path(entries), APP, Choices())

    assert list(selection.trusted) == ["/home/me/own.txt", "/home/team/shared.txt"]


def test_root_reaches_files_in_closed_directories() -> None:
    entries = [directory("/root", 0o700), entry("/root/notes.txt", 0o600, uid=5)]

    selection = select_trusted(by_path(entries), Reader(), Choices())

    assert list(selection.trusted) == ["/root/notes.txt"]


def test_allowed_directory_without_trailing_slash_covers_its_files() -> None:
    files = [entry("/app/cache/a"), entry("/app/cache/b/c"), entry("/app/cachet")]
    choices = Choices(allowed=frozenset({"/app/cache"}))

    selection = select_trusted(by_path(files), Reader(), choices)

    assert list(selection.trusted) == ["/app/cachet"]
    assert choices.is_allowed("/app/cache/b/c")
    assert not choices.wants_hash("/app/cache/a")


def test_user_trusted_file_under_an_excluded_directory_is_hashed() -> None:
    choices = Choices(trusted=frozenset({"/var/lib/app/settings"}), exclude=("/usr/*",))

    assert choices.wants_hash("/var/lib/app/settings")
    assert not choices.wants_hash("/var/lib/app/other")
    assert choices.leaves_out("/usr/share/doc/x")


def test_volumes_are_left_out_but_not_their_neighbours() -> None:
    files = [entry("/data/a"), entry("/data2/b"), entry("/srv/x")]
    choices = Choices(run_time_dirs=("/data", "/srv/"))

    selection = select_trusted(by_path(files), Reader(), choices)

    assert list(selection.trusted) == ["/data2/b"]


# ---------------------------------------------------------------------------
# The compiled choices against the rules as first written: one test per
# directory and glob, with `any()`.


def reference_under(path: str, directory: str) -> bool:
    top = directory.rstrip("/") or "/"
    return path == top or path.startswith(top + "/")


def reference_excluded(path: str) -> bool:
    return (
        any(reference_under(path, d) for d in (*EXCLUDED_DIRS, APP_FILES))
        or path in RUNTIME_FILES
        or any(
            fnmatch.fnmatchcase(path, p) for p in (*SECRET_PATTERNS, *EXCLUDED_PATTERNS)
        )
    )


def reference_allowed(choices: Choices, path: str) -> bool:
    return any(reference_under(path, d) for d in choices.allowed)


def reference_leaves_out(choices: Choices, path: str) -> bool:
    return (
        reference_excluded(path)
        or reference_allowed(choices, path)
        or any(reference_under(path, d) for d in choices.run_time_dirs)
        or any(fnmatch.fnmatchcase(path, glob) for glob in choices.exclude)
    )


def reference_wants_hash(choices: Choices, path: str) -> bool:
    if reference_allowed(choices, path):
        return False
    trusted = any(reference_under(path, d) for d in choices.trusted)
    return trusted or not reference_leaves_out(choices, path)


# Names that the built-in rules and the choices below often hit, and some
# that they nearly hit.
COMPONENTS = st.one_of(
    st.sampled_from(
        [
            "etc",
            "var",
            "variable",
            "tmp",
            "gramine",
            "app_files",
            "shadow",
            "shadow-",
            "ssh",
            "ssh_host_rsa_key",
            "ssh_host_rsa_key.pub",
            "rc.d",
            "hosts",
            "app",
            "cache",
            "x.pyc",
            ".dockerenv",
            "",
        ]
    ),
    st.text(st.characters(exclude_characters="/"), max_size=4),
)
PATHS = st.lists(COMPONENTS, min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)
DIRECTORIES = st.builds(
    lambda path, slash: path + "/" if slash else path, PATHS, st.booleans()
) | st.sampled_from(["/", "//", "/etc/", "/app"])
GLOBS = st.lists(
    st.sampled_from(
        ["*", "?", "/", "etc", "app", ".pyc", "[a-c]", "[!x]", "[", "]", "\\", "-"]
    ),
    max_size=6,
).map("".join)
CHOICES = st.builds(
    Choices,
    allowed=st.frozensets(DIRECTORIES, max_size=3),
    trusted=st.frozensets(DIRECTORIES, max_size=3),
    exclude=st.lists(GLOBS, max_size=3).map(tuple),
    run_time_dirs=st.lists(DIRECTORIES, max_size=3).map(tuple),
)


@settings(max_examples=300)
@given(CHOICES, st.lists(PATHS, min_size=1, max_size=10))
def test_choices_agree_with_the_rules(choices: Choices, paths: list[str]) -> None:
    for path in paths:
        assert is_excluded(path) == reference_excluded(path), path
        assert choices.is_allowed(path) == reference_allowed(choices, path), path
        assert choices.leaves_out(path) == reference_leaves_out(choices, path), path
        assert choices.wants_hash(path) == reference_wants_hash(choices, path), path


def test_several_excluded_globs_each_count() -> None:
    choices = Choices(exclude=("*.pyc", "/srv/[ab]?", "/opt/*/cache/*"))

    assert choices.leaves_out("/app/x.pyc")
    assert choices.leaves_out("/srv/b1")
    assert choices.leaves_out("/opt/tool/cache/data")
    assert not choices.leaves_out("/srv/c1")
    assert not choices.leaves_out("/srv/a12")
    assert not choices.leaves_out("/opt/tool/data")


def reference_selection(
    entries: dict[str, Entry], reader: Reader, choices: Choices
) -> Selection:
    """What select_trusted should give, walking up each file's directories."""

    def reaches(path: str) -> bool:
        parent = posixpath.dirname(path)
        while parent != "/":
            directory = entries.get(parent)
            if directory is not None and not reader.can_search(directory):
                return False
            parent = posixpath.dirname(parent)
        return True

    files = sorted(
        (e for e in entries.values() if e.kind == "file" and e.sha256),
        key=lambda e: e.path,
    )
    kept = [e for e in files if not reference_leaves_out(choices, e.path)]
    readable = [e for e in kept if reader.can_read(e) and reaches(e.path)]
    return Selection(
        {e.path: e.sha256 for e in readable},
        tuple(e.path for e in kept if e not in readable),
        sum(e.size for e in readable),
    )


@st.composite
def trees(draw: st.DrawFn) -> dict[str, Entry]:
    """Files and directories under a few directories, with varied owners."""
    entries = {}
    # An image's paths never hold an empty component ("//" is its own
    # dirname) nor a lone surrogate, so such paths are left out here.
    paths = PATHS.filter(
        lambda path: (
            "" not in path.split("/")[1:]
            and not any("\ud800" <= char <= "\udfff" for char in path)
        )
    )
    for path in draw(st.lists(paths, min_size=1, max_size=8, unique=True)):
        parts = path.split("/")
        for depth in range(2, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in entries:
                mode = draw(st.sampled_from([0o755, 0o750, 0o700, 0o711, 0o100]))
                entries[parent] = directory(
                    parent, mode, gid=draw(st.sampled_from([0, 50]))
                )
        if path not in entries:
            mode = draw(st.sampled_from([0o644, 0o640, 0o600, 0o400, 0o004]))
            uid = draw(st.sampled_from([0, 1000]))
            entries[path] = entry(path, mode, uid=uid)
    return entries


@settings(max_examples=200)
@given(trees(), st.sampled_from([Reader(), APP, Reader(50, frozenset({50}))]), CHOICES)
def test_selection_agrees_with_the_rules(
    entries: dict[str, Entry], reader: Reader, choices: Choices
) -> None:
    assert select_trusted(entries, reader, choices) == reference_selection(
        entries, reader, choices
    )


def test_hash_rules_name_the_choices_that_decide_what_is_hashed() -> None:
    base = Choices(
        allowed=frozenset({"/data/", "/logs/"}),
        trusted=frozenset({"/var/lib/app/"}),
        exclude=("*.pyc",),
        run_time_dirs=("/srv",),
    )
    same = Choices(
        allowed=frozenset({"/logs/", "/data/"}),
        trusted=frozenset({"/var/lib/app/"}),
        exclude=("*.pyc",),
        run_time_dirs=("/srv",),
    )
    others = [
        dataclasses.replace(base, allowed=frozenset({"/data/"})),
        dataclasses.replace(base, trusted=frozenset()),
        dataclasses.replace(base, exclude=("*.pyo",)),
        dataclasses.replace(base, run_time_dirs=()),
        Choices(),
    ]

    assert same.hash_rules == base.hash_rules
    names = {choices.hash_rules for choices in [base, *others]}
    assert len(names) == len(others) + 1


def test_hash_rules_are_the_same_in_every_process() -> None:
    # The layer cache outlives the process: the name must not depend on the
    # order in which this process happens to iterate a set.
    program = (
        "from gsc.trust import Choices;"
        "print(Choices(allowed=frozenset({'/a/', '/b/', '/c/', '/d/'}),"
        " trusted=frozenset({'/x/', '/y/', '/z/'})).hash_rules)"
    )
    names = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(4)
    }
    assert len(names) == 1 and next(iter(names)).startswith("sha256:")
