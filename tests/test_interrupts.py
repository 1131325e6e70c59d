"""gsc.interrupts: signals that land while a scratch directory is made or removed."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gsc.interrupts import scratch_directory, signals_held


def test_a_ctrl_c_as_the_scratch_directory_is_removed_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    remove = shutil.rmtree

    def signalled_then_removed(path: Any, *args: Any, **kwargs: Any) -> None:
        # A real SIGINT to this process, just as the removal begins.
        os.kill(os.getpid(), signal.SIGINT)
        remove(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", signalled_then_removed)

    with pytest.raises(KeyboardInterrupt), scratch_directory("gsc-test-") as scratch:
        (scratch / "Dockerfile").write_text("FROM scratch\n")
        (scratch / "context").mkdir()

    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_in_the_block_removes_the_scratch_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    with pytest.raises(KeyboardInterrupt), scratch_directory("gsc-test-") as scratch:
        (scratch / "file").write_bytes(b"x")
        os.kill(os.getpid(), signal.SIGINT)

    assert list(tmp_path.iterdir()) == []
    assert scratch.name.startswith("gsc-test-")


@pytest.fixture
def other_thread() -> Iterator[None]:
    """Another thread, waiting: the kernel may hand it a signal sent to the
    process, which a mask on the main thread alone would not hold back."""
    done = threading.Event()
    waiting = threading.Thread(target=done.wait)
    waiting.start()
    yield
    done.set()
    waiting.join()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_held_signal_arrives_when_the_block_ends(
    signum: int, other_thread: None
) -> None:
    class Terminated(Exception):
        pass

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated

    # As the command line sets it: SIGTERM raises, as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        reached = []
        with pytest.raises((KeyboardInterrupt, Terminated)) as raised:
            with signals_held():
                os.kill(os.getpid(), signum)
                time.sleep(0.05)
                reached.append("end of the block")
            reached.append("after the block")
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert reached == ["end of the block"]
    assert raised.type is (KeyboardInterrupt if signum == signal.SIGINT else Terminated)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
