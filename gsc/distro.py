"""Facts about an image's distribution, read from its files on the host."""

from __future__ import annotations

import fnmatch
import posixpath
import shlex

from gsc.image import FileSystem

# Where the dynamic linker looks when no configuration says otherwise.
_DEFAULT_LIBRARY_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
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
    """The distribution as `ID:VERSION_ID` (for example `debian:12`), or ''."""
    fields = os_release(fs)
    ident = fields.get("ID", "")
    version = fields.get("VERSION_ID", "")
    if not ident:
        return ""
    return f"{ident}:{version}" if version else ident


def library_dirs(fs: FileSystem) -> list[str]:
    """The dynamic linker's search path, from the image's ld.so.conf files."""
    found: list[str] = []
    _read_conf(fs, "/etc/ld.so.conf", found, set())
    for directory in _DEFAULT_LIBRARY_DIRS:
        found.append(directory)
    existing: list[str] = []
    for directory in found:
        entry = fs.get(fs.resolve(directory))
        if entry is not None and entry.kind == "dir" and directory not in existing:
            existing.append(directory)
    return existing


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
            for match in sorted(
                p for p in fs.contents if fnmatch.fnmatchcase(p, pattern)
            ):
                _read_conf(fs, match, found, seen)
        else:
            found.extend(d for d in line.replace(",", " ").split() if d.startswith("/"))
