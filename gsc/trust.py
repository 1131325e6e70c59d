"""Which files of the final image the enclave trusts, allows or never sees."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gsc.image import Entry

# Never trusted: the kernel's and the engine's virtual or run-time trees, and
# mutable state. /tmp is a tmpfs inside the enclave, so its image files are
# hidden anyway.
EXCLUDED_DIRS = ("/boot", "/dev", "/proc", "/sys", "/var", "/run", "/tmp")
# Never trusted because their hashes would publish secrets or because they
# are secrets: password hashes, host keys, the engine's marker file.
SECRET_PATTERNS = (
    "/etc/shadow*",
    "/etc/gshadow*",
    "/etc/security/*",
    "/etc/ssh/ssh_host_*key",
    "/.dockerenv",
    "/.dockerinit",
)
EXCLUDED_PATTERNS = ("/etc/rc*",)
# Docker bind-mounts these at run time: allowed, since their content changes.
RUNTIME_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
APP_FILES = "/gramine/app_files"


@dataclass(frozen=True)
class Reader:
    """The user and groups the application runs as, to tell what it can read."""

    uid: int = 0
    gids: frozenset[int] = frozenset({0})

    def can_read(self, entry: Entry) -> bool:
        if self.uid == 0:
            return True
        if entry.uid == self.uid:
            return bool(entry.mode & 0o400)
        if entry.gid in self.gids:
            return bool(entry.mode & 0o040)
        return bool(entry.mode & 0o004)


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


def is_excluded(path: str) -> bool:
    """Whether a path is never trusted, whatever its content."""
    if any(_under(path, d) for d in (*EXCLUDED_DIRS, APP_FILES)):
        return True
    if path in RUNTIME_FILES:
        return True
    patterns = (*SECRET_PATTERNS, *EXCLUDED_PATTERNS)
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


@dataclass(frozen=True)
class Selection:
    """The outcome of choosing trusted files, with what was left out and why."""

    trusted: Mapping[str, str]  # path -> sha256, sorted by path
    unreadable: tuple[str, ...]
    total_size: int


def select_trusted(
    files: Iterable[Entry], reader: Reader, allowed: frozenset[str]
) -> Selection:
    """Trusted files: every readable regular file outside the excluded paths."""
    chosen: dict[str, str] = {}
    unreadable: list[str] = []
    size = 0
    for entry in files:
        if is_excluded(entry.path) or entry.path in allowed or not entry.sha256:
            continue
        if not reader.can_read(entry):
            unreadable.append(entry.path)
            continue
        chosen[entry.path] = entry.sha256
        size += entry.size
    ordered = {path: chosen[path] for path in sorted(chosen)}
    return Selection(ordered, tuple(sorted(unreadable)), size)


def wants_hash(path: str) -> bool:
    """Whether the reader of an image should hash this file."""
    return not is_excluded(path)
