"""The layer reader against the real engine: the same file system as an export."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from gsc.engine import Engine
from gsc.hashing import HashPool
from gsc.image import FileSystem, read_filesystem
from gsc.layercache import LayerCache
from gsc.layerdirs import layer_directories
from gsc.layers import read_image

pytestmark = pytest.mark.engine

# What the engine adds to every container it creates (its "init layer"),
# and so to every export, over what the image holds.
INIT_LAYER = frozenset(
    {
        "/.dockerenv",
        "/dev/console",
        "/dev/pts",
        "/dev/shm",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/mtab",
        "/etc/resolv.conf",
    }
)

WHITEOUTS_DOCKERFILE = """\
FROM gsc-test/debian:12
RUN mkdir -p /w/keep /w/gone /w/opaque/sub /w/dir \\
    && echo a > /w/keep/a && ln /w/keep/a /w/keep/a-link \\
    && echo b > /w/gone/b && echo c > /w/opaque/sub/c \\
    && echo f > /w/file && echo x > /w/dir/x
RUN rm -rf /w/gone /w/opaque /w/file /w/dir /etc/os-release \\
    && mkdir -p /w/opaque /w/file && echo new > /w/opaque/new \\
    && echo in > /w/file/in && echo now-a-file > /w/dir \\
    && echo changed > /w/keep/a
RUN mkdir /same && echo same > /same/x && touch -d @1 /same/x /same
RUN echo same > /same/x && touch -d @1 /same/x /same
"""


def everything(path: str) -> bool:
    return True


def comparable(fs: FileSystem) -> dict[str, tuple[object, ...]]:
    # The export writes file type bits into the mode; a layer does not.
    return {
        e.path: (e.kind, e.mode & 0o7777, e.uid, e.gid, e.size, e.target, e.sha256)
        for e in fs.entries.values()
        if e.path not in INIT_LAYER
    }


@pytest.fixture(scope="module")
def engine(docker_client: docker.DockerClient) -> Engine:
    return Engine(docker_client)


@pytest.fixture(scope="module")
def whiteouts_image(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    context = tmp_path_factory.mktemp("whiteouts")
    (context / "Dockerfile").write_text(WHITEOUTS_DOCKERFILE, encoding="utf-8")
    tag = f"gsc-test/layers-whiteouts-{uuid.uuid4().hex[:12]}"
    image, _ = docker_client.images.build(
        path=str(context), tag=tag, network_mode="none", rm=True, forcerm=True
    )
    yield str(image.id)
    with contextlib.suppress(docker.errors.APIError):
        docker_client.images.remove(tag, force=True)


def export_of(engine: Engine, image_id: str) -> FileSystem:
    with engine.export_filesystem(image_id) as stream:
        return read_filesystem(stream, everything)


def check_same_as_export(engine: Engine, image_id: str, cache_dir: Path) -> None:
    expected = export_of(engine, image_id)
    cache = LayerCache(cache_dir)

    with HashPool() as pool:
        cold = read_image(engine, image_id, everything, cache, pool=pool)
    with HashPool() as warm_pool:
        warm = read_image(engine, image_id, everything, cache, pool=warm_pool)

    assert comparable(cold) == comparable(expected)
    assert cold.contents == expected.contents
    assert cold.skipped_names == expected.skipped_names
    assert pool.files_hashed > 1000
    assert (warm_pool.files_hashed, warm_pool.bytes_hashed) == (0, 0)
    assert warm == cold
    assert not cache.problems


@pytest.mark.parametrize("name", ["gsc-test/python-app", "gsc-test/user-app"])
def test_layers_give_the_file_system_of_the_export(
    engine: Engine, name: str, tmp_path: Path
) -> None:
    image_id = str(engine.inspect_image(name)["Id"])

    check_same_as_export(engine, image_id, tmp_path)


def test_whiteouts_opaque_directories_and_replaced_paths(
    engine: Engine, whiteouts_image: str, tmp_path: Path
) -> None:
    check_same_as_export(engine, whiteouts_image, tmp_path)

    fs = read_image(engine, whiteouts_image, everything, None)
    kinds = {p: e.kind for p, e in fs.entries.items() if p.startswith("/w/")}
    assert kinds == {
        "/w/keep": "dir",
        "/w/keep/a": "file",
        "/w/keep/a-link": "file",
        "/w/opaque": "dir",
        "/w/opaque/new": "file",
        "/w/file": "dir",
        "/w/file/in": "file",
        "/w/dir": "file",
    }
    assert "/etc/os-release" not in fs.entries


def test_a_layer_saved_as_a_link_to_an_identical_one(
    engine: Engine, whiteouts_image: str
) -> None:
    # The last two steps make byte for byte the same layer; the engine saves
    # the second as a link to the first.
    saved = b"".join(engine.save_image(whiteouts_image))
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        links = sum(1 for m in tar if m.name.endswith("/layer.tar") and m.issym())
    assert links >= 1

    fs = read_image(engine, whiteouts_image, everything, None)

    assert comparable(fs) == comparable(export_of(engine, whiteouts_image))


class SavingRefused:
    """The engine, for a reader that must not ask it to save the image."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def inspect_image(self, name: str) -> dict[str, Any]:
        return self._engine.inspect_image(name)

    def save_image(self, image_id: str) -> Iterator[bytes]:
        raise AssertionError("the saved image was asked for")


def directories_of(engine: Engine, image_id: str) -> list[Path]:
    if os.geteuid() != 0:
        pytest.skip("the engine's storage is readable by root only")
    inspected = engine.inspect_image(image_id)
    directories = layer_directories(inspected, engine.info())
    assert directories is not None, "this engine's layers should be readable"
    return directories


@pytest.mark.parametrize("name", ["gsc-test/python-app", "whiteouts"])
def test_storage_directories_give_the_layers_of_the_saved_image(
    engine: Engine, whiteouts_image: str, name: str, tmp_path: Path
) -> None:
    image_id = whiteouts_image if name == "whiteouts" else name
    directories = directories_of(engine, image_id)
    cache = LayerCache(tmp_path)

    with HashPool() as pool:
        direct = read_image(
            SavingRefused(engine), image_id, everything, cache, directories=directories
        )
        from_disk = read_image(
            SavingRefused(engine),
            image_id,
            everything,
            None,
            directories=directories,
            pool=pool,
        )
    saved = read_image(engine, image_id, everything, None)

    assert pool.files_hashed > 1000
    assert list(from_disk.entries.items()) == list(saved.entries.items())
    assert from_disk.contents == saved.contents
    assert direct == from_disk
    # What the directories gave was kept, and is what the saved image gives.
    assert read_image(SavingRefused(engine), image_id, everything, cache) == saved


def test_the_top_layer_alone_is_read_from_its_directory(
    engine: Engine, whiteouts_image: str, tmp_path: Path
) -> None:
    # Two steps below the image: its two top layers are one and the same.
    below = whiteouts_image
    for _ in range(2):
        below = str(engine.inspect_image(below)["Parent"] or "")
        assert below, "the test image should have parent images"
    cache = LayerCache(tmp_path)
    read_image(
        engine, below, everything, cache, directories=directories_of(engine, below)
    )

    with HashPool() as pool:
        fs = read_image(
            SavingRefused(engine),
            whiteouts_image,
            everything,
            cache,
            directories=directories_of(engine, whiteouts_image),
            pool=pool,
        )

    top = "/same/x"
    assert pool.files_hashed == 1
    assert fs.entries[top].sha256 == hashlib.sha256(b"same\n").hexdigest()


def test_a_layer_directory_docker_would_not_make_falls_back_to_the_saved_image(
    engine: Engine, tmp_path: Path
) -> None:
    image_id = str(engine.inspect_image("gsc-test/python-app")["Id"])
    directories = directories_of(engine, image_id)
    odd = tmp_path / "diff"
    (odd / "moved").mkdir(parents=True)
    os.setxattr(odd / "moved", "trusted.overlay.redirect", b"/elsewhere")
    notes: list[str] = []

    fs = read_image(
        engine,
        image_id,
        everything,
        None,
        directories=[*directories[:-1], odd],
        on_note=notes.append,
    )

    assert fs == read_image(engine, image_id, everything, None)
    assert "/moved" not in fs.entries
    assert len(notes) == 1
    assert "trusted.overlay.redirect" in notes[0]
    assert "reading the saved image instead" in notes[0]
