"""Tests for gsc.image: an image's configuration and its file system as a stream."""

from __future__ import annotations

import hashlib
import random
import tarfile
from typing import Any

import pytest

from gsc.errors import ImageError
from gsc.image import FileSystem, image_config, read_filesystem

from .fstree import ELF, Tree, chunks

OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
PASSWD = b"root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\n"
LD_SO_CONF = b"include /etc/ld.so.conf.d/*.conf\n"
LIBC_CONF = b"/usr/local/lib\n"
NOTES = b"plain text, not executable\n"
SCRIPT = b"#!/bin/sh -e\necho hello\n"
# Over 1 MiB, and not a multiple of any block size in play.
BIG = random.Random(7).randbytes((1 << 20) + 12_345)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sample() -> Tree:
    return (
        Tree()
        .dir("/")
        .dir("/etc")
        .file("/etc/os-release", OS_RELEASE)
        .file("/etc/passwd", PASSWD)
        .file("/etc/group", GROUP)
        .file("/etc/ld.so.conf", LD_SO_CONF)
        .dir("/etc/ld.so.conf.d")
        .file("/etc/ld.so.conf.d/libc.conf", LIBC_CONF)
        .dir("/usr")
        .dir("/usr/bin")
        .program("/usr/bin/tool")
        .hardlink("/usr/bin/tool-again", "/usr/bin/tool")
        .symlink("/usr/bin/sh", "/usr/bin/tool")
        .symlink("/bin", "usr/bin")
        .dir("/app", 0o750)
        .owned(1000, 1000)
        .file("/app/notes.txt", NOTES, 0o640)
        .owned(1000, 1000)
        .program("/app/run.sh", SCRIPT)
        .fifo("/app/pipe")
        .dir("/data")
        .file("/data/big.bin", BIG)
    )


REGULAR = {
    "/etc/os-release": OS_RELEASE,
    "/etc/passwd": PASSWD,
    "/etc/group": GROUP,
    "/etc/ld.so.conf": LD_SO_CONF,
    "/etc/ld.so.conf.d/libc.conf": LIBC_CONF,
    "/usr/bin/tool": ELF,
    "/usr/bin/tool-again": ELF,
    "/app/notes.txt": NOTES,
    "/app/run.sh": SCRIPT,
    "/data/big.bin": BIG,
}


@pytest.fixture(scope="module")
def sample_tar() -> bytes:
    return sample().tar()


@pytest.mark.parametrize("size", [7, 1000, 65_536, 1 << 30])
def test_hashes_equal_sha256_of_content_whatever_the_chunk_size(
    sample_tar: bytes, size: int
) -> None:
    fs = read_filesystem(chunks(sample_tar, size), lambda path: True)

    found = {e.path: (e.sha256, e.size) for e in fs.files()}
    assert found == {p: (sha(data), len(data)) for p, data in REGULAR.items()}


def test_empty_chunks_in_the_stream_are_harmless(sample_tar: bytes) -> None:
    pieces = [piece for chunk in chunks(sample_tar, 4096) for piece in (b"", chunk)]

    fs = read_filesystem(iter(pieces), lambda path: True)

    entry = fs.get("/data/big.bin")
    assert entry is not None and entry.sha256 == sha(BIG)


def test_kinds_of_entries(sample_tar: bytes) -> None:
    fs = read_filesystem(chunks(sample_tar, 1000), lambda path: True)

    kinds = {path: entry.kind for path, entry in fs.entries.items()}
    assert kinds["/"] == "dir"
    assert kinds["/etc/ld.so.conf.d"] == "dir"
    assert kinds["/app/pipe"] == "other"
    assert kinds["/bin"] == "symlink"
    assert kinds["/usr/bin/sh"] == "symlink"
    assert set(kinds.values()) == {"dir", "file", "symlink", "other"}


def test_symbolic_links_keep_their_target_as_written(sample_tar: bytes) -> None:
    fs = read_filesystem(chunks(sample_tar, 1000), lambda path: True)

    relative, absolute = fs.get("/bin"), fs.get("/usr/bin/sh")
    assert relative is not None and relative.target == "usr/bin"
    assert absolute is not None and absolute.target == "/usr/bin/tool"


def test_hard_link_is_a_file_with_its_target_hash_and_head(sample_tar: bytes) -> None:
    fs = read_filesystem(chunks(sample_tar, 1000), lambda path: True)

    link = fs.get("/usr/bin/tool-again")
    assert link is not None
    assert (link.kind, link.size, link.sha256) == ("file", len(ELF), sha(ELF))
    assert link.head == ELF[:256]


def test_hard_link_to_a_missing_file_is_not_a_file() -> None:
    tree = Tree().dir("/usr").hardlink("/usr/lost", "/usr/nowhere")

    entry = tree.read().get("/usr/lost")

    assert entry is not None and entry.kind == "other"


def test_owner_and_mode_are_kept(sample_tar: bytes) -> None:
    fs = read_filesystem(chunks(sample_tar, 1000), lambda path: True)

    notes = fs.get("/app/notes.txt")
    assert notes is not None
    assert (notes.uid, notes.gid, notes.mode) == (1000, 1000, 0o640)
    app = fs.get("/app")
    assert app is not None and app.mode == 0o750


def test_executables_keep_their_head_and_other_files_do_not(
    sample_tar: bytes,
) -> None:
    fs = read_filesystem(chunks(sample_tar, 7), lambda path: True)

    heads = {e.path: e.head for e in fs.files()}
    assert heads["/usr/bin/tool"] == ELF[:256]
    assert heads["/usr/bin/tool"].startswith(b"\x7fELF")
    assert heads["/app/run.sh"] == SCRIPT
    assert heads["/app/notes.txt"] == b""
    assert heads["/data/big.bin"] == b""


def test_files_not_wanted_are_not_hashed(sample_tar: bytes) -> None:
    asked: list[str] = []

    def wants(path: str) -> bool:
        asked.append(path)
        return path != "/data/big.bin" and path != "/app/notes.txt"

    fs = read_filesystem(chunks(sample_tar, 1000), wants)

    big, notes = fs.get("/data/big.bin"), fs.get("/app/notes.txt")
    assert big is not None and (big.sha256, big.size) == ("", len(BIG))
    assert notes is not None and notes.sha256 == ""
    assert "/data/big.bin" in asked and "/app/notes.txt" in asked
    assert all(path.startswith("/") for path in asked)


def test_progress_counts_every_byte_read(sample_tar: bytes) -> None:
    counted: list[int] = []

    read_filesystem(chunks(sample_tar, 1000), lambda path: True, counted.append)

    # A hard link carries no data in the stream.
    streamed = {p: d for p, d in REGULAR.items() if p != "/usr/bin/tool-again"}
    assert sum(counted) == sum(len(data) for data in streamed.values())


def test_small_configuration_files_are_kept_whole() -> None:
    fs = sample().read(lambda path: False)

    assert fs.contents == {
        "/etc/os-release": OS_RELEASE,
        "/etc/passwd": PASSWD,
        "/etc/group": GROUP,
        "/etc/ld.so.conf": LD_SO_CONF,
        "/etc/ld.so.conf.d/libc.conf": LIBC_CONF,
    }
    assert fs.text("/etc/passwd") == PASSWD.decode()
    assert fs.text("/app/notes.txt") is None


def test_base_places_members_under_the_archived_directory() -> None:
    # What the engine sends for an archive of /gramine/meson_build_output.
    tree = (
        Tree()
        .dir("/meson_build_output")
        .dir("/meson_build_output/lib")
        .file("/meson_build_output/lib/libsysdb.so", ELF)
        .hardlink(
            "/meson_build_output/lib/copy.so", "meson_build_output/lib/libsysdb.so"
        )
        .symlink("/meson_build_output/lib/link.so", "libsysdb.so")
    )

    fs = read_filesystem(chunks(tree.tar(), 1000), lambda p: True, base="/gramine")

    assert set(fs.entries) == {
        "/gramine/meson_build_output",
        "/gramine/meson_build_output/lib",
        "/gramine/meson_build_output/lib/libsysdb.so",
        "/gramine/meson_build_output/lib/copy.so",
        "/gramine/meson_build_output/lib/link.so",
    }
    copy = fs.get("/gramine/meson_build_output/lib/copy.so")
    assert copy is not None and (copy.kind, copy.sha256) == ("file", sha(ELF))


def test_names_with_dot_slash_are_made_absolute() -> None:
    tree = Tree().dir("./").dir("./etc").file("./etc/passwd", PASSWD)

    fs = tree.read()

    assert set(fs.entries) == {"/", "/etc", "/etc/passwd"}
    assert fs.contents["/etc/passwd"] == PASSWD


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_names_that_are_not_utf8_are_skipped_and_reported(fmt: int) -> None:
    raw = b"data/caf\xe9.txt"  # Latin-1, as an old tool may have left it
    name = raw.decode("utf-8", "surrogateescape")
    tree = Tree().dir("/data").file(name, b"x").file("/data/fine.txt", b"y")

    fs = read_filesystem(chunks(tree.tar(fmt), 1000), lambda path: True)

    assert set(fs.entries) == {"/data", "/data/fine.txt"}
    assert len(fs.skipped_names) == 1
    skipped = fs.skipped_names[0].encode("utf-8", "surrogateescape")
    assert skipped == b"/" + raw


def test_garbage_is_an_image_error() -> None:
    with pytest.raises(ImageError, match="file system"):
        read_filesystem(iter([b"this is no tar archive" * 40]), lambda path: True)


def test_truncated_stream_is_an_image_error(sample_tar: bytes) -> None:
    cut = sample_tar[: len(sample_tar) // 2]

    with pytest.raises(ImageError):
        read_filesystem(chunks(cut, 1000), lambda path: True)


def links() -> FileSystem:
    return (
        Tree()
        .dir("/usr")
        .dir("/usr/bin")
        .dir("/usr/lib")
        .dir("/usr/lib/x86_64-linux-gnu")
        .file("/usr/lib/x86_64-linux-gnu/libc.so.6", ELF)
        .symlink("/lib", "usr/lib")
        .symlink("/bin", "usr/bin")
        .program("/usr/bin/python3.11")
        .symlink("/usr/bin/python3", "python3.11")
        .symlink("/usr/bin/python", "python3")
        .program("/usr/bin/dash")
        .symlink("/usr/bin/sh", "/bin/dash")
        .dir("/etc")
        .dir("/etc/alternatives")
        .symlink("/etc/alternatives/py", "../../usr/bin/python")
        .symlink("/loop-a", "loop-b")
        .symlink("/loop-b", "/loop-a")
        .symlink("/self", "self")
        .symlink("/deeper", "/deeper/x")
        .read()
    )


@pytest.mark.parametrize(
    ("path", "real"),
    [
        ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ("/usr/bin/sh", "/usr/bin/dash"),
        ("/usr/bin/python", "/usr/bin/python3.11"),
        ("/etc/alternatives/py", "/usr/bin/python3.11"),
        ("/usr/bin/../lib/./x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"),
        ("/../../usr/bin/dash", "/usr/bin/dash"),
        # `..` after a link leaves the link's target, not the link's directory.
        ("/lib/../bin/dash", "/usr/bin/dash"),
        ("//usr///bin/python3/", "/usr/bin/python3.11"),
        ("/usr/bin/missing", "/usr/bin/missing"),
        ("/", "/"),
    ],
)
def test_resolve_follows_links_inside_the_image(path: str, real: str) -> None:
    assert links().resolve(path) == real


def test_resolve_never_looks_at_the_host() -> None:
    # On the host /proc/self is a link; in this image it does not exist.
    assert links().resolve("/proc/self") == "/proc/self"


@pytest.mark.parametrize("path", ["/loop-a", "/self/x", "/deeper"])
def test_resolve_stops_on_a_loop(path: str) -> None:
    with pytest.raises(ImageError, match="symbolic links"):
        links().resolve(path)


def test_resolve_follows_a_long_chain_that_is_not_a_loop() -> None:
    # Linux follows up to 40 links in one lookup.
    tree = Tree().file("/end", b"x")
    for n in range(30):
        tree.symlink(f"/link{n}", f"/link{n + 1}" if n < 29 else "/end")

    assert tree.read().resolve("/link0") == "/end"


def inspect_output() -> dict[str, Any]:
    """Trimmed `docker inspect` output of a Python image."""
    return {
        "Id": "sha256:" + "ab" * 32,
        "RepoTags": ["python-app:latest"],
        "Size": 130_000_000,
        "Config": {
            "User": "app",
            "Env": [
                "PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin",
                "LANG=C.UTF-8",
                "JAVA_OPTS=-Dkey=value -Dother=1",
                "EMPTY=",
            ],
            "Cmd": ["serve", "--port=8080"],
            "Entrypoint": ["python3", "-m", "app"],
            "WorkingDir": "/srv",
            "Volumes": {"/var/data": {}, "/cache": {}},
            "Labels": {"org.opencontainers.image.title": "app"},
        },
        "RootFS": {"Type": "layers", "Layers": ["sha256:" + "01" * 32]},
    }


def test_image_config_from_inspect_output() -> None:
    attrs = inspect_output()

    config = image_config("python-app", attrs)

    assert config.id == attrs["Id"]
    assert config.name == "python-app"
    assert config.entrypoint == ("python3", "-m", "app")
    assert config.cmd == ("serve", "--port=8080")
    assert config.working_dir == "/srv"
    assert config.user == "app"
    assert config.volumes == ("/cache", "/var/data")
    assert config.layers == ("sha256:" + "01" * 32,)
    assert config.labels == {"org.opencontainers.image.title": "app"}


def test_environment_values_may_hold_equal_signs() -> None:
    config = image_config("python-app", inspect_output())

    env = dict(config.env)
    assert env["JAVA_OPTS"] == "-Dkey=value -Dother=1"
    assert env["EMPTY"] == ""
    assert [key for key, _ in config.env] == ["PATH", "LANG", "JAVA_OPTS", "EMPTY"]
    assert config.path_variable == "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin"


@pytest.mark.parametrize(
    "attrs",
    [
        {"Id": "sha256:" + "cd" * 32},
        {"Id": "sha256:" + "cd" * 32, "Config": None, "RootFS": None},
        {
            "Id": "sha256:" + "cd" * 32,
            "Config": {"Env": None, "Cmd": None, "Entrypoint": None, "Volumes": None},
        },
    ],
)
def test_image_config_when_inspect_output_lacks_keys(attrs: dict[str, Any]) -> None:
    config = image_config("bare", attrs)

    assert (config.entrypoint, config.cmd, config.env) == ((), (), ())
    assert (config.working_dir, config.user) == ("/", "")
    assert (config.volumes, config.layers, dict(config.labels)) == ((), (), {})
    # Docker's own PATH for a container whose image sets none.
    assert config.path_variable == (
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )
