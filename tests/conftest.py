"""Shared fixtures: the real engine, the offline test images, a config file."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest
from hypothesis import settings

# In CI, property tests run the same examples every time, so that a result
# can be reproduced; elsewhere they explore new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The gsc commands the tests start run this checkout's code, not an installed
# copy (which may be another checkout's, when the package is installed editable).
ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
)


def hash_workers(parent: int | None = None) -> list[int]:
    """The hash worker processes (`gsc/hashworker.py`) running now: those of
    `parent`, or all of them, whoever their parent is."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue  # /proc/self and the like
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(status.rsplit(")", 1)[1].split()[1])
        is_worker = any(a.endswith(b"gsc/hashworker.py") for a in arguments)
        if is_worker and parent in (None, ppid):
            found.append(int(entry.name))
    return found


STANDIN_GRAMINE = "gsc-test/standin-gramine"
TEST_IMAGES = (
    "gsc-test/debian:12",
    "gsc-test/python-app",
    "gsc-test/script-app",
    "gsc-test/user-app",
    "gsc-test/volume-app",
    "gsc-test/musl-app",
    "gsc-test/scratch-static",
    STANDIN_GRAMINE,
)


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """The real engine, with the offline test images present."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as err:
        pytest.fail(f"no Docker engine answers ({err}); run scripts/setup-engine")
    for name in TEST_IMAGES:
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            pytest.fail(f"test image {name} is missing; run scripts/make-test-images")
    return client


@dataclass
class Gsc:
    """Runs the gsc command line as a user would, in a scratch directory."""

    workdir: Path
    config: Path
    made: list[str] = field(default_factory=list)

    def __call__(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "NO_COLOR": "1",
            "XDG_STATE_HOME": str(self.workdir / "state"),
            "XDG_CACHE_HOME": str(self.workdir / "cache"),
            **(env or {}),
        }
        result = subprocess.run(
            [sys.executable, "-m", "gsc", *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"gsc {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result


@pytest.fixture(scope="session")
def gsc(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Gsc]:
    """The gsc command with a config naming the stand-in Gramine image.

    Images named in `made` are removed when the session ends.
    """
    tmp_path = tmp_path_factory.mktemp("gsc")
    config = tmp_path / "config.yaml"
    config.write_text(f"Gramine:\n  Image: {STANDIN_GRAMINE}\n", encoding="utf-8")
    runner = Gsc(workdir=tmp_path, config=config)
    yield runner
    for name in runner.made:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(name, force=True)


def run_image(
    image: str,
    *args: str,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`docker run` an image the way the README tells users to."""
    command = ["docker", "run", "--rm", "--security-opt", "seccomp=unconfined"]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    command += [*extra, image, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a run that failed on bad input (exit status 1)."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def instructions(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The instruction of each step of the engine's build, from `gsc -v` output."""
    return [
        line.split(" : ", 1)[1].split()[0]
        for line in result.stderr.splitlines()
        if line.strip().startswith("Step ")
    ]
