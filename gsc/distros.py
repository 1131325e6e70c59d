"""The distros `gsc build-gramine` can compile Gramine in, and what runs where.

Each row of `DISTROS` is everything the Dockerfile template of its package
manager family needs. Adding a distro is adding a row here, and a template
under `templates/gramine/` when its family is new.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gsc.errors import ConfigError

LABEL = "gsc.gramine."

# Kept in the Gramine image: what Gramine's tools need to run, and a C
# compiler with a static C library (gsc build compiles its launcher in a
# stage based on the Gramine image).
_APT_RUNTIME = (
    "gcc",
    "libc6-dev",
    "libprotobuf-c1",
    "python3",
    "python3-click",
    "python3-cryptography",
    "python3-jinja2",
    "python3-pyelftools",
)
_APT_TOML = ("python3-tomli", "python3-tomli-w", "python3-voluptuous")
_APT_BUILD = (
    "autoconf",
    "bison",
    "g++",
    "gawk",
    "libprotobuf-c-dev",
    "make",
    "meson",
    "nasm",
    "ninja-build",
    "patch",
    "pkg-config",
    "protobuf-c-compiler",
    "protobuf-compiler",
    "python3-protobuf",
)
_DNF_RUNTIME = (
    "gcc",
    "glibc-devel",
    "glibc-static",
    "protobuf-c",
    "python3",
    "python3-click",
    "python3-cryptography",
    "python3-jinja2",
    "python3-pyelftools",
    "python3-tomli",
    "python3-tomli-w",
    "python3-voluptuous",
)
_DNF_BUILD = (
    "autoconf",
    "bison",
    "gawk",
    "gcc-c++",
    "make",
    "meson",
    "nasm",
    "ninja-build",
    "patch",
    "pkgconf-pkg-config",
    "protobuf-c-compiler",
    "protobuf-c-devel",
    "protobuf-compiler",
    "python3-protobuf",
)
# EPEL carries meson, nasm and several Python modules; CRB carries the
# static C library and the protobuf-c headers.
_CENTOS_REPOSITORIES = (
    "dnf install -y dnf-plugins-core epel-release",
    "dnf config-manager --set-enabled crb",
)
_UBI_REPOSITORIES = (
    "dnf install -y"
    " https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm",
)
_OLD_PYTHON = ("meson>=0.56", "tomli>=1.1.0", "tomli-w>=0.4.0", "voluptuous")


@dataclass(frozen=True)
class Distro:
    """One distro Gramine can be compiled in."""

    name: str
    image: str
    family: str
    os_id: str
    version_id: str
    glibc: tuple[int, int]
    runtime_packages: tuple[str, ...]
    build_packages: tuple[str, ...]
    git_packages: tuple[str, ...]
    libdir: str
    repositories: tuple[str, ...] = ()
    pip_packages: tuple[str, ...] = ()

    @property
    def template(self) -> str:
        return f"gramine/{self.family}.Dockerfile.j2"


def _apt(name: str, glibc: tuple[int, int], *, old_python: bool = False) -> Distro:
    os_id, _, version = name.partition(":")
    runtime = _APT_RUNTIME + (("python3-pip",) if old_python else _APT_TOML)
    build = tuple(p for p in _APT_BUILD if not (old_python and p == "meson"))
    return Distro(
        name=name,
        image=name,
        family="apt",
        os_id=os_id,
        version_id=version,
        glibc=glibc,
        runtime_packages=runtime,
        build_packages=build,
        git_packages=("ca-certificates", "git"),
        libdir="lib/x86_64-linux-gnu",
        pip_packages=_OLD_PYTHON if old_python else (),
    )


def _dnf(name: str, image: str, os_id: str, repositories: tuple[str, ...]) -> Distro:
    return Distro(
        name=name,
        image=image,
        family="dnf",
        os_id=os_id,
        version_id="9",
        glibc=(2, 34),
        runtime_packages=_DNF_RUNTIME,
        build_packages=_DNF_BUILD,
        git_packages=("git-core",),
        libdir="lib64",
        repositories=repositories,
    )


DISTROS: dict[str, Distro] = {
    row.name: row
    for row in (
        _apt("debian:11", (2, 31), old_python=True),
        _apt("debian:12", (2, 36)),
        _apt("ubuntu:20.04", (2, 31), old_python=True),
        _apt("ubuntu:22.04", (2, 35)),
        _apt("ubuntu:24.04", (2, 39)),
        _dnf(
            "centos:stream9",
            "quay.io/centos/centos:stream9",
            "centos",
            _CENTOS_REPOSITORIES,
        ),
        _dnf("redhat/ubi9", "redhat/ubi9:latest", "rhel", _UBI_REPOSITORIES),
    )
}


def supported() -> str:
    return ", ".join(DISTROS)


def lookup(name: str) -> Distro:
    """The row for config `Distro` `name`; `auto` and unknown names are errors."""
    key = name.strip().lower()
    if key in ("", "auto"):
        raise ConfigError(
            "Distro must name a distro for build-gramine, e.g. debian:12;"
            f" supported: {supported()}"
        )
    row = DISTROS.get(key)
    if row is None:
        raise ConfigError(
            f"Distro '{name}' is not supported by build-gramine;"
            f" supported: {supported()}"
        )
    return row


def base_image(distro: Distro, registry: str) -> str:
    """The image to start from: `Registry` (a name prefix) + the row's image."""
    prefix = registry.strip()
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix + distro.image


# The C library of the distros GSC knows, as os-release names them:
# (ID, VERSION_ID, or its major number for RPM distros) -> glibc version.
_GLIBC = {
    ("debian", "10"): (2, 28),
    ("debian", "11"): (2, 31),
    ("debian", "12"): (2, 36),
    ("debian", "13"): (2, 41),
    ("ubuntu", "18.04"): (2, 27),
    ("ubuntu", "20.04"): (2, 31),
    ("ubuntu", "22.04"): (2, 35),
    ("ubuntu", "24.04"): (2, 39),
    **{(rpm, "8"): (2, 28) for rpm in ("centos", "rhel", "rocky", "almalinux")},
    **{(rpm, "9"): (2, 34) for rpm in ("centos", "rhel", "rocky", "almalinux")},
}
_FAMILIES = {
    "debian": "apt",
    "ubuntu": "apt",
    "centos": "dnf",
    "rhel": "dnf",
    "rocky": "dnf",
    "almalinux": "dnf",
    "fedora": "dnf",
}
_MUSL = ("alpine",)


@dataclass(frozen=True)
class _System:
    """What an image's distro says about the C library it provides."""

    os_id: str
    version: str
    family: str
    libc: str
    glibc: tuple[int, int] | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.os_id, self.version)


def _system(name: str) -> _System:
    """Facts about `name`: a row's name, or `ID:VERSION_ID` from os-release."""
    row = DISTROS.get(name.strip().lower())
    if row is not None:
        return _System(row.os_id, row.version_id, row.family, "glibc", row.glibc)
    os_id, _, version = name.strip().lower().partition(":")
    family = _FAMILIES.get(os_id, "")
    if family == "dnf":
        version = version.split(".")[0]
    libc = "musl" if os_id in _MUSL else ("glibc" if family else "")
    return _System(os_id, version, family, libc, _GLIBC.get((os_id, version)))


def compatibility_problem(
    labels: Mapping[str, str], app_distro: str, debug: bool, linux: bool
) -> str | None:
    """Why a Gramine image with `labels` cannot serve this build, or None.

    The message is meant to follow "Gramine image 'NAME': ". The distro rule:
    Gramine's SGX loader runs with the application image's C library, so the
    application's distro must be the one Gramine was built in (same ID and
    VERSION_ID), or of the same family with a glibc at least as new. A label
    the image does not have is not held against it: an image GSC did not make
    is taken as it is.
    """
    name = labels.get(LABEL + "distro", "")
    app = app_distro.strip()
    if name and app and app != "auto":
        problem = _distro_problem(name, labels.get(LABEL + "libc", ""), app)
        if problem:
            return problem
    if debug and labels.get(LABEL + "buildtype") == "release":
        return (
            "it is a release build and -d needs a debug one;"
            " make one with 'gsc build-gramine -d NAME'"
        )
    if linux and labels.get(LABEL + "direct") == "false":
        return (
            "it has no direct mode, so -L/--linux cannot be honoured;"
            " make one with 'gsc build-gramine -L NAME'"
        )
    return None


def _distro_problem(name: str, libc: str, app_distro: str) -> str | None:
    gramine = _system(name)
    app = _system(app_distro)
    gramine_libc = libc or gramine.libc
    if app.libc and gramine_libc and app.libc != gramine_libc:
        return (
            f"it was built for {gramine_libc} (on {name}) and the application's"
            f" distro {app_distro} has {app.libc}; {_fix(app_distro)}"
        )
    if gramine.key == app.key:
        return None
    if (
        gramine.family
        and gramine.family == app.family
        and gramine.glibc is not None
        and app.glibc is not None
        and gramine.glibc <= app.glibc
    ):
        return None
    return (
        f"it was built on {name}{_glibc_text(gramine)} and may not run in the"
        f" application's distro {app_distro}{_glibc_text(app)}: that needs the"
        f" same distro, or one of its family with a glibc at least as new;"
        f" {_fix(app_distro)}"
    )


def _fix(app_distro: str) -> str:
    app = _system(app_distro)
    rows = [r for r in DISTROS.values() if (r.os_id, r.version_id) == app.key]
    if not rows:
        return "use a Gramine image built for the application's distro"
    return f"make one with 'Distro: {rows[0].name}' and 'gsc build-gramine NAME'"


def _glibc_text(system: _System) -> str:
    if system.glibc is None:
        return ""
    return f" (glibc {system.glibc[0]}.{system.glibc[1]})"
