"""Where `gsc build-gramine` takes Gramine's source: git URLs, directories and
archives on the host, and the subproject archives an air-gapped build needs."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from gsc.errors import ConfigError
from gsc.gramine_source import locate, stage

STANDIN = Path(__file__).resolve().parent / "gramine-source-standin"
PACKAGECACHE = "subprojects/packagecache/standin-marker-1.0.tar.gz"


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    """A copy of the Gramine source stand-in, outside any git checkout."""
    target = tmp_path / "gramine"
    shutil.copytree(STANDIN, target)
    return target


def make_archive(directory: Path, archive: Path, top: str) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=top)
    return archive


def git(directory: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-C",
            str(directory),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/gramineproject/gramine.git",
        "http://127.0.0.1:8080/gramine.git",
        "ssh://git@example.com/gramine.git",
        "git@github.com:gramineproject/gramine.git",
    ],
)
def test_urls_are_cloned_during_the_build(url: str) -> None:
    found = locate(url, "v1.9")

    assert (found.kind, found.location, found.ref, found.commit) == (
        "git",
        url,
        "v1.9",
        "",
    )
    assert found.is_git


def test_credentials_in_a_url_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        locate("https://user:token@example.com/gramine.git", "v1.9")

    assert "credentials" in str(caught.value)
    assert "token" not in str(caught.value)


def test_shell_characters_in_a_url_are_refused() -> None:
    with pytest.raises(ConfigError, match="not allowed in a git URL"):
        locate("https://example.com/$(reboot).git", "v1.9")


@pytest.mark.parametrize("ref", ["-x", "a b", "v1.9;reboot", "a..b", "v1.9.lock", ""])
def test_branch_must_be_a_plain_ref_name(ref: str) -> None:
    with pytest.raises(ConfigError, match=r"^Gramine.Branch '.*': not a branch"):
        locate("https://example.com/gramine.git", ref)


@pytest.mark.parametrize(
    "ref", ["v1.9", "master", "release/1.9", "0123abc", "v1.9-rc1"]
)
def test_branch_tag_and_commit_names_are_accepted(ref: str) -> None:
    assert locate("https://example.com/gramine.git", ref).ref == ref


def test_missing_local_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(ConfigError) as caught:
        locate(str(missing), "v1.9")

    assert str(caught.value) == (
        f"Gramine.Repository '{missing}': no such directory or archive on this host"
        " (a git URL needs a scheme, such as https://)"
    )


def test_directory_outside_git_has_an_unknown_commit(source: Path) -> None:
    found = locate(str(source), "v1.9")

    assert (found.kind, found.location, found.commit) == (
        "directory",
        str(source),
        "unknown",
    )
    assert found.context_name == "gramine-source"


def test_file_url_names_a_local_directory(source: Path) -> None:
    assert locate(f"file://{source}", "v1.9").kind == "directory"


def test_relative_paths_are_taken_from_the_current_directory(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(source.parent)

    assert locate("gramine", "v1.9").location == str(source)


def test_git_checkout_records_its_head(source: Path) -> None:
    git(source, "init", "--quiet")
    git(source, "add", ".")
    git(source, "commit", "--quiet", "-m", "stand-in")

    found = locate(str(source), "v1.9")

    assert found.commit == git(source, "rev-parse", "HEAD")
    assert len(found.commit) == 40


def test_directory_inside_another_checkout_has_an_unknown_commit(
    tmp_path: Path,
) -> None:
    outer = tmp_path / "outer"
    shutil.copytree(STANDIN, outer / "gramine")
    git(outer, "init", "--quiet")
    git(outer, "add", ".")
    git(outer, "commit", "--quiet", "-m", "outer")

    assert locate(str(outer / "gramine"), "v1.9").commit == "unknown"


def test_directory_without_meson_build_is_not_gramine(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no meson\.build in it"):
        locate(str(tmp_path), "v1.9")


def test_subproject_without_its_archive_is_an_error(source: Path) -> None:
    (source / PACKAGECACHE).unlink()

    with pytest.raises(ConfigError) as caught:
        locate(str(source), "v1.9")

    message = str(caught.value)
    assert "the source of subproject standin-marker is missing" in message
    assert "run 'meson subprojects download'" in message


def test_unpacked_subproject_needs_no_archive(source: Path) -> None:
    (source / PACKAGECACHE).unlink()
    (source / "subprojects/standin-marker-1.0").mkdir()
    (source / "subprojects/standin-marker-1.0/meson.build").write_text("", "utf-8")

    assert locate(str(source), "v1.9").kind == "directory"


def test_git_wrap_needs_its_checkout(source: Path) -> None:
    wrap = "[wrap-git]\nurl = https://example.com/x.git\nrevision = head\n"
    (source / "subprojects/many.wrap").write_text(wrap, "utf-8")
    for name in ("a", "b", "c"):
        (source / f"subprojects/{name}.wrap").write_text(wrap, "utf-8")
    (source / "subprojects/redirect.wrap").write_text(
        "[wrap-redirect]\nfilename = elsewhere/x.wrap\n", "utf-8"
    )

    with pytest.raises(ConfigError) as caught:
        locate(str(source), "v1.9")

    assert "subproject a, b, c and 1 more is missing" in str(caught.value)
    (source / "subprojects/many").mkdir()
    (source / "subprojects/many/meson.build").write_text("", "utf-8")
    for name in ("a", "b", "c"):
        (source / f"subprojects/{name}.wrap").unlink()
    assert locate(str(source), "v1.9").kind == "directory"


def test_broken_wrap_file_is_named(source: Path) -> None:
    (source / "subprojects/broken.wrap").write_text("no section here\n", "utf-8")

    with pytest.raises(ConfigError, match=r"subprojects/broken.wrap is not a valid"):
        locate(str(source), "v1.9")


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar"])
def test_archive_finds_its_top_directory(
    source: Path, tmp_path: Path, suffix: str
) -> None:
    archive = tmp_path / f"gramine-1.9{suffix}"
    with tarfile.open(archive, "w" if suffix == ".tar" else "w:gz") as tar:
        tar.add(source, arcname="gramine-1.9")

    found = locate(str(archive), "v1.9")

    assert (found.kind, found.root, found.commit) == (
        "archive",
        "gramine-1.9",
        "unknown",
    )
    assert found.context_name == "gramine-source" + (
        ".tar" if suffix == ".tar" else ".tar.gz"
    )


def test_archive_with_the_source_at_its_top(source: Path, tmp_path: Path) -> None:
    archive = make_archive(source, tmp_path / "flat.tar.gz", ".")

    assert locate(str(archive), "v1.9").root == "."


def test_archive_subprojects_are_checked(source: Path, tmp_path: Path) -> None:
    (source / PACKAGECACHE).unlink()
    archive = make_archive(source, tmp_path / "g.tar.gz", "g")

    with pytest.raises(ConfigError, match="subproject standin-marker is missing"):
        locate(str(archive), "v1.9")


def test_archive_without_meson_build(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not gramine\n", "utf-8")
    archive = make_archive(tmp_path / "notes.txt", tmp_path / "n.tar.gz", "notes.txt")

    with pytest.raises(ConfigError, match=r"no meson\.build in the archive"):
        locate(str(archive), "v1.9")


def test_unreadable_archive(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"not a tar archive")

    with pytest.raises(ConfigError, match="not a readable tar archive"):
        locate(str(archive), "v1.9")


def test_other_files_are_not_sources(tmp_path: Path) -> None:
    zipped = tmp_path / "gramine.zip"
    zipped.write_bytes(b"PK")

    with pytest.raises(ConfigError, match=r"neither a directory nor a \.tar"):
        locate(str(zipped), "v1.9")


def test_stage_copies_the_source_into_the_context(source: Path, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    archive = make_archive(source, tmp_path / "g.tgz", "g")

    stage(locate(str(source), "v1.9"), context)
    stage(locate(str(archive), "v1.9"), context)
    stage(locate("https://example.com/g.git", "v1.9"), context)

    assert (context / "gramine-source" / PACKAGECACHE).is_file()
    assert (context / "gramine-source.tar.gz").read_bytes() == archive.read_bytes()
    assert sorted(p.name for p in context.iterdir()) == [
        "gramine-source",
        "gramine-source.tar.gz",
    ]


def test_standin_subproject_archive_matches_its_sources_and_wrap() -> None:
    archive = STANDIN / PACKAGECACHE
    wrap = (STANDIN / "subprojects/standin-marker.wrap").read_text("utf-8")
    sources = STANDIN / "marker-source"

    with tarfile.open(archive) as tar:
        packed = {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }

    on_disk = {
        str(p.relative_to(sources)): p.read_bytes()
        for p in sources.rglob("*")
        if p.is_file()
    }
    assert packed == on_disk
    assert f"source_hash = {hashlib.sha256(archive.read_bytes()).hexdigest()}" in wrap
    assert ".invalid/" in wrap
