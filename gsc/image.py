"""An image's configuration and its file system, read through the engine."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gsc.errors import ImageError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bytes kept from the start of each executable file: enough for a `#!` line
# (Linux reads at most 256) and an ELF header.
HEAD_SIZE = 256
# Small files whose whole content is kept, for the distro, users and the
# library search path.
KEPT_FILES = (
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
KEPT_DIRS = ("/etc/ld.so.conf.d/",)
KEPT_LIMIT = 1 << 20


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


class Entry(NamedTuple):
    """One entry of an image's file system.

    A named tuple rather than a frozen dataclass: an image has an entry for
    each of its files, often 100,000 or more, and a tuple is made in a fifth
    of the time and takes less memory.
    """

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


WantsHash = Callable[[str], bool]


def read_filesystem(
    stream: Iterable[bytes],
    wants_hash: WantsHash,
    on_bytes: Callable[[int], None] = lambda n: None,
    base: str = "/",
) -> FileSystem:
    """Read a tar stream of a file system tree, hashing the files asked for.

    Member names are taken relative to `base`, the directory the tar was made
    of. The files are hashed by a pool of threads (see `gsc.hashing`).
    """
    from gsc.hashing import read_tree

    return read_tree(stream, wants_hash, on_bytes, base)


def has_bad_name(path: str) -> bool:
    if path.isascii():
        return "\x00" in path
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return "\x00" in path


_KEPT_PATHS = frozenset(KEPT_FILES)


def keeps_content(path: str, size: int) -> bool:
    if size > KEPT_LIMIT:
        return False
    return path in _KEPT_PATHS or path.startswith(KEPT_DIRS)
