"""SIGINT and SIGTERM at each stage of `gsc build` and `gsc sign-image`: no
temporary directory, no dangling image, no container is left behind, and the
good image already under the tag survives. Real engine, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import Gsc, hash_workers
from tests.test_bad_input import engine_state

pytestmark = pytest.mark.engine

APP = "gsc-test/python-interrupt"
UNSIGNED = "gsc-gsc-test/python-interrupt-unsigned:latest"
SIGNED = "gsc-gsc-test/python-interrupt:latest"


@pytest.fixture(scope="module")
def good_images(
    gsc: Gsc,
    docker_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    docker_client.images.get("gsc-test/python-app").tag(APP, "latest")
    gsc.made += [f"{APP}:latest", UNSIGNED, SIGNED]
    key = tmp_path_factory.mktemp("interrupt") / "key.pem"
    gsc("build", "-c", str(gsc.config), "-L", APP)
    gsc("generate-key", str(key))
    gsc("sign-image", APP, str(key))
    yield key


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """The interrupted command's TMPDIR, which it must leave empty."""
    made = tmp_path / "tmp"
    made.mkdir()
    return made


def build_args(gsc: Gsc) -> list[str]:
    return ["-v", "build", "-c", str(gsc.config), "-L", "--no-cache", APP]


def interrupt(
    gsc: Gsc,
    args: list[str],
    marker: str,
    signum: int,
    delay: float,
    scratch: Path,
    *,
    with_workers: bool = False,
) -> tuple[int, list[int]]:
    """Start gsc, wait for a step line containing `marker` (and, if asked, for
    its hash worker processes to start), then send `signum`: its exit status,
    and the hash workers it was seen to run when asked to wait for them."""
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(scratch)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gsc", *args],
        cwd=gsc.workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if marker in line:
            break
    else:
        process.wait()
        pytest.fail(f"gsc ended before '{marker}': {''.join(seen)}")
    time.sleep(delay)
    workers: list[int] = []
    deadline = time.monotonic() + 10
    while with_workers and not workers and time.monotonic() < deadline:
        workers = hash_workers(process.pid)
        time.sleep(0.005)
    process.send_signal(signum)
    process.stderr.read()
    return process.wait(timeout=120), workers


STAGES = [
    ("build-inspect", "build", "Reading the Gramine runtime", 0.0),
    ("build-hash", "build", "Reading and hashing", 0.3),
    ("build-engine", "build", "Step 4/", 0.0),
    ("sign-measure", "sign", "Measuring", 0.0),
    ("sign-engine", "sign", "Step 2/", 0.0),
]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize(
    ("stage", "command", "marker", "delay"), STAGES, ids=[s[0] for s in STAGES]
)
def test_interruption_leaves_nothing_behind(
    stage: str,
    command: str,
    marker: str,
    delay: float,
    signum: int,
    gsc: Gsc,
    good_images: Path,
    docker_client: docker.DockerClient,
    scratch: Path,
) -> None:
    if command == "build":
        args = build_args(gsc)
    else:
        args = ["-v", "sign-image", APP, str(good_images)]
    before = engine_state(docker_client)
    good = {name: docker_client.images.get(name).id for name in (UNSIGNED, SIGNED)}

    status, _ = interrupt(gsc, args, marker, signum, delay, scratch)

    assert status in (130, 143), status
    assert list(scratch.iterdir()) == []
    assert engine_state(docker_client) == before
    assert {name: docker_client.images.get(name).id for name in good} == good


@pytest.mark.skipif(os.geteuid() != 0, reason="only root reads the layer directories")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_interruption_ends_the_hash_workers(
    signum: int,
    gsc: Gsc,
    good_images: Path,
    docker_client: docker.DockerClient,
    scratch: Path,
) -> None:
    before = engine_state(docker_client)

    status, workers = interrupt(
        gsc,
        build_args(gsc),
        "Reading and hashing",
        signum,
        0.0,
        scratch,
        with_workers=True,
    )

    assert workers, "no hash worker was running to interrupt"
    assert status in (130, 143), status
    assert set(workers) & set(hash_workers()) == set()
    assert list(scratch.iterdir()) == []
    assert engine_state(docker_client) == before


def test_interruption_while_the_engine_makes_a_container_leaves_none(
    gsc: Gsc, good_images: Path, docker_client: docker.DockerClient, scratch: Path
) -> None:
    # GSC makes a container to read the Gramine runtime from right after
    # this step line. A signal a few milliseconds later often comes while
    # the engine is still making it: the engine finishes it anyway.
    args = build_args(gsc)
    before = engine_state(docker_client)

    for step in range(12):
        marker, delay = "Reading the Gramine runtime", step / 1000
        status, _ = interrupt(gsc, args, marker, signal.SIGINT, delay, scratch)
        assert status == 130

    time.sleep(1)  # for a container the engine was still making to show
    assert engine_state(docker_client) == before
