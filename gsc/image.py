"""An image's configuration and its file system, read through the engine."""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from gsc.errors import ImageError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bytes kept from the start of each executable file: enough for a `#!` line
# (Linux reads at most 256) and an ELF header.
HEAD_SIZE = 256
# Small files whose whole content is kept, for the distro, users and the
# library search path.
_KEPT_FILES = (
    "/etc/os-release",
    "/usr/lib/os-release",
    "/etc/passwd",
    "/etc/group",
    "/etc/ld.so.conf",
    "/etc/ld-musl-x86_64.path",
    "/etc/alpine-release",
    "/etc/redhat-release",
    "/etc/debian_version",
)
_KEPT_DIRS = ("/etc/ld.so.conf.d/",)
_KEPT_LIMIT = 1 << 20


@dataclass(frozen=True)
class ImageConfig:
    """What the engine records about an image besides its files."""

    id: str
    name: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    working_dir: str
    user: str
    volumes: tuple[str, ...]
    layers: tuple[str, ...]
    labels: Mapping[str, str]

    @property
    def path_variable(self) -> str:
        return dict(self.env).get("PATH", DEFAULT_PATH)


def image_config(name: str, attrs: Mapping[str, Any]) -> ImageConfig:
    """Read the parts of `docker inspect` output that GSC needs."""
    config = attrs.get("Config") or {}
    env = []
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        env.append((key, value))
    return ImageConfig(
        id=str(attrs["Id"]),
        name=name,
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
        env=tuple(env),
        working_dir=config.get("WorkingDir") or "/",
        user=config.get("User") or "",
        volumes=tuple(sorted(config.get("Volumes") or {})),
        layers=tuple((attrs.get("RootFS") or {}).get("Layers") or ()),
        labels=dict(config.get("Labels") or {}),
    )


@dataclass(frozen=True)
class Entry:
    """One entry of an image's file system."""

    path: str
    kind: str  # "file", "dir", "symlink", "other"
    mode: int
    uid: int
    gid: int
    size: int = 0
    target: str = ""  # a symbolic link's target
    sha256: str = ""  # a regular file's hash, when it was hashed
    head: bytes = b""


@dataclass
class FileSystem:
    """The entries of an image's merged file system, by absolute path."""

    entries: dict[str, Entry] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    skipped_names: list[str] = field(default_factory=list)

    def get(self, path: str) -> Entry | None:
        return self.entries.get(path)

    def text(self, path: str) -> str | None:
        data = self.contents.get(path)
        return None if data is None else data.decode("utf-8", "replace")

    def resolve(self, path: str) -> str:
        """Follow symbolic links in `path` inside this file system, never the host's."""
        return _Resolver(self.entries).resolve(path)

    def files(self) -> Iterator[Entry]:
        return (e for e in self.entries.values() if e.kind == "file")


class _Resolver:
    def __init__(self, entries: Mapping[str, Entry]) -> None:
        self._entries = entries
        self._hops = 0

    def resolve(self, path: str) -> str:
        done = "/"
        pending = [p for p in path.split("/") if p]
        pending.reverse()
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                done = posixpath.dirname(done)
                continue
            here = posixpath.join(done, part)
            entry = self._entries.get(here)
            if entry is None or entry.kind != "symlink":
                done = here
                continue
            self._hops += 1
            if self._hops > 40:
                raise ImageError(f"path {path}: too many levels of symbolic links")
            if entry.target.startswith("/"):
                done = "/"
            more = [p for p in entry.target.split("/") if p]
            pending.extend(reversed(more))
        return done


Hasher = Callable[[str, IO[bytes], int], str]
WantsHash = Callable[[str], bool]


def read_filesystem(
    stream: Iterable[bytes],
    wants_hash: WantsHash,
    on_bytes: Callable[[int], None] = lambda n: None,
    base: str = "/",
) -> FileSystem:
    """Read a tar stream of a file system tree, hashing the files asked for.

    Member names are taken relative to `base`, the directory the tar was made of.
    """
    fs = FileSystem()
    reader = _ChunkReader(stream)
    try:
        with tarfile.open(
            fileobj=reader, mode="r|", bufsize=_BLOCK, errors="surrogateescape"
        ) as tar:
            for member in tar:
                _add_member(fs, tar, member, base, wants_hash, on_bytes)
    except tarfile.TarError as err:
        raise ImageError(f"cannot read the image's file system: {err}") from err
    return fs


def _add_member(
    fs: FileSystem,
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    base: str,
    wants_hash: WantsHash,
    on_bytes: Callable[[int], None],
) -> None:
    path = posixpath.normpath(posixpath.join(base, member.name))
    if _has_bad_name(path):
        fs.skipped_names.append(path)
        return
    common: dict[str, Any] = {
        "path": path,
        "mode": member.mode,
        "uid": member.uid,
        "gid": member.gid,
    }
    if member.isreg():
        fs.entries[path] = _read_file(fs, tar, member, common, wants_hash, on_bytes)
    elif member.islnk():
        fs.entries[path] = _hard_link(fs, member, base, common)
    elif member.issym():
        fs.entries[path] = Entry(kind="symlink", target=member.linkname, **common)
    elif member.isdir():
        fs.entries[path] = Entry(kind="dir", **common)
    else:
        fs.entries[path] = Entry(kind="other", **common)


def _has_bad_name(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return "\x00" in path


def _read_file(
    fs: FileSystem,
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    common: dict[str, Any],
    wants_hash: WantsHash,
    on_bytes: Callable[[int], None],
) -> Entry:
    path = common["path"]
    keep = _keeps_content(path, member.size)
    executable = bool(member.mode & 0o111)
    if not (keep or executable or wants_hash(path)):
        return Entry(kind="file", size=member.size, **common)
    source = tar.extractfile(member)
    assert source is not None
    digest = hashlib.sha256()
    head = b""
    kept = bytearray()
    while block := source.read(_BLOCK):
        if not head and executable:
            head = block[:HEAD_SIZE]
        if keep:
            kept += block
        digest.update(block)
        on_bytes(len(block))
    if keep:
        fs.contents[path] = bytes(kept)
    return Entry(
        kind="file", size=member.size, sha256=digest.hexdigest(), head=head, **common
    )


_BLOCK = 1 << 20


def _keeps_content(path: str, size: int) -> bool:
    if size > _KEPT_LIMIT:
        return False
    return path in _KEPT_FILES or any(path.startswith(d) for d in _KEPT_DIRS)


def _hard_link(
    fs: FileSystem, member: tarfile.TarInfo, base: str, common: dict[str, Any]
) -> Entry:
    target = fs.entries.get(posixpath.normpath(posixpath.join(base, member.linkname)))
    if target is None or target.kind != "file":
        return Entry(kind="other", **common)
    if common["path"] in _KEPT_FILES and target.path in fs.contents:
        fs.contents[common["path"]] = fs.contents[target.path]
    return Entry(
        kind="file",
        size=target.size,
        sha256=target.sha256,
        head=target.head,
        **common,
    )


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size
