"""Where `gsc build-gramine` takes Gramine's source: a git URL or the host.

A git URL is cloned during the image build. A directory or a tar archive on
the host is copied into the build context instead, and must then hold the
archives of Gramine's meson subprojects, since nothing is downloaded.
"""

from __future__ import annotations

import configparser
import posixpath
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from gsc.errors import ConfigError

CONTEXT_NAME = "gramine-source"
UNKNOWN_COMMIT = "unknown"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]*$")
_UNSAFE = re.compile(r"[\s'\"`\\$]")
_ARCHIVES = {".tar": ".tar", ".tar.gz": ".tar.gz", ".tgz": ".tar.gz"}
_LISTED = 3


@dataclass(frozen=True)
class GramineSource:
    """Gramine's source at one branch, tag or commit."""

    kind: str
    location: str
    ref: str
    commit: str = ""
    root: str = "."

    @property
    def is_git(self) -> bool:
        return self.kind == "git"

    @property
    def context_name(self) -> str:
        """The name of the source in the build context."""
        if self.kind == "archive":
            return CONTEXT_NAME + _archive_suffix(Path(self.location))
        return CONTEXT_NAME


def locate(repository: str, ref: str) -> GramineSource:
    """Check `Gramine.Repository` and `Gramine.Branch` and say what they name."""
    _check_ref(ref)
    text = repository.strip()
    if not text:
        raise ConfigError(
            "Gramine.Repository is empty; give a git URL, or a directory or"
            " .tar/.tar.gz archive of Gramine's source on this host"
        )
    if text.lower().startswith("file://"):
        return _local(text, Path(unquote(urlsplit(text).path)), ref)
    if _SCHEME.match(text) or _SCP_LIKE.match(text):
        return _git(text, ref)
    return _local(text, Path(text).expanduser(), ref)


def stage(source: GramineSource, context: Path) -> None:
    """Copy a source on the host into the build context; a git URL needs none."""
    target = context / source.context_name
    if source.kind == "directory":
        shutil.copytree(source.location, target, symlinks=True)
    elif source.kind == "archive":
        shutil.copyfile(source.location, target)


def _check_ref(ref: str) -> None:
    if not _REF.match(ref) or ".." in ref or ref.endswith((".", "/", ".lock")):
        raise ConfigError(
            f"Gramine.Branch '{ref}': not a branch, tag or commit name (letters,"
            " digits and . _ / + - only, not starting with - or .)"
        )


def _git(url: str, ref: str) -> GramineSource:
    if _UNSAFE.search(url) or not url.isprintable():
        raise ConfigError(
            f"Gramine.Repository '{url}': spaces, quotes, $ and backslashes are not"
            " allowed in a git URL"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and "@" in parts.netloc:
        raise ConfigError(
            "Gramine.Repository: the URL holds user credentials, which would be"
            " stored in the image's build history; use a public URL or a local"
            " copy of the source"
        )
    return GramineSource("git", url, ref)


def _local(text: str, path: Path, ref: str) -> GramineSource:
    path = path.resolve()
    if path.is_dir():
        _check_tree(text, _DirectoryTree(path))
        return GramineSource("directory", str(path), ref, _commit_of(path))
    if path.is_file() and _archive_suffix(path):
        tree = _ArchiveTree.open(text, path)
        _check_tree(text, tree)
        return GramineSource("archive", str(path), ref, UNKNOWN_COMMIT, tree.root)
    if path.exists():
        raise ConfigError(
            f"Gramine.Repository '{text}': neither a directory nor a .tar, .tar.gz"
            " or .tgz archive"
        )
    raise ConfigError(
        f"Gramine.Repository '{text}': no such directory or archive on this host"
        " (a git URL needs a scheme, such as https://)"
    )


def _archive_suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix, normal in _ARCHIVES.items():
        if name.endswith(suffix):
            return normal
    return ""


def _commit_of(path: Path) -> str:
    """HEAD of the git checkout whose top is `path`, or `unknown`."""
    git = shutil.which("git")
    if git is None:
        return UNKNOWN_COMMIT
    top = _git_output(git, path, "rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != path:
        return UNKNOWN_COMMIT
    return _git_output(git, path, "rev-parse", "--verify", "HEAD") or UNKNOWN_COMMIT


def _git_output(git: str, path: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            [git, "-C", str(path), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


class _Tree(Protocol):
    """Read access to a source tree, by paths relative to its top."""

    def exists(self, path: str) -> bool: ...

    def names(self, directory: str) -> list[str]: ...

    def read(self, path: str) -> str: ...


class _DirectoryTree:
    def __init__(self, top: Path) -> None:
        self._top = top

    def exists(self, path: str) -> bool:
        return (self._top / path).exists()

    def names(self, directory: str) -> list[str]:
        folder = self._top / directory
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def read(self, path: str) -> str:
        return (self._top / path).read_text(encoding="utf-8", errors="replace")


class _ArchiveTree:
    def __init__(self, path: Path, members: dict[str, tarfile.TarInfo], root: str):
        self._path = path
        self._members = members
        self.root = root

    @classmethod
    def open(cls, text: str, path: Path) -> _ArchiveTree:
        try:
            with tarfile.open(path) as archive:
                members = {_normal(m.name): m for m in archive.getmembers()}
        except (OSError, tarfile.TarError, EOFError) as err:
            raise ConfigError(
                f"Gramine.Repository '{text}': not a readable tar archive ({err})"
            ) from err
        builds = [n for n in members if posixpath.basename(n) == "meson.build"]
        if not builds:
            raise ConfigError(
                f"Gramine.Repository '{text}': no meson.build in the archive; is it"
                " Gramine's source?"
            )
        top = min(builds, key=lambda n: (n.count("/"), n))
        return cls(path, members, posixpath.dirname(top) or ".")

    def _full(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.root, path))

    def exists(self, path: str) -> bool:
        full = self._full(path)
        return full in self._members or any(
            n.startswith(full + "/") for n in self._members
        )

    def names(self, directory: str) -> list[str]:
        prefix = self._full(directory) + "/"
        found = {
            n[len(prefix) :].split("/", 1)[0]
            for n in self._members
            if n.startswith(prefix) and len(n) > len(prefix)
        }
        return sorted(found)

    def read(self, path: str) -> str:
        with tarfile.open(self._path) as archive:
            member = archive.extractfile(self._members[self._full(path)])
            data = member.read() if member is not None else b""
        return data.decode("utf-8", errors="replace")


def _normal(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")).removeprefix("./")


def _check_tree(text: str, tree: _Tree) -> None:
    if not tree.exists("meson.build"):
        raise ConfigError(
            f"Gramine.Repository '{text}': no meson.build in it; is it Gramine's"
            " source?"
        )
    missing = [w for w in tree.names("subprojects") if _wrap_missing(text, tree, w)]
    if missing:
        names = ", ".join(m.removesuffix(".wrap") for m in missing[:_LISTED])
        more = f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else ""
        raise ConfigError(
            f"Gramine.Repository '{text}': the source of subproject {names}{more}"
            " is missing (neither its directory nor its archive in"
            " subprojects/packagecache/); run 'meson subprojects download' in the"
            " source on a connected machine"
        )


def _wrap_missing(text: str, tree: _Tree, name: str) -> bool:
    """Whether meson would have to download the subproject of wrap `name`."""
    if not name.endswith(".wrap"):
        return False
    wrap = configparser.ConfigParser(interpolation=None)
    try:
        wrap.read_string(tree.read(f"subprojects/{name}"))
    except configparser.Error as err:
        raise ConfigError(
            f"Gramine.Repository '{text}': subprojects/{name} is not a valid wrap"
            f" file ({err.__class__.__name__})"
        ) from err
    kinds = [s for s in wrap.sections() if s.startswith("wrap-")]
    if not kinds or kinds[0] == "wrap-redirect":
        return False
    section = wrap[kinds[0]]
    directory = section.get("directory", name.removesuffix(".wrap"))
    if tree.names(f"subprojects/{directory}"):
        return False
    files = [section[k] for k in ("source_filename", "patch_filename") if k in section]
    if kinds[0] != "wrap-file" or not files:
        return True
    return not all(tree.exists(f"subprojects/packagecache/{f}") for f in files)
