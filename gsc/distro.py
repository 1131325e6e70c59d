"""Facts about an image's distribution, read from its files on the host."""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex

from gsc.image import FileSystem

# Where glibc's dynamic linker looks when no configuration says otherwise.
_GLIBC_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)
# musl's dynamic linker reads its search path from this file, and only when
# the file is missing does it search its built-in directories.
MUSL_LOADER = "/lib/ld-musl-x86_64.so.1"
MUSL_PATH_FILE = "/etc/ld-musl-x86_64.path"
_MUSL_DIRS = ("/lib", "/usr/local/lib", "/usr/lib")

# Older files that name the distribution, read when os-release says nothing.
ALPINE_RELEASE = "/etc/alpine-release"
REDHAT_RELEASE = "/etc/redhat-release"
DEBIAN_VERSION = "/etc/debian_version"
RELEASE_FILES = (ALPINE_RELEASE, REDHAT_RELEASE, DEBIAN_VERSION)
# The start of a redhat-release line -> the os-release ID of that distro.
_REDHAT_IDS = (
    ("Red Hat Enterprise Linux", "rhel"),
    ("CentOS", "centos"),
    ("Fedora", "fedora"),
    ("Rocky Linux", "rocky"),
    ("AlmaLinux", "almalinux"),
    ("Oracle Linux", "ol"),
)


def os_release(fs: FileSystem) -> dict[str, str]:
    """The fields of the image's os-release file; empty when it has none."""
    text = fs.text("/etc/os-release") or fs.text("/usr/lib/os-release") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or key.strip().startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip("\"'")]
        fields[key.strip()] = words[0] if words else ""
    return fields


def distro_name(fs: FileSystem) -> str:
    """The distribution as `ID:VERSION_ID` (for example `debian:12`), or ''.

    os-release decides; without an ID there, the older release files of
    Alpine, the Red Hat family and Debian do. '' means unknown.
    """
    fields = os_release(fs)
    ident = fields.get("ID", "")
    version = fields.get("VERSION_ID", "")
    if not ident:
        ident, version = _from_release_files(fs)
    if not ident:
        return ""
    return f"{ident}:{version}" if version else ident


def _from_release_files(fs: FileSystem) -> tuple[str, str]:
    alpine = _first_line(fs, ALPINE_RELEASE)
    if alpine:
        return "alpine", alpine
    redhat = _first_line(fs, REDHAT_RELEASE)
    if redhat:
        return _redhat(redhat)
    debian = _first_line(fs, DEBIAN_VERSION)
    if debian:
        # "12.5" on a release, "trixie/sid" on testing: keep the major number.
        major = debian.split(".")[0]
        return "debian", major if major.isdigit() else ""
    return "", ""


def _first_line(fs: FileSystem, path: str) -> str:
    lines = (fs.text(path) or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _redhat(line: str) -> tuple[str, str]:
    ident = next((i for start, i in _REDHAT_IDS if line.startswith(start)), "")
    version = re.search(r"\brelease\s+(\d+(?:\.\d+)*)", line)
    if not ident:
        return "", ""
    return ident, version.group(1) if version else ""


def library_dirs(fs: FileSystem) -> list[str]:
    """The dynamic linker's search path, from the image's own configuration.

    glibc's comes from `/etc/ld.so.conf` and the files it includes, then the
    directories glibc always searches. Without an ld.so.conf, an image with
    musl's loader has musl's: its path file (directories separated by
    newlines or colons), else musl's built-in directories. Only directories
    that exist in the image are kept, each once.
    """
    found: list[str] = []
    if fs.get("/etc/ld.so.conf") is None and _has_musl(fs):
        text = fs.text(MUSL_PATH_FILE)
        if text is None:
            found.extend(_MUSL_DIRS)
        else:
            found.extend(_musl_path(text))
    else:
        _read_conf(fs, "/etc/ld.so.conf", found, set())
        found.extend(_GLIBC_DIRS)
    existing: list[str] = []
    for directory in found:
        entry = fs.get(fs.resolve(directory))
        if entry is not None and entry.kind == "dir" and directory not in existing:
            existing.append(directory)
    return existing


def _has_musl(fs: FileSystem) -> bool:
    if fs.get(MUSL_PATH_FILE) is not None:
        return True
    loader = fs.get(fs.resolve(MUSL_LOADER))
    return loader is not None and loader.kind == "file"


def _musl_path(text: str) -> list[str]:
    words = (word.strip() for line in text.splitlines() for word in line.split(":"))
    return [posixpath.normpath(word) for word in words if word.startswith("/")]


def _read_conf(fs: FileSystem, path: str, found: list[str], seen: set[str]) -> None:
    if path in seen:
        return
    seen.add(path)
    for raw in (fs.text(path) or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            pattern = line[len("include") :].strip()
            pattern = posixpath.join(posixpath.dirname(path), pattern)
            for match in sorted(p for p in fs.contents if _glob(p, pattern)):
                _read_conf(fs, match, found, seen)
        else:
            found.extend(d for d in line.replace(",", " ").split() if d.startswith("/"))


def _glob(path: str, pattern: str) -> bool:
    """Match as a shell glob does: a wildcard never matches a '/'."""
    parts = path.split("/")
    globs = posixpath.normpath(pattern).split("/")
    if len(parts) != len(globs):
        return False
    return all(fnmatch.fnmatchcase(p, g) for p, g in zip(parts, globs, strict=True))
