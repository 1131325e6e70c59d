"""Several `gsc build` runs at once, on the same and on different images:
every run succeeds, and identical inputs give identical manifests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from tests.conftest import Gsc, run_image

pytestmark = pytest.mark.engine


def start(gsc: Gsc, *args: str, cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1", "XDG_CACHE_HOME": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-m", "gsc", *args],
        cwd=gsc.workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_builds_agree(
    gsc: Gsc, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    docker_client.images.get("gsc-test/python-app").tag(
        "gsc-test/python-conc", "latest"
    )
    same = "gsc-gsc-test/python-conc-unsigned:latest"
    other = "gsc-gsc-test/script-app-unsigned:latest"
    gsc.made += ["gsc-test/python-conc:latest", same, other]
    cache = tmp_path / "cache"
    config = str(gsc.config)

    runs = [
        start(gsc, "build", "-c", config, "-L", "gsc-test/python-conc", cache=cache),
        start(gsc, "build", "-c", config, "-L", "gsc-test/python-conc", cache=cache),
        start(gsc, "build", "-c", config, "-L", "gsc-test/script-app", cache=cache),
    ]
    results = [
        (run.wait(timeout=600), run.stderr.read() if run.stderr else "") for run in runs
    ]
    for status, stderr in results:
        assert status == 0, stderr

    review = tmp_path / "review"
    gsc("build", "-c", config, "-L", "--file-only", str(review), "gsc-test/python-conc")
    expected = hashlib.sha256(
        (review / "app_files" / "entrypoint.manifest").read_bytes()
    )
    labels = docker_client.images.get(same).labels
    assert labels["gsc.manifest-sha256"] == expected.hexdigest()
    for image in (same, other):
        result = run_image(image, env={"GRAMINE_MODE": "direct"})
        assert result.returncode == 0, result.stderr
