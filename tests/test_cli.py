"""Tests for gsc.cli: parsing, build arguments, and failures as exit statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

import gsc
from gsc.cli import _safe_argv, build_args, main
from gsc.errors import GscError


def test_build_args_key_and_value() -> None:
    values = ["A=1", "B=x=y", "C=", "D= spaced "]

    assert build_args(values) == (
        ("A", "1"),
        ("B", "x=y"),
        ("C", ""),
        ("D", " spaced "),
    )


def test_bare_key_takes_the_host_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSC_TEST_PROXY", "http://proxy:3128")
    monkeypatch.setenv("GSC_TEST_EMPTY", "")

    pairs = build_args(["GSC_TEST_PROXY", "GSC_TEST_EMPTY"])

    assert pairs == (("GSC_TEST_PROXY", "http://proxy:3128"), ("GSC_TEST_EMPTY", ""))


def test_bare_key_absent_from_the_host_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GSC_TEST_UNSET", raising=False)

    assert build_args(["GSC_TEST_UNSET", "KEPT=1"]) == (("KEPT", "1"),)


@pytest.mark.parametrize("value", ["=1", "=", ""])
def test_empty_key_is_an_error(value: str) -> None:
    with pytest.raises(GscError, match="the key is empty"):
        build_args([value])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])

    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"gsc {gsc.__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["build"],
        ["build", "app", "--buildtype", "fast"],
        ["build", "app", "--no-such-option"],
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)

    assert caught.value.code == 2
    assert "usage: gsc" in capsys.readouterr().err


def test_safe_argv_hides_passphrases() -> None:
    argv = ["gsc", "sign-image", "app", "key.pem", "-p", "s3cret", "--passphrase=pw"]

    shown = _safe_argv([*argv, "--passphrase", "other"])

    assert shown == [
        "gsc",
        "sign-image",
        "app",
        "key.pem",
        "-p",
        "***",
        "--passphrase=***",
        "--passphrase",
        "***",
    ]
    assert not {"s3cret", "pw", "other"} & set(shown)


def test_safe_argv_leaves_other_arguments() -> None:
    argv = ["gsc", "build", "-d", "app", "--build-arg", "PASS=1"]

    assert _safe_argv(argv) == argv


def test_failure_is_one_line_and_exit_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The config file is read before the engine is contacted.
    monkeypatch.setenv("NO_COLOR", "1")
    missing = tmp_path / "nonexistent.yaml"

    status = main(["build", "x", "-c", str(missing)])

    out, err = capsys.readouterr()
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("ERROR ")
    assert str(missing) in err


def test_bad_build_arg_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["build", "x", "--build-arg", "=oops"])

    err = capsys.readouterr().err
    assert status == 1
    assert err.splitlines() == ["ERROR --build-arg '=oops': the key is empty"]
