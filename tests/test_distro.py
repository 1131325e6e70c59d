"""Tests for gsc.distro: os-release and the dynamic linker's search path."""

from __future__ import annotations

import pytest

from gsc.distro import distro_name, library_dirs, os_release

from .fstree import Tree

DEBIAN = b"""\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""


def with_os_release(path: str, text: bytes) -> Tree:
    return Tree().dir("/etc").dir("/usr").dir("/usr/lib").file(path, text)


def test_os_release_fields() -> None:
    fields = os_release(with_os_release("/etc/os-release", DEBIAN).read())

    assert fields["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert fields["VERSION_ID"] == "12"
    assert fields["VERSION_CODENAME"] == "bookworm"
    assert fields["HOME_URL"] == "https://www.debian.org/"
    assert len(fields) == 7


def test_os_release_quoting_comments_and_blank_lines() -> None:
    text = b"""\
# written by hand
  # indented comment

ID='alpine'
VERSION_ID=3.19.1
NAME="Alpine \\"Edge\\" Linux"
EMPTY=
BROKEN="no closing quote
not a field
"""
    fields = os_release(with_os_release("/etc/os-release", text).read())

    assert fields == {
        "ID": "alpine",
        "VERSION_ID": "3.19.1",
        "NAME": 'Alpine "Edge" Linux',
        "EMPTY": "",
        "BROKEN": "no closing quote",
    }


def test_os_release_from_usr_lib_when_etc_has_a_link() -> None:
    # Debian ships /etc/os-release as a link to ../usr/lib/os-release.
    tree = with_os_release("/usr/lib/os-release", DEBIAN)
    fs = tree.symlink("/etc/os-release", "../usr/lib/os-release").read()

    assert os_release(fs)["ID"] == "debian"
    assert distro_name(fs) == "debian:12"


def test_etc_os_release_comes_first() -> None:
    tree = with_os_release("/usr/lib/os-release", DEBIAN)
    fs = tree.file("/etc/os-release", b"ID=ubuntu\nVERSION_ID=24.04\n").read()

    assert distro_name(fs) == "ubuntu:24.04"


@pytest.mark.parametrize(
    ("text", "name"),
    [(b"ID=arch\n", "arch"), (b"NAME=Something\n", ""), (b"", "")],
)
def test_distro_name_without_some_fields(text: bytes, name: str) -> None:
    assert distro_name(with_os_release("/etc/os-release", text).read()) == name


def test_no_os_release_at_all() -> None:
    fs = Tree().dir("/etc").read()

    assert (os_release(fs), distro_name(fs)) == ({}, "")


def debian_libraries() -> Tree:
    """A merged-/usr image: /lib is a link to usr/lib."""
    return (
        Tree()
        .dir("/etc")
        .dir("/etc/ld.so.conf.d")
        .dir("/usr")
        .dir("/usr/lib")
        .dir("/usr/lib/x86_64-linux-gnu")
        .dir("/usr/local")
        .dir("/usr/local/lib")
        .symlink("/lib", "usr/lib")
        .symlink("/lib64", "usr/lib64")
    )


def test_library_dirs_from_included_files_in_order() -> None:
    tree = debian_libraries().dir("/opt").dir("/opt/lib").dir("/opt/extra")
    tree.file("/etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n/opt/extra\n")
    tree.file("/etc/ld.so.conf.d/libc.conf", b"# libc default\n/usr/local/lib\n")
    tree.file("/etc/ld.so.conf.d/x86_64-linux-gnu.conf", b"/opt/lib  # vendor\n")
    tree.file("/etc/ld.so.conf.d/notes.txt", b"/opt/not-included\n")

    dirs = library_dirs(tree.read())

    # Included files in name order, then the file's own lines, then the
    # directories the linker always searches (only those that exist).
    assert dirs == [
        "/usr/local/lib",
        "/opt/lib",
        "/opt/extra",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib",
        "/usr/lib",
    ]


def test_library_dirs_keep_only_existing_directories() -> None:
    tree = debian_libraries().file("/opt-file", b"")
    tree.file("/etc/ld.so.conf", b"/nowhere\n/opt-file\n/usr/local/lib\n")

    dirs = library_dirs(tree.read())

    assert "/nowhere" not in dirs and "/opt-file" not in dirs
    assert "/lib64" not in dirs  # a link to a directory that does not exist
    assert dirs[0] == "/usr/local/lib"


def test_library_dirs_have_no_duplicates() -> None:
    tree = debian_libraries()
    tree.file("/etc/ld.so.conf", b"include ld.so.conf.d/*.conf\n/usr/lib\n")
    tree.file("/etc/ld.so.conf.d/a.conf", b"/usr/local/lib,/usr/lib\n")
    tree.file("/etc/ld.so.conf.d/b.conf", b"/usr/local/lib\ninclude /etc/ld.so.conf\n")

    dirs = library_dirs(tree.read())

    assert len(dirs) == len(set(dirs))
    assert dirs[:2] == ["/usr/local/lib", "/usr/lib"]


def test_library_dirs_without_any_configuration() -> None:
    fs = debian_libraries().read()

    assert library_dirs(fs) == [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib",
        "/usr/lib",
    ]
