"""Fixtures for the Gramine stand-in tests: the loader compiled on the host."""

import shutil
import subprocess
from pathlib import Path

import pytest

STANDIN_DIR = Path(__file__).resolve().parent
SOURCES = ["loader.c", "toml.c", "sha256.c"]
CFLAGS = ["-static", "-O2", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="session")
def loader_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the stand-in loader as sgx/loader and direct/loader."""
    root = tmp_path_factory.mktemp("standin-loader")
    (root / "sgx").mkdir()
    (root / "direct").mkdir()
    sources = [str(STANDIN_DIR / "src" / name) for name in SOURCES]
    subprocess.run(
        ["gcc", *CFLAGS, "-o", str(root / "direct" / "loader"), *sources],
        check=True,
    )
    shutil.copy2(root / "direct" / "loader", root / "sgx" / "loader")
    (root / "libpal.so").write_bytes(b"\x7fELF stand-in PAL placeholder\n")
    return root
