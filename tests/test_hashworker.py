"""The worker processes that read and hash files on the host."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gsc import hashworker
from gsc.errors import ImageError
from gsc.hashing import DiskFile, HashPool
from gsc.hashworker import command, serve
from tests.conftest import hash_workers

ELF = "/bin/true"


def ask(request: object) -> object:
    answers = io.StringIO()
    serve(io.StringIO(json.dumps(request) + "\n"), answers)
    return json.loads(answers.getvalue())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_worker_answers_digests_and_heads_in_the_order_asked(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"x" * 5000)
    elf = Path(ELF).read_bytes()

    found = ask([1024, [[ELF, len(elf), 16], [str(small), 5000, 0]]])

    assert found == [[sha256(elf), elf[:16].hex()], [sha256(b"x" * 5000), ""]]
    assert bytes.fromhex(found[0][1]).startswith(b"\x7fELF")


def test_a_worker_names_the_first_file_it_cannot_read(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_bytes(b"abc")
    missing = str(tmp_path / "missing")

    assert ask([64, [[str(present), 3, 0], [missing, 1, 0]]]) == {
        "unreadable": [missing, "No such file or directory"]
    }
    assert ask([64, [[str(present), 2, 0]]]) == {"changed": str(present)}


def test_a_worker_process_ignores_ctrl_c_and_ends_with_its_input(
    tmp_path: Path,
) -> None:
    file = tmp_path / "file"
    file.write_bytes(b"data")
    worker = subprocess.Popen(
        command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(json.dumps([64, [[str(file), 4, 0]]]) + "\n")
    worker.stdin.flush()
    assert json.loads(worker.stdout.readline()) == [[sha256(b"data"), ""]]

    worker.send_signal(signal.SIGINT)
    worker.stdin.write(json.dumps([64, [[str(file), 4, 0]]]) + "\n")
    worker.stdin.flush()
    assert json.loads(worker.stdout.readline()) == [[sha256(b"data"), ""]]

    worker.stdin.close()
    assert worker.wait(timeout=30) == 0
    worker.stdout.close()


def files_of(tmp_path: Path, count: int) -> list[tuple[DiskFile, bytes]]:
    made = []
    for n in range(count):
        data = bytes([n % 251]) * (n * 37 % 9000)
        path = tmp_path / f"f{n}"
        path.write_bytes(data)
        made.append((DiskFile(str(path), len(data)), data))
    return made


def test_a_pool_reads_files_in_processes_once_enough_are_handed_over(
    tmp_path: Path,
) -> None:
    made = files_of(tmp_path, 300)
    elf = Path(ELF).read_bytes()
    program = DiskFile(ELF, len(elf), 256)

    with HashPool(workers=2, processes_after=100) as pool:
        files = [file for file, _ in made]
        for start in range(0, len(files), 10):
            pool.disk_files(files[start : start + 10])
        pool.disk_files([program])
        pool.wait()
        started = pool.processes_started

    assert started >= 1
    assert [file.hexdigest() for file in files] == [sha256(data) for _, data in made]
    assert program.hexdigest() == sha256(elf) and program.head == elf[:256]
    assert hash_workers(os.getpid()) == []


def test_closing_a_pool_drops_the_work_not_started(tmp_path: Path) -> None:
    made = files_of(tmp_path, 400)
    files = [file for file, _ in made]
    pool = HashPool(workers=1, processes_after=0)
    for start in range(0, len(files), 4):
        pool.disk_files(files[start : start + 4])

    pool.close()

    hashed = [file for file in files if file.value]
    assert len(hashed) < len(files) // 2
    assert all(file.value == sha256(data) for file, data in made if file.value)
    assert hash_workers(os.getpid()) == []


def test_a_pool_under_the_threshold_starts_no_process(tmp_path: Path) -> None:
    made = files_of(tmp_path, 20)
    with HashPool(workers=2) as pool:
        pool.disk_files([file for file, _ in made])
        pool.wait()
        assert pool.processes_started == 0
    assert all(file.hexdigest() == sha256(data) for file, data in made)


def test_a_pool_whose_processes_cannot_start_hashes_in_its_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stands in for a Python that cannot start another interpreter.
    monkeypatch.setattr(hashworker, "command", lambda: [str(tmp_path / "none")])
    made = files_of(tmp_path, 50)

    with HashPool(workers=2, processes_after=0) as pool:
        pool.disk_files([file for file, _ in made])
        pool.wait()
        assert pool.processes_started == 0

    assert all(file.hexdigest() == sha256(data) for file, data in made)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda path: path.unlink(), r"cannot read .*\(No such file"),
        (lambda path: path.write_bytes(b"longer"), "changed while it was read"),
    ],
)
def test_a_process_failure_is_the_same_error_as_in_a_thread(
    tmp_path: Path, break_it: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"abc")
    file = DiskFile(str(path), 3)
    break_it(path)

    with HashPool(workers=1, processes_after=0) as pool:
        pool.disk_files([file])
        with pytest.raises(ImageError, match=message):
            pool.wait()
        assert pool.processes_started == 1
    assert hash_workers(os.getpid()) == []
