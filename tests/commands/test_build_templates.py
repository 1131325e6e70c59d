"""`gsc build` without an engine: the Dockerfile it writes, compared whole with
the files in expected/, and the rest of its build context."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from gsc import __version__
from gsc.commands.build import (
    BuildOptions,
    Plan,
    _write_context,
    labels,
    render_dockerfile,
    runtime_roots,
)
from gsc.gramine import GramineRuntime
from gsc.image import FileSystem, ImageConfig

EXPECTED = Path(__file__).resolve().parent / "expected"
APP_ID = "sha256:" + "a" * 64
GRAMINE_ID = "sha256:" + "b" * 64
LAUNCHER = "/gramine/app_files/gsc-launch"


def plan(prefix: str, entrypoint: list[str], cmd: list[str]) -> Plan:
    config = ImageConfig(
        id=APP_ID,
        name="registry.example:5000/team/app:1.2",
        entrypoint=(),
        cmd=("/app/serve", *cmd),
        env=(),
        working_dir="/",
        user="",
        volumes=(),
        layers=(),
        labels={},
    )
    runtime = GramineRuntime(
        image_id=GRAMINE_ID,
        name="gsc-gramine:debian-12-v1.9-release",
        prefix=prefix,
        pkglibdir=f"{prefix}/lib/x86_64-linux-gnu/gramine",
        files=FileSystem(),
        labels={},
    )
    return Plan(
        config, runtime, ['[libos]\nentrypoint = "/app/serve"\n'], entrypoint, cmd
    )


def expected(name: str) -> str:
    """An expected Dockerfile, with GSC's version where it says VERSION."""
    return (EXPECTED / name).read_text(encoding="utf-8").replace("VERSION", __version__)


def test_default_prefix() -> None:
    options = BuildOptions(image="registry.example:5000/team/app:1.2", manifest=None)

    dockerfile = render_dockerfile(
        plan("/gramine/meson_build_output", [LAUNCHER], []), options
    )

    assert dockerfile == expected("build-default.Dockerfile")


def test_insecure_args_direct_mode_and_a_prefix_outside_gramine() -> None:
    options = BuildOptions(
        image="registry.example:5000/team/app:1.2",
        manifest=None,
        linux=True,
        debug=True,
        insecure_args=True,
    )

    dockerfile = render_dockerfile(
        plan("/opt/gramine", [LAUNCHER, "/app/serve"], ["--port", "80"]), options
    )

    assert dockerfile == expected("build-insecure-args-opt-prefix.Dockerfile")


@pytest.mark.parametrize(
    ("prefix", "roots"),
    [
        ("/gramine/meson_build_output", ["/gramine"]),
        ("/gramine", ["/gramine"]),
        ("/gramine/app_files/nested", ["/gramine/app_files"]),
        ("/opt/gramine", ["/opt/gramine", "/gramine/app_files"]),
        ("/usr/local", ["/usr/local", "/gramine/app_files"]),
        ("/", ["/"]),
    ],
)
def test_runtime_is_copied_below_the_directories_the_app_may_have(
    prefix: str, roots: list[str]
) -> None:
    assert runtime_roots(prefix) == roots


def test_the_manifest_is_readable_by_all_whatever_the_umask(tmp_path: Path) -> None:
    options = BuildOptions(image="app", manifest=None)
    previous = os.umask(0o077)
    try:
        _write_context(tmp_path, plan("/gramine", [LAUNCHER], []), options)
    finally:
        os.umask(previous)

    manifest = tmp_path / "app_files" / "entrypoint.manifest"
    assert manifest.stat().st_mode & 0o777 == 0o644


def test_a_long_manifest_is_written_and_labelled_byte_for_byte(tmp_path: Path) -> None:
    # More pieces than are encoded at once, of characters of one to four
    # bytes in UTF-8, and pieces of every length, empty ones too.
    pieces = [
        '[[sgx.trusted_files]]\nuri = "file:/app/d\u00e9j\u00e0-',
        "\u6587-\U0001f600",
        "",
        '"\n' * 3,
    ] * (3 * (1 << 16) // 4 + 7)
    pieces.append("x" * (3 << 20))
    long_plan = dataclasses.replace(
        plan("/gramine", [LAUNCHER], []), manifest_pieces=pieces
    )
    options = BuildOptions(image="app", manifest=None)

    _write_context(tmp_path, long_plan, options)

    written = (tmp_path / "app_files" / "entrypoint.manifest").read_bytes()
    assert written == "".join(pieces).encode("utf-8")
    digest = hashlib.sha256(written).hexdigest()
    assert labels(long_plan, options)["gsc.manifest-sha256"] == digest
