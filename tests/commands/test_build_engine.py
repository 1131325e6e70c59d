"""`gsc build` end to end: the real engine, the offline test images, and the
stand-in Gramine image (a test double that checks the manifest and runs the
application natively; see tests/standin/README.md)."""

from __future__ import annotations

import io
import json
import posixpath
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import tomllib

from gsc.engine import Engine
from gsc.image import read_filesystem
from tests.conftest import STANDIN_GRAMINE, Gsc, instructions, run_image

pytestmark = pytest.mark.engine

PYTHON_UNSIGNED = "gsc-gsc-test/python-app-unsigned:latest"


def read_manifest(client: docker.DockerClient, image: str) -> dict[str, Any]:
    """The manifest inside a built image, read through the engine."""
    container = client.containers.create(image, command=["/none"])
    try:
        chunks, _ = container.get_archive("/gramine/app_files/entrypoint.manifest")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile("entrypoint.manifest")
            assert member is not None
            return tomllib.loads(member.read().decode("utf-8"))
    finally:
        container.remove(force=True)


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture(scope="module")
def python_build(gsc: Gsc) -> Iterator[subprocess.CompletedProcess[str]]:
    gsc.made.append(PYTHON_UNSIGNED)
    yield gsc("-v", "build", "-c", str(gsc.config), "-L", "gsc-test/python-app")


@pytest.fixture(scope="module")
def python_unsigned(python_build: subprocess.CompletedProcess[str]) -> str:
    return PYTHON_UNSIGNED


def test_python_app_runs_with_its_argv_env_and_working_dir(
    python_unsigned: str,
) -> None:
    native = report(run_image("gsc-test/python-app"))
    inside = report(run_image(python_unsigned, env={"GRAMINE_MODE": "direct"}))

    assert (
        inside["argv"]
        == native["argv"]
        == ["/app/report.py", "--name", "two words", ""]
    )
    assert inside["cwd"] == native["cwd"] == "/app"
    assert inside["uid"] == native["uid"] == 0
    assert inside["env"]["GREETING"] == "hello world"
    assert inside["env"]["PATH"] == native["env"]["PATH"]
    assert inside["env"]["HOME"] == "/root"


def test_runtime_arguments_are_ignored_without_insecure_args(
    python_unsigned: str,
) -> None:
    inside = report(
        run_image(python_unsigned, "--other", env={"GRAMINE_MODE": "direct"})
    )

    assert inside["argv"] == ["/app/report.py", "--name", "two words", ""]


def test_older_gsc_pal_variable_selects_direct_mode(python_unsigned: str) -> None:
    inside = report(run_image(python_unsigned, env={"GSC_PAL": "Linux"}))

    assert inside["argv"][0] == "/app/report.py"


def test_unsigned_image_refuses_sgx_mode(python_unsigned: str) -> None:
    result = run_image(python_unsigned)

    assert result.returncode != 0
    assert "not signed yet" in result.stderr


def test_stand_in_notices_a_file_that_differs_from_the_manifest(
    python_unsigned: str, tmp_path: Path
) -> None:
    changed = tmp_path / "report.py"
    changed.write_text("print('not the measured program')\n", encoding="utf-8")

    result = run_image(
        python_unsigned,
        env={"GRAMINE_MODE": "direct"},
        extra=("-v", f"{changed}:/app/report.py:ro"),
    )

    assert result.returncode == 70
    assert "/app/report.py" in result.stderr


def test_manifest_lists_each_file_once_with_its_hash(
    python_unsigned: str, docker_client: docker.DockerClient
) -> None:
    manifest = read_manifest(docker_client, python_unsigned)
    entries = manifest["sgx"]["trusted_files"]
    uris = [e["uri"] for e in entries]

    assert uris == sorted(uris)
    assert len(uris) == len(set(uris))
    assert "file:/usr/bin/python3.11" in uris
    assert "file:/app/report.py" in uris
    assert not [
        u
        for u in uris
        if u.startswith(("file:/var/", "file:/proc/", "file:/etc/shadow"))
    ]
    assert "file:/etc/hosts" in manifest["sgx"]["allowed_files"]
    assert "file:/etc/hosts" not in uris
    runtime = (
        "file:/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine/runtime/glibc/"
    )
    assert any(u.startswith(runtime) for u in uris)
    assert manifest["libos"]["entrypoint"] == "/usr/bin/python3.11"
    assert manifest["loader"]["env"]["LD_LIBRARY_PATH"].startswith(runtime[5:-1])


def test_image_labels_record_the_sources(
    python_unsigned: str, docker_client: docker.DockerClient
) -> None:
    labels = docker_client.images.get(python_unsigned).labels
    source = docker_client.images.get("gsc-test/python-app")

    assert labels["gsc.source-image"] == source.id
    assert labels["gsc.direct"] == "true"
    assert labels["gsc.gramine-image"] == docker_client.images.get(STANDIN_GRAMINE).id
    assert len(labels["gsc.manifest-sha256"]) == 64


def test_image_labels_are_all_there(
    python_unsigned: str, docker_client: docker.DockerClient
) -> None:
    labels = docker_client.images.get(python_unsigned).labels

    assert sorted(k for k in labels if k.startswith("gsc.")) == [
        f"gsc.{name}"
        for name in (
            "debug",
            "direct",
            "gramine-image",
            "gramine-name",
            "insecure-args",
            "manifest",
            "manifest-sha256",
            "pkglibdir",
            "source-image",
            "source-name",
            "standin",
            "version",
        )
    ]
    assert labels["gsc.source-name"] == "gsc-test/python-app"
    assert labels["gsc.gramine-name"] == STANDIN_GRAMINE
    assert labels["gsc.manifest"] == "/gramine/app_files/entrypoint.manifest"


def test_two_layers_are_added_to_the_application_image(
    python_unsigned: str, docker_client: docker.DockerClient
) -> None:
    app = docker_client.images.get("gsc-test/python-app").attrs["RootFS"]["Layers"]
    unsigned = docker_client.images.get(python_unsigned).attrs["RootFS"]["Layers"]

    assert unsigned[: len(app)] == app
    assert len(unsigned) == len(app) + 2


def test_the_final_stage_has_one_step_per_kind_of_change(
    python_build: subprocess.CompletedProcess[str],
) -> None:
    steps = instructions(python_build)
    last_from = len(steps) - 1 - steps[::-1].index("FROM")

    assert steps[last_from:] == ["FROM", "COPY", "COPY", "ENTRYPOINT", "LABEL"]


def tree(engine: Engine, image: str, path: str) -> dict[str, tuple[object, ...]]:
    """Kind, mode, owner and content of everything under `path` in an image."""
    with engine.archive(image, path) as stream:
        fs = read_filesystem(stream, lambda p: True, base=posixpath.dirname(path))
    # The engine writes file type bits into the mode; only permissions count.
    return {
        e.path: (e.kind, e.mode & 0o7777, e.uid, e.gid, e.sha256, e.target)
        for e in fs.entries.values()
    }


def test_added_files_keep_their_owners_and_modes(
    python_unsigned: str, docker_client: docker.DockerClient
) -> None:
    engine = Engine(docker_client)
    prefix = "/gramine/meson_build_output"
    added = tree(engine, python_unsigned, "/gramine")
    gramine = tree(engine, STANDIN_GRAMINE, prefix)

    assert {p: e for p, e in added.items() if p.startswith(f"{prefix}/")} == {
        p: e for p, e in gramine.items() if p != prefix
    }
    owners = {(e[2], e[3]) for e in added.values()}
    modes = {p: e[1] for p, e in added.items() if not p.startswith(f"{prefix}/")}
    assert owners == {(0, 0)}
    assert modes == {
        "/gramine": 0o755,
        prefix: 0o755,
        "/gramine/app_files": 0o755,
        "/gramine/app_files/entrypoint.manifest": 0o644,
        "/gramine/app_files/gsc-launch": 0o755,
        "/gramine/app_files/loader-libs": 0o755,
        "/gramine/app_files/loader-libs/ld.so": 0o755,
        "/gramine/app_files/loader-libs/libc.so.6": 0o755,
        "/gramine/app_files/loader-libs/libprotobuf-c.so.1": 0o644,
    }


def test_script_entrypoint_runs_through_its_interpreter(
    gsc: Gsc, docker_client: docker.DockerClient
) -> None:
    gsc("build", "-c", str(gsc.config), "-L", "gsc-test/script-app")
    image = "gsc-gsc-test/script-app-unsigned:latest"
    gsc.made.append(image)

    inside = report(run_image(image, env={"GRAMINE_MODE": "direct"}))
    manifest = read_manifest(docker_client, image)

    assert inside["argv"] == ["/app/report.py", "from-script", "a", "b"]
    assert manifest["libos"]["entrypoint"] == "/usr/bin/bash"
    assert manifest["loader"]["argv"] == ["bash", "/app/run.sh", "a", "b"]
    uris = {e["uri"] for e in manifest["sgx"]["trusted_files"]}
    assert {"file:/app/run.sh", "file:/usr/bin/bash"} <= uris


def test_non_root_user_keeps_its_identity(
    gsc: Gsc, docker_client: docker.DockerClient
) -> None:
    result = gsc("build", "-c", str(gsc.config), "-L", "gsc-test/user-app")
    image = "gsc-gsc-test/user-app-unsigned:latest"
    gsc.made.append(image)

    inside = report(run_image(image, env={"GRAMINE_MODE": "direct"}))
    manifest = read_manifest(docker_client, image)

    assert (inside["uid"], inside["gid"]) == (1234, 1234)
    assert inside["cwd"] == "/home/appuser"
    assert inside["argv"] == ["/app/report.py", "as-user"]
    assert (manifest["loader"]["uid"], manifest["loader"]["gid"]) == (1234, 1234)
    uris = {e["uri"] for e in manifest["sgx"]["trusted_files"]}
    assert "file:/app/root-only.txt" not in uris
    assert "cannot read them" in result.stderr


def test_insecure_args_replace_cmd(
    gsc: Gsc, docker_client: docker.DockerClient
) -> None:
    docker_client.images.get("gsc-test/python-app").tag(
        "gsc-test/python-args", "latest"
    )
    image = "gsc-gsc-test/python-args-unsigned:latest"
    gsc.made += ["gsc-test/python-args:latest", image]
    gsc("build", "-c", str(gsc.config), "-L", "--insecure-args", "gsc-test/python-args")

    replaced = report(run_image(image, "x", "y z", env={"GRAMINE_MODE": "direct"}))
    default = report(run_image(image, env={"GRAMINE_MODE": "direct"}))

    assert replaced["argv"] == ["/app/report.py", "x", "y z"]
    assert default["argv"] == ["/app/report.py", "--name", "two words", ""]


def test_user_manifest_is_merged(gsc: Gsc, docker_client: docker.DockerClient) -> None:
    docker_client.images.get("gsc-test/python-app").tag(
        "gsc-test/python-merge", "latest"
    )
    image = "gsc-gsc-test/python-merge-unsigned:latest"
    gsc.made += ["gsc-test/python-merge:latest", image]
    manifest = gsc.workdir / "merge.manifest"
    manifest.write_text(
        '[loader.env]\nEXTRA = "from the user"\nPATH = "/opt/tools"\n'
        '[sgx]\nallowed_files = ["file:/app/report.py"]\nmax_threads = 8\n',
        encoding="utf-8",
    )
    gsc("build", "-c", str(gsc.config), "-L", "gsc-test/python-merge", str(manifest))

    inside = report(run_image(image, env={"GRAMINE_MODE": "direct"}))
    merged = read_manifest(docker_client, image)

    assert inside["env"]["EXTRA"] == "from the user"
    assert inside["env"]["PATH"].endswith(":/opt/tools")
    assert merged["sgx"]["max_threads"] == 8
    assert "file:/app/report.py" in merged["sgx"]["allowed_files"]
    assert "file:/app/report.py" not in {
        e["uri"] for e in merged["sgx"]["trusted_files"]
    }


def test_direct_mode_needs_linux_option(
    gsc: Gsc, docker_client: docker.DockerClient
) -> None:
    docker_client.images.get("gsc-test/python-app").tag(
        "gsc-test/python-sgx-only", "latest"
    )
    image = "gsc-gsc-test/python-sgx-only-unsigned:latest"
    gsc.made += ["gsc-test/python-sgx-only:latest", image]
    gsc("build", "-c", str(gsc.config), "gsc-test/python-sgx-only")

    result = run_image(image, env={"GRAMINE_MODE": "direct"})

    assert result.returncode == 2
    assert "-L/--linux" in result.stderr


def test_config_build_section_adds_to_the_options(gsc: Gsc, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"Gramine:\n  Image: {STANDIN_GRAMINE}\n"
        "Build:\n"
        "  Env: ['FROM_CONFIG=yes']\n"
        "  EncryptedVolumes: ['/data:mykey']\n",
        encoding="utf-8",
    )
    review = tmp_path / "review"

    gsc(
        "build",
        "-c",
        str(config),
        "--env",
        "FROM_CLI=too",
        "--file-only",
        str(review),
        "gsc-test/python-app",
    )
    manifest = tomllib.loads((review / "app_files" / "entrypoint.manifest").read_text())

    assert manifest["loader"]["env"]["FROM_CONFIG"] == "yes"
    assert manifest["loader"]["env"]["FROM_CLI"] == "too"
    assert {
        "type": "encrypted",
        "path": "/data",
        "uri": "file:/data",
        "key_name": "mykey",
    } in manifest["fs"]["mounts"]
