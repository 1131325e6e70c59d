"""Which files of the final image the enclave trusts, allows or never sees."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

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
        return self._allows(entry, 0o4)

    def can_search(self, entry: Entry) -> bool:
        return self._allows(entry, 0o1)

    def _allows(self, entry: Entry, bit: int) -> bool:
        if self.uid == 0:
            return True
        if entry.uid == self.uid:
            return bool(entry.mode & (bit << 6))
        if entry.gid in self.gids:
            return bool(entry.mode & (bit << 3))
        return bool(entry.mode & bit)


class _Reachability:
    """Whether the reader may pass through each directory on a file's path."""

    def __init__(self, directories: Mapping[str, Entry], reader: Reader) -> None:
        self._directories = directories
        self._reader = reader
        self._known: dict[str, bool] = {"/": True}

    def reaches(self, path: str) -> bool:
        if self._reader.uid == 0:
            return True  # root passes through every directory: no need to look
        parent = posixpath.dirname(path)
        known = self._known.get(parent)
        if known is None:
            entry = self._directories.get(parent)
            searchable = entry is None or self._reader.can_search(entry)
            known = searchable and self.reaches(parent)
            self._known[parent] = known
        return known


class _Paths:
    """Directories with everything below them, and single paths: a set that
    tells in one step whether it holds a path.

    Every path of the image is tested against the same few directories:
    `str.startswith` with a tuple tries all their prefixes in one call, where
    a loop over the directories would take a Python step for each.
    """

    def __init__(self, directories: Iterable[str], exact: Iterable[str] = ()) -> None:
        # '/a/' names the same tree as '/a'; '/' alone names only itself.
        tops = {directory.rstrip("/") or "/" for directory in directories}
        self.exact = frozenset((*tops, *exact))
        self.prefixes = tuple(sorted(top + "/" for top in tops))

    def __contains__(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)


class _Globs:
    """Shell globs matched as `fnmatch.fnmatchcase` matches them, all at once."""

    def __init__(self, globs: Iterable[str]) -> None:
        # fnmatch translates each glob into an anchored expression; their
        # alternation matches a path exactly when one of the globs does.
        expressions = [fnmatch.translate(glob) for glob in globs]
        pattern = re.compile("|".join(expressions)) if expressions else None
        # Called for every path of an image: the expression's own method,
        # with no Python call around it.
        self.matcher: Callable[[str], object] = (
            _matches_nothing if pattern is None else pattern.match
        )

    def match(self, path: str) -> bool:
        return self.matcher(path) is not None


def _matches_nothing(path: str) -> None:
    return None


_EXCLUDED_PATHS = _Paths((*EXCLUDED_DIRS, APP_FILES), exact=RUNTIME_FILES)
_EXCLUDED_GLOBS = _Globs((*SECRET_PATTERNS, *EXCLUDED_PATTERNS))


def is_excluded(path: str) -> bool:
    """Whether a path is never trusted, whatever its content."""
    return path in _EXCLUDED_PATHS or _EXCLUDED_GLOBS.match(path)


@dataclass(frozen=True)
class Choices:
    """What the user chose about files: more trusted, allowed, left out."""

    allowed: frozenset[str] = frozenset()  # a file, or a directory ending in '/'
    trusted: frozenset[str] = frozenset()  # files or directories the user trusts
    exclude: tuple[str, ...] = ()  # globs of files never trusted
    run_time_dirs: tuple[str, ...] = ()  # volumes: their content comes at run time

    def is_allowed(self, path: str) -> bool:
        # Gramine allows what lies below an allowed path whether or not its
        # URI ends in '/', so a directory named without one counts too.
        return path in self._allowed_paths

    # The next two test every path of an image: each is one function made
    # for these choices, with the sets and prefixes bound to it, and no
    # further Python call inside.

    @cached_property
    def leaves_out(self) -> Callable[[str], bool]:
        """Whether a file stays out of the generated trusted files.

        That is a path GSC never trusts (`is_excluded`), an allowed path, a
        path in a run-time directory, or one that an `exclude` glob matches.
        """
        exact, below = self._left_out_paths.exact, self._left_out_paths.prefixes
        matcher = self._left_out_globs.matcher

        def leaves_out(path: str) -> bool:
            return path in exact or path.startswith(below) or matcher(path) is not None

        return leaves_out

    @cached_property
    def wants_hash(self) -> Callable[[str], bool]:
        """Whether reading the image should hash a file."""
        allowed, allowed_below = self._allowed_paths.exact, self._allowed_paths.prefixes
        trusted, trusted_below = self._trusted_paths.exact, self._trusted_paths.prefixes
        left_out, left_below = self._left_out_paths.exact, self._left_out_paths.prefixes
        matcher = self._left_out_globs.matcher

        def wants_hash(path: str) -> bool:
            if path in allowed or path.startswith(allowed_below):
                return False
            if path in trusted or path.startswith(trusted_below):
                return True
            return not (
                path in left_out or path.startswith(left_below) or matcher(path)
            )

        return wants_hash

    @cached_property
    def hash_rules(self) -> str:
        """A name for the files `wants_hash` asks for: choices with the same
        name ask for the same files (the layer cache relies on it)."""
        rules = [
            sorted(self.allowed),
            sorted(self.trusted),
            list(self.exclude),
            list(self.run_time_dirs),
            [EXCLUDED_DIRS, APP_FILES, RUNTIME_FILES],
            [SECRET_PATTERNS, EXCLUDED_PATTERNS],
        ]
        text = json.dumps(rules, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()

    # The choices compiled once, since every file of the image is tested
    # against them.

    @cached_property
    def _allowed_paths(self) -> _Paths:
        return _Paths(self.allowed)

    @cached_property
    def _trusted_paths(self) -> _Paths:
        return _Paths(self.trusted)

    @cached_property
    def _left_out_paths(self) -> _Paths:
        directories = (*EXCLUDED_DIRS, APP_FILES, *self.allowed, *self.run_time_dirs)
        return _Paths(directories, exact=RUNTIME_FILES)

    @cached_property
    def _left_out_globs(self) -> _Globs:
        return _Globs((*SECRET_PATTERNS, *EXCLUDED_PATTERNS, *self.exclude))


@dataclass(frozen=True)
class Selection:
    """The outcome of choosing trusted files, with what was left out and why."""

    trusted: Mapping[str, str]  # path -> sha256, sorted by path
    unreadable: tuple[str, ...]
    total_size: int


def select_trusted(
    entries: Mapping[str, Entry], reader: Reader, choices: Choices
) -> Selection:
    """Trusted files: every regular file outside the excluded paths that the
    image's user can reach and read."""
    chosen: dict[str, str] = {}
    unreadable: list[str] = []
    size = 0
    reachability = _Reachability(entries, reader)
    leaves_out = choices.leaves_out
    # Root reads everything: no need to ask for each file.
    checks_access = reader.uid != 0
    # Taken in the order of their paths, so that the files chosen are in
    # order as they are found: one dict of them, never a sorted copy.
    for entry in map(entries.__getitem__, sorted(entries)):
        if entry.kind != "file" or not entry.sha256 or leaves_out(entry.path):
            continue
        if checks_access and not (
            reader.can_read(entry) and reachability.reaches(entry.path)
        ):
            unreadable.append(entry.path)
            continue
        chosen[entry.path] = entry.sha256
        size += entry.size
    return Selection(chosen, tuple(unreadable), size)
