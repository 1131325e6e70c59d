"""`gsc build-gramine` without an engine: the Dockerfiles it writes, compared
whole with the files in expected/, and the errors it stops with first."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from gsc.commands import build_gramine
from gsc.commands.build_gramine import (
    BuildGramineOptions,
    make_recipe,
    render_dockerfile,
    run,
)
from gsc.config import Config
from gsc.errors import ConfigError, GscError, ImageError
from gsc.ui import Ui
from tests.test_distros import SUPPORTED

EXPECTED = Path(__file__).resolve().parent / "expected"
STANDIN = Path(__file__).resolve().parents[1] / "gramine-source-standin"


def expected(name: str) -> str:
    return (EXPECTED / name).read_text(encoding="utf-8")


def slug(distro: str) -> str:
    return distro.replace(":", "-").replace("/", "-")


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    """A copy of the Gramine source stand-in, outside any git checkout."""
    target = tmp_path / "gramine"
    shutil.copytree(STANDIN, target)
    return target


def quiet_ui() -> Ui:
    return Ui(verbosity=-1, stream=io.StringIO())


@pytest.mark.parametrize("distro", SUPPORTED)
def test_git_source_with_direct_mode(distro: str) -> None:
    options = BuildGramineOptions(image="gramine", linux=True)

    dockerfile = render_dockerfile(make_recipe(options, Config(distro=distro)))

    assert dockerfile == expected(f"gramine-{slug(distro)}.Dockerfile")


def test_local_directory_debug_without_direct_mode(source: Path) -> None:
    config = Config(
        distro="debian:12", registry="gsc-test/", gramine_repository=str(source)
    )
    options = BuildGramineOptions(image="gramine", debug=True)

    dockerfile = render_dockerfile(make_recipe(options, config))

    assert dockerfile == expected("gramine-debian-12-directory-debug.Dockerfile")


def test_local_archive_debugoptimized(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "gramine-v1.9.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="gramine-v1.9")
    config = Config(distro="centos:stream9", gramine_repository=str(archive))
    options = BuildGramineOptions(
        image="gramine", buildtype="debugoptimized", linux=True
    )

    dockerfile = render_dockerfile(make_recipe(options, config))

    assert dockerfile == expected("gramine-centos-stream9-archive.Dockerfile")


def test_debug_flag_keeps_an_explicit_build_type() -> None:
    options = BuildGramineOptions(image="g", debug=True, buildtype="debugoptimized")

    assert (
        make_recipe(options, Config(distro="debian:12")).buildtype == "debugoptimized"
    )


def test_git_checkout_commit_is_in_the_labels(source: Path) -> None:
    def git(*args: str) -> str:
        command = [
            "git",
            "-C",
            str(source),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
        ]
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "--quiet")
    git("add", ".")
    git("commit", "--quiet", "-m", "stand-in")
    commit = git("rev-parse", "HEAD")
    config = Config(distro="ubuntu:24.04", gramine_repository=str(source))

    dockerfile = render_dockerfile(make_recipe(BuildGramineOptions(image="g"), config))

    assert f'gsc.gramine.commit="{commit}"' in dockerfile
    assert f"from the host (commit {commit})." in dockerfile


@pytest.mark.parametrize("distro", ["auto", ""])
def test_auto_distro_stops_before_anything_else(distro: str) -> None:
    config = Config(distro=distro, gramine_repository="/nonexistent/gramine")

    with pytest.raises(ConfigError) as caught:
        run(BuildGramineOptions(image="gramine"), config, quiet_ui())

    assert str(caught.value).startswith(
        "Distro must name a distro for build-gramine, e.g. debian:12; supported:"
        " debian:11, debian:12"
    )


def test_unknown_distro() -> None:
    with pytest.raises(ConfigError, match=r"^Distro 'alpine:3\.19' is not supported"):
        run(
            BuildGramineOptions(image="gramine"),
            Config(distro="alpine:3.19"),
            quiet_ui(),
        )


def test_missing_local_repository_path(tmp_path: Path) -> None:
    config = Config(distro="debian:12", gramine_repository=str(tmp_path / "gone"))

    with pytest.raises(ConfigError) as caught:
        run(BuildGramineOptions(image="gramine"), config, quiet_ui())

    assert str(caught.value).startswith(
        f"Gramine.Repository '{tmp_path / 'gone'}': no such directory or archive"
    )


@pytest.mark.parametrize(
    "name", ["Gramine", "gramine:", "gramine:-x", "a//b", "g@sha256:ab", "Gsc/gramine"]
)
def test_invalid_image_name(name: str) -> None:
    with pytest.raises(ImageError, match=r"^IMAGE-NAME '.*': not a valid image name"):
        run(BuildGramineOptions(image=name), Config(distro="debian:12"), quiet_ui())


@pytest.mark.parametrize(
    "name",
    [
        "gramine",
        "gramine:v1.9",
        "gsc-test/gramine_1",
        "localhost:5000/a/b:1",
        "registry.example.com/gsc/gramine:1.9",
    ],
)
def test_valid_image_names(name: str) -> None:
    build_gramine.check_image_name(name)


def test_file_only_writes_the_context_and_builds_nothing(
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_engine() -> None:
        raise GscError("file-only must not talk to the engine")

    monkeypatch.setattr(build_gramine, "connect", no_engine)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    config = Config(distro="debian:12", gramine_repository=str(source))
    options = BuildGramineOptions(image="gsc-test/gramine:1", file_only=True)

    status = run(options, config, quiet_ui())

    written = Path(capsys.readouterr().out.strip())
    assert status == 0
    assert written.parent == workdir
    assert written.name.startswith("gsc-build-gramine-gsc-test-gramine-1-")
    assert (written / "Dockerfile").read_text("utf-8") == render_dockerfile(
        make_recipe(options, config)
    )
    assert (written / "gramine-source" / "meson.build").is_file()
    assert (written / "gramine-source/subprojects/packagecache").is_dir()


def test_file_only_twice_makes_two_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    options = BuildGramineOptions(image="gramine", file_only=True)

    run(options, Config(distro="ubuntu:22.04"), quiet_ui())
    run(options, Config(distro="ubuntu:22.04"), quiet_ui())

    written = capsys.readouterr().out.split()
    assert len(set(written)) == 2
    assert [p.name for p in Path(written[0]).iterdir()] == ["Dockerfile"]
