"""Gramine's signing test vectors: where they are and how to read them."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

_REPOSITORY = Path(__file__).resolve().parents[2]
_SHARED_CANDIDATES = (
    Path(os.environ.get("GSC_SHARED_DIR", _REPOSITORY.parent / "shared")),
    Path("/work/shared"),
)
# Beside the repository (as CI lays it out), else the workplace's copy.
SHARED = next(
    (path for path in _SHARED_CANDIDATES if path.is_dir()), _SHARED_CANDIDATES[0]
)
VECTORS = SHARED / "testdata" / "sgx-vectors"

CASES = (
    "v1-minimal",
    "v2-small-debug",
    "v3-edmm",
    "v4-large",
    "v5-attributes",
    "v6-gsc-like",
    "v7-threads",
)
VECTOR_DATE = datetime.date(2026, 1, 2)

# The signer ran with the vectors directory mounted at /w.
SIGNER_MOUNT = "/w/"


def read_signer_file(path: str) -> bytes:
    """Read a path of the signer's file system from the vectors directory."""
    if not path.startswith(SIGNER_MOUNT):
        raise FileNotFoundError(2, "No such file or directory", path)
    return (VECTORS / path.removeprefix(SIGNER_MOUNT)).read_bytes()


def vector(case: str, suffix: str) -> bytes:
    """The bytes of one file of a test vector, e.g. vector("v1-minimal", ".sig")."""
    return (VECTORS / f"{case}{suffix}").read_bytes()


def view(case: str) -> dict[str, object]:
    """What Gramine's viewer reported for a vector's SIGSTRUCT."""
    reading: dict[str, object] = json.loads(vector(case, ".view.json"))
    return reading


def readelf_loads(path: Path) -> list[tuple[int, int, int, int, str]]:
    """(offset, vaddr, filesz, memsz, flags) of each PT_LOAD, as binutils sees it."""
    output = subprocess.run(
        ["readelf", "-lW", str(path)], check=True, capture_output=True, text=True
    ).stdout
    loads = []
    for line in output.splitlines():
        fields = line.split()
        if fields[:1] == ["LOAD"]:
            offset, vaddr, _, filesz, memsz = (int(f, 16) for f in fields[1:6])
            loads.append((offset, vaddr, filesz, memsz, "".join(fields[6:-1])))
    return loads
