"""Tests for gsc.naming: the names of the images GSC makes."""

from __future__ import annotations

import pytest

from gsc.naming import signed_name, unsigned_name

DIGEST = "sha256:" + "5e" * 32


@pytest.mark.parametrize(
    ("image", "unsigned", "signed"),
    [
        ("app", "gsc-app-unsigned:latest", "gsc-app:latest"),
        ("app:1.0", "gsc-app-unsigned:1.0", "gsc-app:1.0"),
        ("team/app:v2", "gsc-team/app-unsigned:v2", "gsc-team/app:v2"),
        (
            "localhost:5000/app",
            "gsc-localhost:5000/app-unsigned:latest",
            "gsc-localhost:5000/app:latest",
        ),
        (
            "registry.example.com:5000/team/app:3.1-slim",
            "gsc-registry.example.com:5000/team/app-unsigned:3.1-slim",
            "gsc-registry.example.com:5000/team/app:3.1-slim",
        ),
        (f"app@{DIGEST}", "gsc-app-unsigned:latest", "gsc-app:latest"),
        (f"app:1.0@{DIGEST}", "gsc-app-unsigned:1.0", "gsc-app:1.0"),
        (
            f"localhost:5000/app@{DIGEST}",
            "gsc-localhost:5000/app-unsigned:latest",
            "gsc-localhost:5000/app:latest",
        ),
    ],
)
def test_names_keep_tag_and_registry_port(
    image: str, unsigned: str, signed: str
) -> None:
    assert unsigned_name(image) == unsigned
    assert signed_name(image) == signed


@pytest.mark.parametrize(
    "image", ["app", "app:1.0", "localhost:5000/team/app:v1", f"app@{DIGEST}"]
)
def test_signed_name_from_the_unsigned_name(image: str) -> None:
    assert signed_name(unsigned_name(image)) == signed_name(image)


def test_only_a_whole_gsc_unsigned_wrapper_is_removed() -> None:
    assert signed_name("gsc-app") == "gsc-gsc-app:latest"
    assert signed_name("app-unsigned:1") == "gsc-app-unsigned:1"
