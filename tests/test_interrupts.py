"""gsc.interrupts: signals that land while a scratch directory is made or removed."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
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


def test_a_held_signal_arrives_when_the_block_ends() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("end of the block")
        reached.append("after the block")

    assert reached == ["end of the block"]
