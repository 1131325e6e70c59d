"""Tests for gsc.users: the user an image runs as, from its own account files."""

from __future__ import annotations

import pytest

from gsc.errors import ImageError
from gsc.image import FileSystem
from gsc.users import User, resolve_user

from .fstree import Tree

PASSWD = b"""\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment line
app:x:1000:1000:App,,,:/home/app:/bin/sh
svc:x:1001:1002::/srv/svc:/usr/sbin/nologin
nohome:x:1003:1003:::/bin/sh
broken:x:1004
"""
GROUP = b"""\
root:x:0:
daemon:x:1:
app:x:1000:
staff:x:50:app,svc
audio:x:29:svc
video:x:44:app
svc:x:1002:
"""


@pytest.fixture(scope="module")
def fs() -> FileSystem:
    tree = Tree().dir("/etc").file("/etc/passwd", PASSWD).file("/etc/group", GROUP)
    return tree.read()


@pytest.mark.parametrize("spec", ["", "root", "0"])
def test_root_by_default(fs: FileSystem, spec: str) -> None:
    assert resolve_user(fs, spec) == User(0, 0, frozenset({0}), "/root")


def test_user_by_name(fs: FileSystem) -> None:
    user = resolve_user(fs, "daemon")

    assert (user.uid, user.gid, user.home) == (1, 1, "/usr/sbin")


def test_user_by_uid(fs: FileSystem) -> None:
    assert resolve_user(fs, "1001") == resolve_user(fs, "svc")
    assert resolve_user(fs, "1001").home == "/srv/svc"


def test_uid_without_passwd_entry(fs: FileSystem) -> None:
    # Docker runs it with group 0 and HOME=/.
    assert resolve_user(fs, "4242") == User(4242, 0, frozenset({0}), "/")


def test_user_with_empty_home_gets_root_dir(fs: FileSystem) -> None:
    assert resolve_user(fs, "nohome").home == "/"


def test_supplementary_groups_from_the_group_file(fs: FileSystem) -> None:
    assert resolve_user(fs, "app").groups == frozenset({1000, 50, 44})
    assert resolve_user(fs, "svc").groups == frozenset({1002, 50, 29})


def test_supplementary_groups_of_a_uid_with_an_entry(fs: FileSystem) -> None:
    assert resolve_user(fs, "1000").groups == frozenset({1000, 50, 44})


def test_name_and_group_name(fs: FileSystem) -> None:
    user = resolve_user(fs, "app:staff")

    assert (user.uid, user.gid, user.home) == (1000, 50, "/home/app")
    # As with Docker, an explicit group replaces the supplementary ones.
    assert user.groups == frozenset({50})


def test_uid_and_gid(fs: FileSystem) -> None:
    assert resolve_user(fs, "1001:29") == User(1001, 29, frozenset({29}), "/srv/svc")


def test_numbers_without_any_entry(fs: FileSystem) -> None:
    assert resolve_user(fs, "5000:6000") == User(5000, 6000, frozenset({6000}), "/")


def test_unknown_user(fs: FileSystem) -> None:
    with pytest.raises(ImageError, match=r"USER 'nobody'.*no such user"):
        resolve_user(fs, "nobody")


def test_incomplete_passwd_line_is_no_user(fs: FileSystem) -> None:
    with pytest.raises(ImageError, match="no such user"):
        resolve_user(fs, "broken")


def test_unknown_group(fs: FileSystem) -> None:
    with pytest.raises(ImageError, match=r"USER 'app:wheel'.*no such group"):
        resolve_user(fs, "app:wheel")


def test_image_without_account_files() -> None:
    fs = Tree().dir("/etc").read()

    assert resolve_user(fs, "") == User(0, 0, frozenset({0}), "/")
    assert resolve_user(fs, "1000:1000").uid == 1000
    with pytest.raises(ImageError, match="no such user"):
        resolve_user(fs, "app")
