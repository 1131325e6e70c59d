"""Real tar streams of small file system trees, for the tests that read images."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gsc.image import FileSystem, read_filesystem

# A real ELF executable of the host, to stand for any program in an image.
ELF = Path("/bin/true").read_bytes()


class Tree:
    """The members of a tar archive, written the way `docker export` names them."""

    def __init__(self) -> None:
        self._members: list[tuple[tarfile.TarInfo, bytes]] = []

    def _add(self, path: str, kind: bytes, mode: int, data: bytes = b"") -> Tree:
        info = tarfile.TarInfo(path.lstrip("/") or ".")
        info.type = kind
        info.mode = mode
        info.size = len(data)
        info.mtime = 1_700_000_000
        self._members.append((info, data))
        return self

    def dir(self, path: str, mode: int = 0o755) -> Tree:
        return self._add(path, tarfile.DIRTYPE, mode)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> Tree:
        return self._add(path, tarfile.REGTYPE, mode, data)

    def program(self, path: str, data: bytes = ELF) -> Tree:
        return self.file(path, data, 0o755)

    def symlink(self, path: str, target: str) -> Tree:
        self._add(path, tarfile.SYMTYPE, 0o777)
        self._members[-1][0].linkname = target
        return self

    def hardlink(self, path: str, target: str, mode: int = 0o644) -> Tree:
        self._add(path, tarfile.LNKTYPE, mode)
        self._members[-1][0].linkname = target.lstrip("/")
        return self

    def whiteout(self, path: str) -> Tree:
        """A layer's mark that `path` of the layers below is deleted."""
        directory, name = path.rsplit("/", 1)
        return self.file(f"{directory}/.wh.{name}", b"")

    def opaque(self, directory: str) -> Tree:
        """A layer's mark that the layers below have nothing in `directory`."""
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq", b"")

    def fifo(self, path: str) -> Tree:
        return self._add(path, tarfile.FIFOTYPE, 0o644)

    def owned(self, uid: int, gid: int) -> Tree:
        """Give the member added last an owner other than root."""
        info = self._members[-1][0]
        info.uid, info.gid = uid, gid
        return self

    def tar(self, fmt: int = tarfile.PAX_FORMAT) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(
            fileobj=buffer, mode="w", format=fmt, errors="surrogateescape"
        ) as archive:
            for info, data in self._members:
                archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
        return buffer.getvalue()

    def read(self, wants_hash: Callable[[str], bool] = lambda path: True) -> FileSystem:
        return read_filesystem(chunks(self.tar(), 1000), wants_hash)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    """`data` cut in pieces of `size` bytes, as an engine's stream delivers it."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(document: object) -> bytes:
    return json.dumps(document, sort_keys=True).encode()


def _archive(members: Sequence[tuple[str, bytes | str]]) -> bytes:
    """A tar of regular files (bytes) and symbolic links (str), in the order given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass
class SavedImage:
    """A saved image as the engine streams it, and what describes it."""

    stream: bytes
    image_id: str
    diff_ids: list[str]
    layer_keys: list[str]


def legacy_save(layers: Sequence[bytes], top_config: str = "app") -> SavedImage:
    """What Docker 20.10's `docker save` writes for an image of these layer tars.

    Layer directories are named by v1 ids made, like Docker's, from the chain id
    and the parent's v1 id (and, for the top layer, the config), written in the
    order of their names; a layer whose diff id was saved already is a symbolic
    link to the first one's tar.
    """
    diff_ids = ["sha256:" + sha256_hex(layer) for layer in layers]
    config = _json({"config": {"Cmd": [top_config]}, "rootfs": {"diff_ids": diff_ids}})
    image_hex = sha256_hex(config)
    v1_ids: list[str] = []
    chain = ""
    for index, diff_id in enumerate(diff_ids):
        chain = (
            diff_id
            if not chain
            else "sha256:" + sha256_hex(f"{chain} {diff_id}".encode())
        )
        extra = top_config if index == len(diff_ids) - 1 else ""
        parent = v1_ids[-1] if v1_ids else ""
        v1_ids.append(sha256_hex(_json([chain, parent, extra])))
    first_path: dict[str, str] = {}
    directories: dict[str, list[tuple[str, bytes | str]]] = {}
    for v1_id, diff_id, layer in zip(v1_ids, diff_ids, layers, strict=True):
        entries: list[tuple[str, bytes | str]] = [
            (f"{v1_id}/VERSION", b"1.0"),
            (f"{v1_id}/json", _json({"id": v1_id})),
        ]
        if diff_id in first_path:
            entries.append((f"{v1_id}/layer.tar", f"../{first_path[diff_id]}"))
        else:
            first_path[diff_id] = f"{v1_id}/layer.tar"
            entries.append((f"{v1_id}/layer.tar", layer))
        directories[v1_id] = entries
    manifest = [
        {
            "Config": f"{image_hex}.json",
            "RepoTags": ["test/image:latest"],
            "Layers": [f"{v1_id}/layer.tar" for v1_id in v1_ids],
        }
    ]
    members = [m for v1_id in sorted(directories) for m in directories[v1_id]]
    members += [
        (f"{image_hex}.json", config),
        ("manifest.json", _json(manifest)),
        ("repositories", _json({"test/image": {"latest": v1_ids[-1]}})),
    ]
    keys = [f"docker-v1:{v1_id}" for v1_id in v1_ids]
    return SavedImage(_archive(members), "sha256:" + image_hex, diff_ids, keys)


def oci_save(
    layers: Sequence[bytes],
    *,
    docker_manifest: bool = True,
    compress: bool = False,
    index: bool = True,
) -> SavedImage:
    """What an engine that saves in the OCI layout writes for these layer tars.

    Every blob, layers and JSON documents alike, sits under blobs/sha256 in the
    order of the digests; `docker_manifest` adds Docker's manifest.json.
    """
    blobs_of_layers = [gzip.compress(t, mtime=0) if compress else t for t in layers]
    diff_ids = ["sha256:" + sha256_hex(layer) for layer in layers]
    config = _json({"rootfs": {"type": "layers", "diff_ids": diff_ids}})
    config_digest = "sha256:" + sha256_hex(config)
    digests = ["sha256:" + sha256_hex(blob) for blob in blobs_of_layers]
    manifest = _json(
        {
            "schemaVersion": 2,
            "config": {"digest": config_digest, "size": len(config)},
            "layers": [{"digest": d} for d in digests],
        }
    )
    manifest_digest = "sha256:" + sha256_hex(manifest)
    blobs = {d: b for d, b in zip(digests, blobs_of_layers, strict=True)}
    blobs[config_digest] = config
    blobs[manifest_digest] = manifest
    members: list[tuple[str, bytes | str]] = [
        ("blobs/sha256/" + d.split(":")[1], blobs[d]) for d in sorted(blobs)
    ]
    if index:
        document = {"schemaVersion": 2, "manifests": [{"digest": manifest_digest}]}
        members.append(("index.json", _json(document)))
    if docker_manifest:
        docker = [
            {
                "Config": "blobs/sha256/" + config_digest.split(":")[1],
                "Layers": ["blobs/sha256/" + d.split(":")[1] for d in digests],
            }
        ]
        members.append(("manifest.json", _json(docker)))
    members.append(("oci-layout", _json({"imageLayoutVersion": "1.0.0"})))
    return SavedImage(_archive(members), config_digest, diff_ids, digests)


@dataclass
class FakeEngine:
    """Stands for `gsc.engine.Engine` where only `save_image` is used."""

    saved: SavedImage
    chunk_size: int = 65_536
    saves: list[str] = field(default_factory=list)

    def inspect_image(self, name: str) -> dict[str, Any]:
        return {"Id": self.saved.image_id, "RootFS": {"Layers": self.saved.diff_ids}}

    def save_image(self, image_id: str) -> Iterator[bytes]:
        self.saves.append(image_id)
        return chunks(self.saved.stream, self.chunk_size)
