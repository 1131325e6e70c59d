"""The distro table of `gsc build-gramine` and the Gramine/application check."""

from __future__ import annotations

import pytest

from gsc import distros
from gsc.distros import DISTROS, base_image, compatibility_problem, lookup
from gsc.errors import ConfigError

SUPPORTED = (
    "debian:11",
    "debian:12",
    "ubuntu:20.04",
    "ubuntu:22.04",
    "ubuntu:24.04",
    "centos:stream9",
    "redhat/ubi9",
)


def gramine_labels(distro: str, **more: str) -> dict[str, str]:
    """The labels of an image made by `gsc build-gramine` on `distro`."""
    labels = {
        "gsc.gramine.distro": distro,
        "gsc.gramine.libc": "glibc",
        "gsc.gramine.buildtype": "release",
        "gsc.gramine.direct": "true",
    }
    labels.update({f"gsc.gramine.{key}": value for key, value in more.items()})
    return labels


def test_table_lists_the_supported_distros() -> None:
    assert tuple(DISTROS) == SUPPORTED


@pytest.mark.parametrize(
    ("name", "image", "family", "libdir"),
    [
        ("debian:12", "debian:12", "apt", "lib/x86_64-linux-gnu"),
        ("ubuntu:24.04", "ubuntu:24.04", "apt", "lib/x86_64-linux-gnu"),
        ("centos:stream9", "quay.io/centos/centos:stream9", "dnf", "lib64"),
        ("redhat/ubi9", "redhat/ubi9:latest", "dnf", "lib64"),
    ],
)
def test_rows_name_image_family_and_libdir(
    name: str, image: str, family: str, libdir: str
) -> None:
    row = lookup(name)

    assert (row.image, row.family, row.libdir) == (image, family, libdir)
    assert row.template == f"gramine/{family}.Dockerfile.j2"


def test_every_row_keeps_a_compiler_and_a_static_c_library() -> None:
    for row in DISTROS.values():
        assert "gcc" in row.runtime_packages
        assert {"libc6-dev", "glibc-static"} & set(row.runtime_packages)
        assert {"nasm", "bison", "gawk"} <= set(row.build_packages)


def test_rows_agree_with_the_glibc_table() -> None:
    for row in DISTROS.values():
        assert distros._GLIBC[(row.os_id, row.version_id)] == row.glibc


def test_old_distros_take_meson_and_toml_modules_from_pypi() -> None:
    for name in ("debian:11", "ubuntu:20.04"):
        row = lookup(name)
        assert "meson>=0.56" in row.pip_packages
        assert "meson" not in row.build_packages
        assert "python3-pip" in row.runtime_packages
    assert lookup("ubuntu:22.04").pip_packages == ()


def test_lookup_is_forgiving_about_case_and_spaces() -> None:
    assert lookup(" Debian:12 ").name == "debian:12"


@pytest.mark.parametrize("name", ["auto", "", "  "])
def test_auto_is_no_distro_for_build_gramine(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        lookup(name)

    message = str(caught.value)
    assert message.startswith("Distro must name a distro for build-gramine")
    assert "e.g. debian:12" in message
    assert "supported: debian:11, debian:12, ubuntu:20.04" in message
    assert "\n" not in message


def test_unknown_distro_lists_the_supported_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        lookup("fedora:40")

    assert str(caught.value) == (
        "Distro 'fedora:40' is not supported by build-gramine; supported:"
        " debian:11, debian:12, ubuntu:20.04, ubuntu:22.04, ubuntu:24.04,"
        " centos:stream9, redhat/ubi9"
    )


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ("", "debian:12"),
        ("gsc-test", "gsc-test/debian:12"),
        ("gsc-test/", "gsc-test/debian:12"),
        (
            "registry.example.com:5000/mirror/",
            "registry.example.com:5000/mirror/debian:12",
        ),
    ],
)
def test_registry_prefixes_the_base_image(registry: str, expected: str) -> None:
    assert base_image(lookup("debian:12"), registry) == expected


@pytest.mark.parametrize(
    ("gramine", "app"),
    [
        ("debian:12", "debian:12"),
        ("debian:12", "debian:13"),
        ("debian:12", "ubuntu:24.04"),
        ("ubuntu:22.04", "debian:12"),
        ("debian:11", "ubuntu:20.04"),
        ("centos:stream9", "centos:9"),
        ("centos:stream9", "rhel:9.4"),
        ("redhat/ubi9", "rocky:9.3"),
        ("redhat/ubi9", "centos:stream9"),
    ],
)
def test_same_distro_or_same_family_with_newer_glibc_is_fine(
    gramine: str, app: str
) -> None:
    assert compatibility_problem(gramine_labels(gramine), app, False, False) is None


def test_older_glibc_in_the_application_is_a_problem() -> None:
    problem = compatibility_problem(
        gramine_labels("debian:12"), "ubuntu:22.04", False, False
    )

    assert problem is not None
    assert "debian:12 (glibc 2.36)" in problem
    assert "ubuntu:22.04 (glibc 2.35)" in problem
    assert problem.endswith(
        "make one with 'Distro: ubuntu:22.04' and 'gsc build-gramine NAME'"
    )


def test_another_family_is_a_problem_and_the_fix_names_a_supported_row() -> None:
    problem = compatibility_problem(
        gramine_labels("debian:12"), "centos:9", False, False
    )

    assert problem is not None
    assert "application's distro centos:9 (glibc 2.34)" in problem
    assert "'Distro: centos:stream9'" in problem


def test_musl_application_cannot_use_a_glibc_gramine() -> None:
    problem = compatibility_problem(
        gramine_labels("debian:12"), "alpine:3.19", False, False
    )

    assert problem is not None
    assert "built for glibc (on debian:12)" in problem
    assert "alpine:3.19 has musl" in problem
    assert "use a Gramine image built for the application's distro" in problem


def test_a_distro_gsc_knows_nothing_about_is_a_problem() -> None:
    problem = compatibility_problem(gramine_labels("debian:12"), "arch", False, False)

    assert problem is not None
    assert "the application's distro arch:" in problem


def test_newer_glibc_is_not_enough_across_families() -> None:
    labels = gramine_labels("centos:stream9")

    assert compatibility_problem(labels, "ubuntu:24.04", False, False) is not None


@pytest.mark.parametrize("app", ["", "auto"])
def test_unknown_application_distro_is_not_held_against_the_image(app: str) -> None:
    assert compatibility_problem(gramine_labels("debian:12"), app, False, False) is None


def test_image_without_labels_is_unknown_not_refused() -> None:
    assert compatibility_problem({}, "alpine:3.19", True, True) is None


def test_debug_needs_a_build_that_is_not_release() -> None:
    release = gramine_labels("debian:12")
    debug = gramine_labels("debian:12", buildtype="debug")
    debugoptimized = gramine_labels("debian:12", buildtype="debugoptimized")

    problem = compatibility_problem(release, "debian:12", True, False)

    assert problem == (
        "it is a release build and -d needs a debug one;"
        " make one with 'gsc build-gramine -d NAME'"
    )
    assert compatibility_problem(release, "debian:12", False, False) is None
    assert compatibility_problem(debug, "debian:12", True, False) is None
    assert compatibility_problem(debugoptimized, "debian:12", True, False) is None


def test_linux_needs_direct_mode() -> None:
    without = gramine_labels("debian:12", direct="false")

    problem = compatibility_problem(without, "debian:12", False, True)

    assert problem is not None
    assert "no direct mode" in problem
    assert "'gsc build-gramine -L NAME'" in problem
    assert compatibility_problem(without, "debian:12", False, False) is None
    assert compatibility_problem(gramine_labels("debian:12"), "", False, True) is None


def test_libc_label_wins_over_the_distro_default() -> None:
    labels = gramine_labels("debian:12", libc="musl")

    problem = compatibility_problem(labels, "debian:12", False, False)

    assert problem is not None
    assert "built for musl" in problem
