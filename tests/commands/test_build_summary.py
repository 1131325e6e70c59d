"""The summary line of `gsc build`: how many files it trusts, and where."""

from __future__ import annotations

import posixpath

import pytest

from gsc.commands.build import _summarize, _top_directory
from gsc.image import Entry, FileSystem
from gsc.ui import Ui


@pytest.mark.parametrize(
    "path",
    ["/x", "/usr/x", "/usr/bin/python3", "/usr/lib/x/y", "/a/b/c/d/e", "/usr/lib/"],
)
def test_top_directory_is_the_first_two_levels_of_the_directory(path: str) -> None:
    levels = posixpath.dirname(path).split("/")[:3]
    assert _top_directory(path) == ("/".join(levels) or "/")


def test_summary_counts_files_and_sizes_by_directory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sizes = {"/usr/lib/a/b.so": 3_000_000, "/usr/lib/c.so": 1_000_000}
    sizes |= {"/usr/bin/tool": 2_000_000, "/init": 500_000, "/app/x.py": 100_000}
    fs = FileSystem({p: Entry(p, "file", 0o644, 0, 0, n) for p, n in sizes.items()})
    trusted = [{"uri": f"file:{p}", "sha256": "0" * 64} for p in sizes]
    manifest = {"sgx": {"trusted_files": [*trusted, "file:/missing"]}}

    _summarize(manifest, fs, "debian", Ui())

    line = capsys.readouterr().err
    assert "Trusting 6 files, 6.6 MB" in line
    assert "(largest: /usr/lib 4.0 MB, /usr/bin 2.0 MB, / 0.5 MB)" in line
    assert line.rstrip().endswith("distro debian")
