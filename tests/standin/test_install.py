"""The stand-in's layout, made by install.sh on the host (no engine)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from elftools.elf.elffile import ELFFile

STANDIN_DIR = Path(__file__).resolve().parent
LIBDIR = "lib/x86_64-linux-gnu"
BANNER = "gramine stand-in (test double, not Gramine)"
PAGE = 0x1000
PLACEHOLDERS = [
    "gramine-manifest",
    "gramine-manifest-check",
    "gramine-sgx-sign",
    "gramine-sgx-sigstruct-view",
    "gramine-sgx-gen-private-key",
    "gramine-argv-serializer",
    "gramine-sgx-pf-crypt",
    "gramine-sgx-pf-tamper",
    "gramine-sgx-quote-view",
    "gramine-ratls",
    "gramine-gen-depend",
    "is-sgx-available",
]


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("standin-install") / "gramine"
    subprocess.run(
        ["bash", str(STANDIN_DIR / "install.sh"), str(root), LIBDIR], check=True
    )
    return root


def pkglibdir(prefix: Path) -> Path:
    return prefix / LIBDIR / "gramine"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_layout_matches_an_installed_gramine(prefix: Path) -> None:
    lib = pkglibdir(prefix)

    assert (lib / "libsysdb.so").is_file()
    assert (lib / "sgx" / "loader").is_file()
    assert os.readlink(lib / "direct" / "loader") == "libpal.so"
    assert (
        (lib / "direct" / "libpal.so").read_bytes()
        != (lib / "sgx" / "loader").read_bytes()
        == (lib / "sgx" / "loader").read_bytes()
    )
    for name in ["gramine-sgx", "gramine-direct", *PLACEHOLDERS]:
        assert os.access(prefix / "bin" / name, os.X_OK), name
    doc = prefix / "share" / "doc" / "gramine-standin" / "README.md"
    assert "test double, not Gramine" in doc.read_text()


def test_sgx_pal_is_a_shared_object_with_separate_load_segments(prefix: Path) -> None:
    with (pkglibdir(prefix) / "sgx" / "libpal.so").open("rb") as file:
        elf = ELFFile(file)
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        header = elf.header

    assert header["e_type"] == "ET_DYN"
    assert header["e_entry"] != 0
    assert len(loads) >= 3
    assert any(seg["p_memsz"] > seg["p_filesz"] for seg in loads)
    pages = [
        (seg["p_vaddr"] // PAGE, (seg["p_vaddr"] + seg["p_memsz"] - 1) // PAGE)
        for seg in loads
    ]
    for (_, last), (first, _) in itertools.pairwise(pages):
        assert last < first


def test_loader_is_static(prefix: Path) -> None:
    with (pkglibdir(prefix) / "direct" / "libpal.so").open("rb") as file:
        segments = [seg["p_type"] for seg in ELFFile(file).iter_segments()]

    assert "PT_INTERP" not in segments
    assert "PT_DYNAMIC" not in segments


def test_runtime_directory_holds_no_c_library(prefix: Path) -> None:
    names = sorted(p.name for p in (pkglibdir(prefix) / "runtime" / "glibc").iterdir())

    assert names == ["README.standin", "libgsc_standin_marker.so"]


def test_placeholders_say_they_are_stand_ins(prefix: Path) -> None:
    result = subprocess.run(
        [str(prefix / "bin" / "gramine-sgx-sign")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
    assert "not provided by the gramine stand-in" in result.stderr


def write_app(prefix: Path, directory: Path) -> Path:
    """A Python application and both of its manifests; returns APP."""
    report = directory / "report.py"
    report.write_text("import json, sys\nprint(json.dumps(sys.orig_argv))\n")
    python = Path(os.path.realpath(sys.executable))
    sysdb = pkglibdir(prefix) / "libsysdb.so"
    manifest = {
        "libos": {"entrypoint": str(python)},
        "loader": {
            "entrypoint": {"uri": f"file:{sysdb}", "sha256": sha256_of(sysdb)},
            "insecure__use_cmdline_argv": True,
            "env": {"LD_LIBRARY_PATH": str(pkglibdir(prefix) / "runtime" / "glibc")},
        },
        "sgx": {
            "trusted_files": [
                {"uri": f"file:{path}", "sha256": sha256_of(path)}
                for path in (python, report)
            ]
        },
    }
    app = directory / "app"
    text = tomli_w.dumps(manifest)
    Path(f"{app}.manifest").write_text(text)
    Path(f"{app}.manifest.sgx").write_text(text)
    Path(f"{app}.sig").write_bytes(bytes(1808))
    return app


@pytest.mark.parametrize("wrapper", ["gramine-direct", "gramine-sgx"])
def test_wrapper_starts_the_application(
    prefix: Path, tmp_path: Path, wrapper: str
) -> None:
    app = write_app(prefix, tmp_path)
    report = str(tmp_path / "report.py")

    result = subprocess.run(
        [str(prefix / "bin" / wrapper), str(app), report, "two words", ""],
        capture_output=True,
        text=True,
        check=False,
        env={},
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [BANNER]
    assert json.loads(result.stdout) == [str(app), report, "two words", ""]


@pytest.mark.parametrize(
    ("wrapper", "suffix"),
    [("gramine-direct", ".manifest"), ("gramine-sgx", ".manifest.sgx")],
)
def test_wrapper_needs_the_manifest(
    prefix: Path, tmp_path: Path, wrapper: str, suffix: str
) -> None:
    app = tmp_path / "missing"

    result = subprocess.run(
        [str(prefix / "bin" / wrapper), str(app)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2
    assert f"{app}{suffix} does not exist" in result.stderr


def test_sgx_loader_is_dynamically_linked_like_gramines(prefix: Path) -> None:
    with (pkglibdir(prefix) / "sgx" / "loader").open("rb") as file:
        segments = [seg["p_type"] for seg in ELFFile(file).iter_segments()]

    assert "PT_INTERP" in segments
