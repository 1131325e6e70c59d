"""The user an image runs as, read from its own /etc/passwd and /etc/group."""

from __future__ import annotations

from dataclasses import dataclass

from gsc.errors import ImageError
from gsc.image import FileSystem


@dataclass(frozen=True)
class User:
    """The identity the application has inside the container."""

    uid: int
    gid: int
    groups: frozenset[int]
    home: str


def _table(fs: FileSystem, path: str) -> list[list[str]]:
    text = fs.text(path) or ""
    return [line.split(":") for line in text.splitlines() if line and line[0] != "#"]


def resolve_user(fs: FileSystem, spec: str) -> User:
    """Resolve a Docker USER value (`name`, `uid`, `name:group`, `uid:gid`)."""
    name, _, group = (spec or "0").partition(":")
    passwd = [row for row in _table(fs, "/etc/passwd") if len(row) >= 7]
    row = next((r for r in passwd if r[0] == name or r[2] == name), None)
    if row is None and not name.isdigit():
        raise ImageError(f"USER '{spec}': no such user in the image's /etc/passwd")
    uid = int(row[2]) if row else int(name)
    gid = int(row[3]) if row and row[3].isdigit() else 0
    if group:
        gid = _group_id(fs, group, spec)
    home = row[5] if row else "/"
    # As in Docker, an explicit group means no supplementary groups.
    login = row[0] if row and not group else ""
    groups = {gid} | _supplementary(fs, login)
    return User(uid=uid, gid=gid, groups=frozenset(groups), home=home or "/")


def _group_id(fs: FileSystem, group: str, spec: str) -> int:
    if group.isdigit():
        return int(group)
    for row in _table(fs, "/etc/group"):
        if len(row) >= 3 and row[0] == group and row[2].isdigit():
            return int(row[2])
    raise ImageError(f"USER '{spec}': no such group in the image's /etc/group")


def _supplementary(fs: FileSystem, login: str) -> set[int]:
    if not login:
        return set()
    found = set()
    for row in _table(fs, "/etc/group"):
        if len(row) >= 4 and row[2].isdigit() and login in row[3].split(","):
            found.add(int(row[2]))
    return found
