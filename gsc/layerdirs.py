"""An image's layers read straight from the engine's own storage, when it can be.

Docker's overlay2 driver keeps each layer as a plain directory tree on the
host: the layer's files, its deleted paths as character devices 0:0, and its
opaque directories marked by the extended attribute `trusted.overlay.opaque`.
Reading those directories is reading and hashing each byte once, with no
tar made by the engine and sent through its socket, and with a layer found
in the cache (`gsc.layercache`) nothing of it is read at all.

This is taken only when it gives the same layers as the engine's saved
image: the driver is overlay2 on this host, GSC runs as root (the
directories are root's, and only root sees `trusted.` attributes), the
engine does not remap user ids, and Docker's own layer store confirms, layer
by layer, that each directory is the one of the diff id the image lists.
Otherwise `gsc.layers` reads the saved image, as it does for any other
engine.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gsc.errors import ImageError
from gsc.hashing import WHITEOUT, DiskFile, HashPool, Record
from gsc.image import HEAD_SIZE, WantsHash, has_bad_name, keeps_content

_OPAQUE_ATTRIBUTE = "trusted.overlay.opaque"
# Attributes by which overlayfs shows a path other than as it is stored: a
# directory renamed from a lower one, a file whose data is below. Others
# (origin, impure, nlink) only keep inode numbers and link counts stable.
_CHANGING_ATTRIBUTES = frozenset(
    ("trusted.overlay.redirect", "trusted.overlay.metacopy")
)
# Small files handed to a worker at once, and the bytes that close a batch
# early. They are handed over as the walk finds them: a large image has the
# pool read them in processes of its own (`gsc.hashworker`), which leave the
# walk the interpreter lock.
_BATCH_FILES = 64
_BATCH_BYTES = 8 << 20
# Larger files wait for the end of the walks and are handed over largest
# first, so that no worker is left alone at the end with a large file.
_LARGE_FILE = 1 << 20


def layer_directories(
    inspected: Mapping[str, Any], info: Mapping[str, Any]
) -> list[Path] | None:
    """The directories of an image's layers, bottom first; None if not readable here.

    `inspected` is the engine's description of the image, `info` its own.
    """
    driver = inspected.get("GraphDriver") or {}
    if driver.get("Name") != "overlay2" or os.geteuid() != 0:
        return None
    if any("userns" in str(option) for option in info.get("SecurityOptions") or []):
        return None
    data = driver.get("Data") or {}
    lower = [d for d in str(data.get("LowerDir") or "").split(":") if d]
    top_first = [Path(str(data.get("UpperDir") or "")), *map(Path, lower)]
    diff_ids = [str(d) for d in (inspected.get("RootFS") or {}).get("Layers") or []]
    if not diff_ids or len(top_first) != len(diff_ids):
        return None
    directories = list(reversed(top_first))
    store = Path(str(info.get("DockerRootDir") or "")) / "image/overlay2/layerdb"
    if not _confirmed(store, diff_ids, directories):
        return None
    return directories


def _confirmed(store: Path, diff_ids: list[str], directories: list[Path]) -> bool:
    """Whether Docker's layer store names each directory for its diff id.

    The store keeps a layer under its chain id (the digest of its diff id
    and of every one below it), with its diff id and the name of its
    directory (`cache-id`).
    """
    chain = ""
    for diff_id, directory in zip(diff_ids, directories, strict=True):
        chain = diff_id if not chain else _chain_id(chain, diff_id)
        entry = store / chain.replace(":", "/", 1)
        try:
            if (entry / "diff").read_text("ascii").strip() != diff_id:
                return False
            cache_id = (entry / "cache-id").read_text("ascii").strip()
        except (OSError, UnicodeError):
            return False
        if directory.name != "diff" or directory.parent.name != cache_id:
            return False
        if not directory.is_dir():
            return False
    return True


def _chain_id(below: str, diff_id: str) -> str:
    return "sha256:" + hashlib.sha256(f"{below} {diff_id}".encode()).hexdigest()


class StorageChanged(Exception):
    """A layer directory holds what GSC does not read the same as the engine's tar."""


# A file's mode, owner and group.
_Owner = tuple[int, int, int]


class _Pending(DiskFile):
    """A file whose digest and first bytes a worker is still reading, with
    its mode and owner: one object a file, where a tuple of them and the
    worker's part took about 55 bytes more."""

    __slots__ = ("gid", "mode", "uid")

    def __init__(
        self, path: str, size: int, head_size: int, root: str, owner: _Owner
    ) -> None:
        super().__init__(path, size, head_size, root)
        self.mode, self.uid, self.gid = owner


def walk_directory(
    directory: Path,
    wants_hash: WantsHash,
    pool: HashPool,
    on_bytes: Callable[[int], None],
) -> LayerWalk:
    """Walk a layer's directory: its records, and the files it has to hash.

    Raises `StorageChanged` for what overlay2 can hold but Docker's layers
    never do. Small kept files are hashed by `pool` already; the others
    wait for `hash_files`.
    """
    walk = LayerWalk(directory, wants_hash, pool, on_bytes)
    walk.run()
    return walk


def hash_files(pool: HashPool, walks: Iterable[LayerWalk]) -> None:
    """Hand the large files of walked layers to `pool`, the largest first."""
    large = [file for walk in walks for file in walk.large_files]
    large.sort(key=lambda file: file.size, reverse=True)
    for file in large:
        pool.disk_files([file])


class LayerWalk:
    """A walk of one layer's directory, in the order of the engine's tar."""

    def __init__(
        self,
        directory: Path,
        wants_hash: WantsHash,
        pool: HashPool,
        on_bytes: Callable[[int], None],
    ) -> None:
        self._root = os.fspath(directory)
        self._wants_hash = wants_hash
        self._pool = pool
        self._on_bytes = on_bytes
        self._found: list[Record | _Pending] = []
        self._batch: list[DiskFile] = []
        self._batch_bytes = 0
        self._links: dict[tuple[int, int], str] = {}
        # The files to hash that are left for `hash_files`.
        self.large_files: list[DiskFile] = []

    def run(self) -> None:
        try:
            for disk_path, path, info in _tree(self._root):
                self._take(disk_path, path, info)
        except OSError as err:
            raise ImageError(
                f"cannot read the layer directory {self._root} ({err.strerror or err})"
            ) from err
        self._flush()

    def records(self) -> Iterator[Record]:
        """The layer's records, once the pool has hashed its files; the walk
        lets go of them, so they can be taken once.

        Made all at once: letting go of each file's pending part as its
        record is made leaves the memory of the two interleaved, and raised
        the peak of a build of 256,000 files by about 25 MB. Let go of one
        by one as they are taken: the entries made from them then take the
        records' memory, which lowered that peak by about 20 MB.
        """
        found, self._found = self._found, []
        made = [_done(item) for item in found]
        del found
        made.reverse()
        while made:
            yield made.pop()

    def _take(self, disk_path: str, path: str, info: os.stat_result) -> None:
        if path.startswith(WHITEOUT, path.rfind("/") + 1):
            # The engine's tar would say this is a whiteout, not a file.
            raise StorageChanged(f"{disk_path} has a whiteout's name")
        if has_bad_name(path):
            self._found.append(Record(path, "skipped"))
            return
        mode = stat.S_IMODE(info.st_mode)
        owner = (mode, info.st_uid, info.st_gid)
        if stat.S_ISDIR(info.st_mode):
            self._found.append(Record(path, "dir", *owner))
            if _is_opaque(disk_path):
                self._found.append(Record(path, "opaque"))
        elif stat.S_ISREG(info.st_mode):
            self._file(disk_path, path, info, owner)
        elif stat.S_ISLNK(info.st_mode):
            target = os.readlink(disk_path)
            self._found.append(Record(path, "symlink", *owner, target=target))
        elif stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            self._found.append(Record(path, "whiteout"))
        elif not stat.S_ISSOCK(info.st_mode):
            # Docker's tar leaves sockets out; devices and pipes stay.
            self._found.append(Record(path, "other", *owner))

    def _file(
        self,
        disk_path: str,
        path: str,
        info: os.stat_result,
        owner: _Owner,
    ) -> None:
        if info.st_nlink > 1:
            first = self._links.setdefault((info.st_dev, info.st_ino), path)
            if first != path:
                self._found.append(Record(path, "link", *owner, target=first))
                return
        size = info.st_size
        keep = keeps_content(path, size)
        executable = bool(info.st_mode & 0o111)
        if keep:
            self._kept(disk_path, path, info, owner)
        elif executable or self._wants_hash(path):
            # The host path is the layer's root and the image path.
            head_size = HEAD_SIZE if executable else 0
            file = _Pending(path, size, head_size, self._root, owner)
            self._found.append(file)
            self._on_bytes(size)
            if size >= _LARGE_FILE:
                self.large_files.append(file)
                return
            self._batch.append(file)
            self._batch_bytes += size
            if len(self._batch) >= _BATCH_FILES or self._batch_bytes >= _BATCH_BYTES:
                self._flush()
        else:
            self._found.append(Record(path, "file", *owner, size))

    def _kept(
        self,
        disk_path: str,
        path: str,
        info: os.stat_result,
        owner: _Owner,
    ) -> None:
        with open(disk_path, "rb") as source:
            data = source.read(info.st_size + 1)
        if len(data) != info.st_size:
            raise ImageError(f"{disk_path} in the engine's storage changed while read")
        self._on_bytes(len(data))
        head = data[:HEAD_SIZE] if info.st_mode & 0o111 else b""
        digest = self._pool.whole(data)
        self._found.append(
            Record(path, "file", *owner, len(data), "", digest, head, data)
        )

    def _flush(self) -> None:
        if self._batch:
            self._pool.disk_files(self._batch)
        self._batch = []
        self._batch_bytes = 0


def _done(item: Record | _Pending) -> Record:
    if isinstance(item, Record):
        return item
    return Record(
        item.name, "file", item.mode, item.uid, item.gid, item.size, "", item, item.head
    )


def _is_opaque(disk_path: str) -> bool:
    try:
        names = os.listxattr(disk_path, follow_symlinks=False)
    except OSError:
        return False
    changing = [n for n in names if n in _CHANGING_ATTRIBUTES]
    if changing:
        # Docker turns these overlay features off, and its tar would not
        # show what they mean: this is no layer of its own making.
        raise StorageChanged(f"{disk_path} has overlay attributes {changing}")
    if _OPAQUE_ATTRIBUTE not in names:
        return False
    value = os.getxattr(disk_path, _OPAQUE_ATTRIBUTE, follow_symlinks=False)
    return value == b"y"


def _tree(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """Everything below `root`, depth first in byte order of the names, as
    the engine writes a layer's tar: the host path, the image path, its lstat."""
    pending: list[Iterator[tuple[str, str]]] = [_children(root, "/")]
    while pending:
        child = next(pending[-1], None)
        if child is None:
            pending.pop()
            continue
        disk_path, path = child
        info = os.lstat(disk_path)
        yield disk_path, path, info
        if stat.S_ISDIR(info.st_mode):
            pending.append(_children(disk_path, path))


def _children(disk_path: str, path: str) -> Iterator[tuple[str, str]]:
    names = sorted(os.listdir(disk_path), key=os.fsencode)
    prefix = "" if path == "/" else path
    for name in names:
        yield f"{disk_path}/{name}", f"{prefix}/{name}"
