"""Layers read from directories laid out as Docker's overlay2 driver keeps them.

The directories here are made by the test, with real whiteout devices and
real `trusted.` attributes, which only root may make and read.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from pathlib import Path

import pytest

from gsc.errors import ImageError
from gsc.hashing import DiskFile, HashPool, Record
from gsc.layerdirs import (
    StorageChanged,
    hash_files,
    layer_directories,
    walk_directory,
)
from gsc.layers import apply_layers, layer_of

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="whiteout devices and trusted. attributes need root"
)


def everything(path: str) -> bool:
    return True


def records_of(directory: Path, workers: int = 2) -> list[Record]:
    with HashPool(workers=workers) as pool:
        walk = walk_directory(directory, everything, pool, lambda n: None)
        hash_files(pool, [walk])
        pool.wait()
    return list(walk.records())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@needs_root
def test_files_links_whiteouts_and_opaque_directories(tmp_path: Path) -> None:
    layer = tmp_path / "diff"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc/passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    (layer / "bin").mkdir()
    (layer / "bin/tool").write_bytes(b"\x7fELF" + b"x" * 3000)
    (layer / "bin/tool").chmod(0o4755)
    os.link(layer / "bin/tool", layer / "bin/tool-again")
    (layer / "bin/sh").symlink_to("tool")
    os.mknod(layer / "bin/gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    os.mkfifo(layer / "fifo")
    (layer / "fifo").chmod(0o640)
    (layer / "opaque").mkdir()
    os.setxattr(layer / "opaque", "trusted.overlay.opaque", b"y")
    os.setxattr(layer / "bin", "trusted.overlay.impure", b"y")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(layer / "socket"))
        os.chown(layer / "etc/passwd", 1234, 5678)

        records = records_of(layer)

    by_path = {(r.path, r.kind): r for r in records}
    assert [r.path for r in records] == [
        "/bin",
        "/bin/gone",
        "/bin/sh",
        "/bin/tool",
        "/bin/tool-again",
        "/etc",
        "/etc/passwd",
        "/fifo",
        "/opaque",
        "/opaque",
    ]
    tool = by_path["/bin/tool", "file"]
    assert tool.mode == 0o4755
    assert tool.digest is not None
    assert tool.digest.hexdigest() == sha256(b"\x7fELF" + b"x" * 3000)
    assert tool.head == (b"\x7fELF" + b"x" * 3000)[:256]
    assert by_path["/bin/tool-again", "link"].target == "/bin/tool"
    assert by_path["/bin/sh", "symlink"].target == "tool"
    assert ("/bin/gone", "whiteout") in by_path
    assert ("/opaque", "opaque") in by_path
    assert by_path["/fifo", "other"].mode == 0o640
    passwd = by_path["/etc/passwd", "file"]
    assert (passwd.uid, passwd.gid) == (1234, 5678)
    assert passwd.kept == b"root:x:0:0::/root:/bin/sh\n"


@needs_root
def test_a_directory_layer_applies_like_a_tar_layer(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for directory in ("a", "b", "c"):
        (lower / directory).mkdir(parents=True)
        (lower / directory / "x").write_text(directory)
    upper.mkdir()
    os.mknod(upper / "a", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    (upper / "b").mkdir()
    os.setxattr(upper / "b", "trusted.overlay.opaque", b"y")
    (upper / "b/new").write_text("new")

    fs = apply_layers([layer_of(records_of(lower)), layer_of(records_of(upper))])

    assert sorted(fs.entries) == ["/b", "/b/new", "/c", "/c/x"]
    assert fs.entries["/b/new"].sha256 == sha256(b"new")


@needs_root
@pytest.mark.parametrize("workers", [0, 2])
def test_many_files_are_hashed_in_order_of_their_names(
    tmp_path: Path, workers: int
) -> None:
    layer = tmp_path / "diff"
    layer.mkdir()
    contents = {f"f{n:04d}": os.urandom(n * 37 % 5000) for n in range(300)}
    contents["large"] = os.urandom(3 << 20)
    for name, data in contents.items():
        (layer / name).write_bytes(data)

    records = records_of(layer, workers)

    assert [r.path for r in records] == sorted(f"/{name}" for name in contents)
    for record in records:
        assert record.digest is not None
        assert record.digest.hexdigest() == sha256(contents[record.path[1:]])


@needs_root
def test_names_are_in_byte_order_and_bad_names_are_skipped(tmp_path: Path) -> None:
    layer = tmp_path / "diff"
    layer.mkdir()
    names = [b"\xee\x80\x80", b"\xf5", b"a", b"\xffdir"]
    for name in names:
        (layer / os.fsdecode(name)).write_bytes(b"x")

    records = records_of(layer)

    assert [os.fsencode(r.path[1:]) for r in records] == sorted(names)
    kinds = {os.fsencode(r.path[1:]): r.kind for r in records}
    assert kinds == {
        b"\xee\x80\x80": "file",
        b"\xf5": "skipped",
        b"a": "file",
        b"\xffdir": "skipped",
    }


@needs_root
@pytest.mark.parametrize(
    "attribute", ["trusted.overlay.redirect", "trusted.overlay.metacopy"]
)
def test_overlay_features_docker_turns_off_are_refused(
    tmp_path: Path, attribute: str
) -> None:
    layer = tmp_path / "diff"
    (layer / "moved").mkdir(parents=True)
    os.setxattr(layer / "moved", attribute, b"/elsewhere")

    with pytest.raises(StorageChanged, match=attribute):
        records_of(layer)


def test_a_whiteout_name_is_refused(tmp_path: Path) -> None:
    layer = tmp_path / "diff"
    layer.mkdir()
    (layer / ".wh.file").write_bytes(b"")

    with pytest.raises(StorageChanged, match="whiteout"):
        records_of(layer)


def test_a_file_that_changes_size_while_read_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"12345")
    with HashPool(workers=1) as pool:
        pool.disk_files([DiskFile(str(path), 4)])
        with pytest.raises(ImageError, match="changed while it was read"):
            pool.wait()


class RecordingPool(HashPool):
    """A real pool that also notes the sizes of the files of each batch handed
    to it."""

    def __init__(self, **options: int) -> None:
        super().__init__(**options)
        self.batches: list[list[int]] = []

    def disk_files(self, files: list[DiskFile]) -> None:
        self.batches.append([file.size for file in files])
        super().disk_files(files)


def test_small_files_go_to_the_pool_during_the_walk_and_large_ones_after(
    tmp_path: Path,
) -> None:
    sizes = {
        "a": [10, 20],
        "b": [3_000_000, 5],
        "c": [1_000] * 70 + [400_000],
        "d": [2_000_000],
    }
    walks = []
    with RecordingPool(workers=2, budget=1 << 20) as pool:
        for name, files in sizes.items():
            layer = tmp_path / name
            layer.mkdir()
            for n, size in enumerate(files):
                (layer / f"f{n:03}").write_bytes(bytes([n % 251]) * size)
            walks.append(walk_directory(layer, everything, pool, lambda n: None))
        during_walk = [size for batch in pool.batches for size in batch]
        assert sorted(during_walk) == sorted([10, 20, 5, *[1_000] * 70, 400_000])
        assert max(map(len, pool.batches)) == 64

        hash_files(pool, walks)
        pool.wait()

    assert pool.batches[-2:] == [[3_000_000], [2_000_000]]
    # Paths alone wait in the queue: a file larger than the budget holds
    # none of it.
    assert pool.peak_in_flight == 0
    records = [r for walk in walks for r in walk.records() if r.kind == "file"]
    data = bytes([0]) * 3_000_000
    big = next(r for r in records if r.size == len(data))
    assert big.digest is not None and big.digest.hexdigest() == sha256(data)


# Directories as Docker's overlay2 driver and its layer store name them.


def chain_ids(diff_ids: list[str]) -> list[str]:
    chains = [diff_ids[0]]
    for diff_id in diff_ids[1:]:
        below = chains[-1]
        chains.append("sha256:" + sha256(f"{below} {diff_id}".encode()))
    return chains


def docker_root(tmp_path: Path, count: int) -> tuple[dict[str, object], Path]:
    """An image's inspect output and a Docker root holding its layers."""
    root = tmp_path / "docker"
    diff_ids = ["sha256:" + sha256(str(n).encode()) for n in range(count)]
    directories = []
    for n, chain in enumerate(chain_ids(diff_ids)):
        cache_id = sha256(f"cache {n}".encode())
        entry = root / "image/overlay2/layerdb/sha256" / chain.split(":")[1]
        entry.mkdir(parents=True)
        (entry / "diff").write_text(diff_ids[n])
        (entry / "cache-id").write_text(cache_id)
        directory = root / "overlay2" / cache_id / "diff"
        directory.mkdir(parents=True)
        directories.append(str(directory))
    data = {"UpperDir": directories[-1]}
    if count > 1:
        data["LowerDir"] = ":".join(reversed(directories[:-1]))
    inspected = {
        "GraphDriver": {"Name": "overlay2", "Data": data},
        "RootFS": {"Layers": diff_ids},
    }
    return inspected, root


def info_of(root: Path, *options: str) -> dict[str, object]:
    return {"DockerRootDir": str(root), "SecurityOptions": list(options)}


@needs_root
@pytest.mark.parametrize("count", [1, 4])
def test_the_layer_store_confirms_the_directories(tmp_path: Path, count: int) -> None:
    inspected, root = docker_root(tmp_path, count)

    directories = layer_directories(inspected, info_of(root, "name=seccomp"))

    assert directories is not None
    assert len(directories) == count
    data = inspected["GraphDriver"]["Data"]  # type: ignore[index]
    assert str(directories[-1]) == data["UpperDir"]


@needs_root
def test_directories_the_layer_store_does_not_confirm(tmp_path: Path) -> None:
    inspected, root = docker_root(tmp_path, 3)
    layers = inspected["RootFS"]["Layers"]  # type: ignore[index]
    data = inspected["GraphDriver"]["Data"]  # type: ignore[index]
    info = info_of(root)
    assert layer_directories(inspected, info) is not None

    assert layer_directories(inspected, info_of(root, "name=userns")) is None
    assert layer_directories(inspected, info_of(tmp_path / "elsewhere")) is None
    other_driver = {**inspected, "GraphDriver": {"Name": "btrfs", "Data": data}}
    assert layer_directories(other_driver, info) is None
    fewer = {**inspected, "RootFS": {"Layers": layers[1:]}}
    assert layer_directories(fewer, info) is None
    swapped_data = {**data, "LowerDir": ":".join(reversed(data["LowerDir"].split(":")))}
    swapped = {**inspected, "GraphDriver": {"Name": "overlay2", "Data": swapped_data}}
    assert layer_directories(swapped, info) is None

    top_chain = chain_ids(layers)[-1].split(":")[1]
    store = root / "image/overlay2/layerdb/sha256" / top_chain
    (store / "diff").write_text("sha256:" + "0" * 64)
    assert layer_directories(inspected, info) is None


def test_not_root_reads_the_saved_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inspected, root = docker_root(tmp_path, 2)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    assert layer_directories(inspected, info_of(root)) is None
