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


# os-release as each distribution's base image ships it (fields abridged to
# the ones that identify it).
OS_RELEASES = {
    "debian-11": b"""\
PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"
NAME="Debian GNU/Linux"
VERSION_ID="11"
VERSION="11 (bullseye)"
VERSION_CODENAME=bullseye
ID=debian
HOME_URL="https://www.debian.org/"
""",
    "debian-12": DEBIAN,
    "ubuntu-20.04": b"""\
NAME="Ubuntu"
VERSION="20.04.6 LTS (Focal Fossa)"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu 20.04.6 LTS"
VERSION_ID="20.04"
VERSION_CODENAME=focal
UBUNTU_CODENAME=focal
""",
    "ubuntu-22.04": b"""\
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
""",
    "ubuntu-24.04": b"""\
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
""",
    "centos-stream-9": b"""\
NAME="CentOS Stream"
VERSION="9"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="9"
PLATFORM_ID="platform:el9"
PRETTY_NAME="CentOS Stream 9"
CPE_NAME="cpe:/o:centos:centos:9"
""",
    "ubi-9": b"""\
NAME="Red Hat Enterprise Linux"
VERSION="9.4 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
""",
    "sles-15": b"""\
NAME="SLES"
VERSION="15-SP5"
VERSION_ID="15.5"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"
ID="sles"
ID_LIKE="suse"
CPE_NAME="cpe:/o:suse:sles:15:sp5"
""",
    "leap-15": b"""\
NAME="openSUSE Leap"
VERSION="15.5"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.5"
PRETTY_NAME="openSUSE Leap 15.5"
""",
    "alpine-3.19": b"""\
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
""",
}


def debian_like_root(os_release_text: bytes) -> Tree:
    """A merged-/usr Debian or Ubuntu root, laid out as their images are."""
    tree = debian_libraries().dir("/usr/local/lib/x86_64-linux-gnu")
    tree.file("/usr/lib/os-release", os_release_text)
    tree.symlink("/etc/os-release", "../usr/lib/os-release")
    tree.file("/etc/debian_version", b"12.5\n")
    tree.file("/etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n\n")
    tree.file("/etc/ld.so.conf.d/libc.conf", b"# libc default\n/usr/local/lib\n")
    tree.file(
        "/etc/ld.so.conf.d/x86_64-linux-gnu.conf",
        b"# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n"
        b"/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n",
    )
    return tree.program("/usr/lib/x86_64-linux-gnu/libc.so.6")


def redhat_like_root(os_release_text: bytes, release: bytes) -> Tree:
    """A RHEL 9, UBI 9 (minimal too) or CentOS Stream 9 root: lib64, no lib dirs
    in ld.so.conf.d, /etc/os-release a link into /usr/lib."""
    tree = Tree().dir("/etc").dir("/etc/ld.so.conf.d").dir("/usr")
    tree.dir("/usr/lib").dir("/usr/lib64").symlink("/lib64", "usr/lib64")
    tree.symlink("/lib", "usr/lib")
    tree.file("/usr/lib/os-release", os_release_text)
    tree.symlink("/etc/os-release", "../usr/lib/os-release")
    tree.file("/etc/redhat-release", release)
    tree.file("/etc/ld.so.conf", b"include ld.so.conf.d/*.conf\n")
    tree.file("/etc/ld.so.conf.d/dyninst-x86_64.conf", b"/usr/lib64/dyninst\n")
    return tree.program("/usr/lib64/libc.so.6")


def suse_root(os_release_text: bytes) -> Tree:
    """A SUSE 15 root: /lib64 is a directory of its own, not a link."""
    tree = Tree().dir("/etc").dir("/etc/ld.so.conf.d").dir("/lib64").dir("/usr")
    tree.dir("/usr/lib64").dir("/usr/local").dir("/usr/local/lib64")
    tree.file("/usr/lib/os-release", os_release_text)
    tree.symlink("/etc/os-release", "../usr/lib/os-release")
    tree.file(
        "/etc/ld.so.conf",
        b"/usr/local/lib64\n/usr/local/lib\ninclude /etc/ld.so.conf.d/*.conf\n",
    )
    return tree.program("/lib64/libc.so.6")


def alpine_root(os_release_text: bytes) -> Tree:
    """An Alpine root: musl's loader in /lib, no ld.so.conf, no path file."""
    tree = Tree().dir("/etc").dir("/lib").dir("/usr").dir("/usr/lib")
    tree.dir("/usr/local").dir("/usr/local/lib")
    tree.file("/etc/os-release", os_release_text)
    tree.file("/etc/alpine-release", b"3.19.1\n")
    tree.program("/lib/ld-musl-x86_64.so.1")
    return tree.symlink("/lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")


DEBIAN_DIRS = [
    "/usr/local/lib",
    "/usr/local/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
]


@pytest.mark.parametrize(
    ("root", "name", "dirs"),
    [
        (debian_like_root(OS_RELEASES["debian-11"]), "debian:11", DEBIAN_DIRS),
        (debian_like_root(OS_RELEASES["debian-12"]), "debian:12", DEBIAN_DIRS),
        (debian_like_root(OS_RELEASES["ubuntu-20.04"]), "ubuntu:20.04", DEBIAN_DIRS),
        (debian_like_root(OS_RELEASES["ubuntu-22.04"]), "ubuntu:22.04", DEBIAN_DIRS),
        (debian_like_root(OS_RELEASES["ubuntu-24.04"]), "ubuntu:24.04", DEBIAN_DIRS),
        (
            redhat_like_root(
                OS_RELEASES["centos-stream-9"], b"CentOS Stream release 9\n"
            ),
            "centos:9",
            ["/lib64", "/usr/lib64", "/lib", "/usr/lib"],
        ),
        (
            redhat_like_root(
                OS_RELEASES["ubi-9"],
                b"Red Hat Enterprise Linux release 9.4 (Plow)\n",
            ),
            "rhel:9.4",
            ["/lib64", "/usr/lib64", "/lib", "/usr/lib"],
        ),
        (
            suse_root(OS_RELEASES["sles-15"]),
            "sles:15.5",
            ["/usr/local/lib64", "/lib64", "/usr/lib64"],
        ),
        (
            suse_root(OS_RELEASES["leap-15"]),
            "opensuse-leap:15.5",
            ["/usr/local/lib64", "/lib64", "/usr/lib64"],
        ),
        (
            alpine_root(OS_RELEASES["alpine-3.19"]),
            "alpine:3.19.1",
            ["/lib", "/usr/local/lib", "/usr/lib"],
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_each_distro_on_its_root_file_system(
    root: Tree, name: str, dirs: list[str]
) -> None:
    fs = root.read()

    assert distro_name(fs) == name
    assert library_dirs(fs) == dirs


def test_pretty_name_and_family_are_read() -> None:
    fields = os_release(redhat_like_root(OS_RELEASES["ubi-9"], b"").read())

    assert fields["PRETTY_NAME"] == "Red Hat Enterprise Linux 9.4 (Plow)"
    assert fields["ID_LIKE"] == "fedora"


def test_debian_include_does_not_descend_into_subdirectories() -> None:
    tree = debian_like_root(DEBIAN).dir("/etc/ld.so.conf.d/old").dir("/opt")
    tree.dir("/opt/old").file("/etc/ld.so.conf.d/old/x.conf", b"/opt/old\n")

    assert "/opt/old" not in library_dirs(tree.read())


def musl_root() -> Tree:
    """Debian's musl package unpacked: the loader links into /lib/x86_64-linux-musl."""
    tree = Tree().dir("/etc").dir("/lib").dir("/lib/x86_64-linux-musl")
    tree.dir("/usr").dir("/usr/lib").dir("/usr/lib/x86_64-linux-musl")
    tree.program("/lib/x86_64-linux-musl/libc.so")
    return tree.symlink("/lib/ld-musl-x86_64.so.1", "x86_64-linux-musl/libc.so")


def test_musl_path_file_gives_the_search_path() -> None:
    tree = musl_root().dir("/opt").dir("/opt/lib")
    tree.file(
        "/etc/ld-musl-x86_64.path",
        b"/lib/x86_64-linux-musl\n/usr/lib/x86_64-linux-musl:/opt/lib/\n\n/nowhere\n",
    )

    # Only the path file: musl does not search its built-in directories then.
    assert library_dirs(tree.read()) == [
        "/lib/x86_64-linux-musl",
        "/usr/lib/x86_64-linux-musl",
        "/opt/lib",
    ]


def test_musl_without_path_file_searches_its_built_in_directories() -> None:
    assert library_dirs(musl_root().read()) == ["/lib", "/usr/lib"]


def test_ld_so_conf_wins_over_musl_path_file() -> None:
    # A glibc distro that also has Debian's musl package installed.
    tree = debian_like_root(DEBIAN).dir("/lib/x86_64-linux-musl")
    tree.file("/etc/ld-musl-x86_64.path", b"/lib/x86_64-linux-musl\n")

    assert library_dirs(tree.read()) == DEBIAN_DIRS


@pytest.mark.parametrize(
    ("path", "text", "name"),
    [
        ("/etc/alpine-release", b"3.20.0\n", "alpine:3.20.0"),
        ("/etc/debian_version", b"11.9\n", "debian:11"),
        ("/etc/debian_version", b"trixie/sid\n", "debian"),
        (
            "/etc/redhat-release",
            b"Red Hat Enterprise Linux release 9.3 (Plow)\n",
            "rhel:9.3",
        ),
        ("/etc/redhat-release", b"CentOS Stream release 9\n", "centos:9"),
        ("/etc/redhat-release", b"Rocky Linux release 9.3 (Blue Onyx)\n", "rocky:9.3"),
        ("/etc/redhat-release", b"Fedora release 40 (Forty)\n", "fedora:40"),
        ("/etc/redhat-release", b"Some Other Linux 7\n", ""),
        ("/etc/alpine-release", b"\n", ""),
    ],
)
def test_release_files_when_os_release_is_missing(
    path: str, text: bytes, name: str
) -> None:
    fs = Tree().dir("/etc").file(path, text).read()

    assert distro_name(fs) == name


def test_os_release_comes_before_release_files() -> None:
    tree = with_os_release("/etc/os-release", OS_RELEASES["ubuntu-24.04"])
    fs = tree.file("/etc/debian_version", b"trixie/sid\n").read()

    assert distro_name(fs) == "ubuntu:24.04"


def test_scratch_image_has_no_distro_and_no_library_dirs() -> None:
    fs = Tree().program("/report").read()

    assert (distro_name(fs), library_dirs(fs)) == ("", [])
