"""Engine faults: unreachable, dying mid-build, answering with an error. Each
gives one clear line, exit status 1, and the same clean state as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import Gsc, error_line
from tests.engine_proxy import EngineProxy
from tests.test_bad_input import engine_state

pytestmark = pytest.mark.engine

APP = "gsc-test/python-faults"
UNSIGNED = "gsc-gsc-test/python-faults-unsigned:latest"


@pytest.fixture(scope="module")
def good_image(gsc: Gsc, docker_client: docker.DockerClient) -> Iterator[str]:
    docker_client.images.get("gsc-test/python-app").tag(APP, "latest")
    gsc.made += [f"{APP}:latest", UNSIGNED]
    gsc("build", "-c", str(gsc.config), "-L", APP)
    yield docker_client.images.get(UNSIGNED).id


@pytest.mark.parametrize("mode", ["error", "cut"])
def test_engine_failing_during_the_build(
    mode: str,
    gsc: Gsc,
    good_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    proxy = EngineProxy(tmp_path / "engine.sock", b"/build", mode)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    before = engine_state(docker_client)
    try:
        result = gsc(
            "build",
            "-c",
            str(gsc.config),
            "-L",
            "--no-cache",
            APP,
            check=False,
            env={"DOCKER_HOST": proxy.url, "TMPDIR": str(scratch)},
        )
    finally:
        proxy.close()

    assert proxy.triggered.is_set()
    line = error_line(result)
    assert "build" in line
    assert list(scratch.iterdir()) == []
    assert docker_client.images.get(UNSIGNED).id == good_image
    assert engine_state(docker_client)[1] == before[1]


def test_engine_that_cannot_be_reached(gsc: Gsc, tmp_path: Path) -> None:
    result = gsc(
        "build",
        "-c",
        str(gsc.config),
        APP,
        check=False,
        env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
    )

    line = error_line(result)
    assert "cannot reach the container engine" in line
