"""Engine faults: unreachable, dying mid-build, answering with an error. Each
gives one clear line, exit status 1, and the same clean state as before."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.conftest import STANDIN_GRAMINE, Gsc, error_line
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


@dataclass
class OwnEngine:
    """A second Docker engine of the test's own, which it may kill."""

    root: Path
    starts: int = 0

    @property
    def socket(self) -> str:
        return f"unix://{self.root}/engine.sock"

    def start(self) -> None:
        for _ in range(3):
            if self._try_start():
                return
            self.kill()
        tail = (self.root / "engine.log").read_text(errors="replace")[-1500:]
        pytest.fail(f"the test's own Docker engine did not start:\n{tail}")

    def _try_start(self) -> bool:
        # A new state directory on each start: a killed engine's containerd
        # leaves its own behind.
        self.starts += 1
        with (self.root / "engine.log").open("ab") as log:
            # In a network namespace of its own: an engine started without a
            # bridge would otherwise delete the host engine's docker0.
            self.process = subprocess.Popen(
                [
                    "unshare",
                    "--net",
                    "dockerd",
                    "--data-root",
                    str(self.root / "data"),
                    "--exec-root",
                    str(self.root / f"exec{self.starts}"),
                    "--pidfile",
                    str(self.root / "engine.pid"),
                    "--host",
                    self.socket,
                    "--bridge",
                    "none",
                    "--iptables=false",
                    "--ip-masq=false",
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["docker", "-H", self.socket, "info"], capture_output=True
            )
            if ping.returncode == 0:
                return True
            time.sleep(0.5)
        return False

    def docker(self, *args: str) -> str:
        return subprocess.run(
            ["docker", "-H", self.socket, *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def kill(self) -> None:
        """Kill the engine, and what it started, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        # Its containerd and the shims of its containers run in process groups
        # of their own, and must be gone before the engine can start again.
        for pid in _processes_mentioning(str(self.root)):
            _kill_and_wait(pid)

    def remove(self) -> None:
        self.kill()
        subprocess.run(["umount", "-R", str(self.root / "data")], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
    return found


def _kill_and_wait(pid: int) -> None:
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    status = Path(f"/proc/{pid}/status")
    while time.monotonic() < deadline:
        try:
            state = status.read_text()
        except OSError:
            return
        if "\nState:\tZ" in state:
            return
        time.sleep(0.1)


@pytest.fixture
def own_engine(docker_client: docker.DockerClient) -> Iterator[OwnEngine]:
    engine = OwnEngine(Path(tempfile.mkdtemp(prefix="gsc-engine-", dir="/tmp")))
    engine.start()
    try:
        for image in ("gsc-test/musl-app", STANDIN_GRAMINE):
            saved = subprocess.run(
                ["docker", "save", image], check=True, capture_output=True
            ).stdout
            subprocess.run(
                ["docker", "-H", engine.socket, "load"],
                input=saved,
                check=True,
                capture_output=True,
            )
        yield engine
    finally:
        engine.remove()


def test_engine_killed_during_the_build(
    gsc: Gsc, own_engine: OwnEngine, tmp_path: Path
) -> None:
    env = {"DOCKER_HOST": own_engine.socket, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    image = "gsc-gsc-test/musl-app-unsigned:latest"
    gsc("build", "-c", str(gsc.config), "gsc-test/musl-app", env=env)
    good = own_engine.docker("image", "inspect", "--format", "{{.Id}}", image)

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gsc",
            "-v",
            "build",
            "-c",
            str(gsc.config),
            "-nc",
            "gsc-test/musl-app",
        ],
        env={**os.environ, **env, "NO_COLOR": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "Step 4/" in line:
            break
    own_engine.kill()
    rest = process.stderr.read()
    status = process.wait(timeout=120)
    own_engine.start()

    assert status == 1
    errors = [line for line in rest.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 1 and "engine" in errors[0], rest
    assert "Traceback" not in rest
    assert list((tmp_path / "tmp").iterdir()) == []
    assert own_engine.docker("image", "inspect", "--format", "{{.Id}}", image) == good
    assert own_engine.docker("ps", "--all", "--quiet") == ""
    host_engine = subprocess.run(
        ["docker", "run", "--rm", "gsc-test/musl-app"], capture_output=True, text=True
    )
    assert host_engine.returncode == 0, host_engine.stderr
