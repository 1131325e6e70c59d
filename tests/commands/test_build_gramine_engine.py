"""`gsc build-gramine` with the real engine, on the Gramine source stand-in
(a test double, not Gramine; see tests/gramine-source-standin/README.md).

The base image is the offline `gsc-test/debian:12`, reached through
`Registry: gsc-test/`; apt installs the build tools over the host's network
(the engine's build cache keeps them after the first run). A git build is
served from a repository on 127.0.0.1 over HTTP.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.conftest import Gsc

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

pytestmark = pytest.mark.engine

STANDIN = Path(__file__).resolve().parents[1] / "gramine-source-standin"
PREFIX = "/gramine/meson_build_output"
PKGLIBDIR = f"{PREFIX}/lib/x86_64-linux-gnu/gramine"
OPTIONS = f"{PREFIX}/share/gramine-source-standin/options.txt"
LOCAL_IMAGE = "gsc-test/gramine-source-standin:local"
GIT_IMAGE = "gsc-test/gramine-source-standin:git"
BROKEN_IMAGE = "gsc-test/gramine-source-standin:broken"


@pytest.fixture(scope="module")
def made(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Names of the images this module makes; removed at its end."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(name, force=True)


def write_config(path: Path, repository: str, branch: str) -> Path:
    path.write_text(
        "Distro: debian:12\n"
        "Registry: gsc-test/\n"
        f"Gramine:\n  Repository: {repository}\n  Branch: {branch}\n",
        encoding="utf-8",
    )
    return path


def copy_standin(target: Path) -> Path:
    shutil.copytree(STANDIN, target)
    return target


def run_in(client: docker.DockerClient, image: str, script: str) -> str:
    output: bytes = client.containers.run(
        image, ["sh", "-c", script], remove=True, network_mode="none"
    )
    return output.decode("utf-8")


def read_file(client: docker.DockerClient, image: str, path: str) -> bytes:
    container = client.containers.create(image, command=["/none"])
    try:
        chunks, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile(path.rsplit("/", 1)[1])
            assert member is not None
            return member.read()
    finally:
        container.remove(force=True)


def gramine_labels(client: docker.DockerClient, image: str) -> dict[str, str]:
    labels = client.images.get(image).labels
    return {k: v for k, v in labels.items() if k.startswith("gsc.gramine.")}


@pytest.fixture(scope="module")
def local_build(
    gsc: Gsc, made: list[str], tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    """The stand-in compiled from a directory on the host, with -L."""
    workdir = tmp_path_factory.mktemp("build-gramine-local")
    source = copy_standin(workdir / "gramine")
    config = write_config(workdir / "config.yaml", str(source), "standin-1.9")
    made.append(LOCAL_IMAGE)
    return gsc("build-gramine", "-c", str(config), "-L", LOCAL_IMAGE)


def test_local_build_prints_the_name_it_tagged(
    local_build: subprocess.CompletedProcess[str], docker_client: docker.DockerClient
) -> None:
    assert local_build.stdout.strip() == LOCAL_IMAGE
    assert docker_client.images.get(LOCAL_IMAGE).id.startswith("sha256:")


def test_local_build_labels(
    local_build: subprocess.CompletedProcess[str], docker_client: docker.DockerClient
) -> None:
    assert gramine_labels(docker_client, LOCAL_IMAGE) == {
        "gsc.gramine.version": "standin-1.9",
        "gsc.gramine.commit": "unknown",
        "gsc.gramine.buildtype": "release",
        "gsc.gramine.distro": "debian:12",
        "gsc.gramine.direct": "true",
        "gsc.gramine.prefix": PREFIX,
        "gsc.gramine.libdir": "lib/x86_64-linux-gnu",
        "gsc.gramine.standin": "false",
        "gsc.gramine.libc": "glibc",
    }


def test_local_build_installs_in_gramines_layout_offline(
    local_build: subprocess.CompletedProcess[str], docker_client: docker.DockerClient
) -> None:
    found = run_in(
        docker_client, LOCAL_IMAGE, f"cd {PKGLIBDIR} && find . -printf '%p %y\\n'"
    )
    options = run_in(docker_client, LOCAL_IMAGE, f"cat {OPTIONS}")

    assert dict(line.split(" ") for line in found.splitlines()) == {
        ".": "d",
        "./direct": "d",
        "./direct/libpal.so": "f",
        "./direct/loader": "l",
        "./libsysdb.so": "f",
        "./runtime": "d",
        "./runtime/glibc": "d",
        "./runtime/glibc/README.standin": "f",
        "./runtime/glibc/libgsc_standin_marker.so": "f",
        "./sgx": "d",
        "./sgx/libpal.so": "f",
        "./sgx/loader": "f",
    }
    assert options.splitlines()[1:] == [
        "buildtype=release",
        "sgx=enabled",
        "direct=enabled",
        "wrap_mode=nodownload",
        "libdir=lib/x86_64-linux-gnu",
    ]
    assert run_in(docker_client, LOCAL_IMAGE, "ls /gramine") == "meson_build_output\n"


def test_local_build_keeps_a_c_compiler_with_a_static_c_library(
    local_build: subprocess.CompletedProcess[str], docker_client: docker.DockerClient
) -> None:
    output = run_in(
        docker_client,
        LOCAL_IMAGE,
        "printf 'int main(void) { return 0; }\\n' > /tmp/t.c"
        " && cc -static -o /tmp/t /tmp/t.c && /tmp/t && echo compiled",
    )

    assert output == "compiled\n"


def test_gsc_build_takes_its_runtime_from_the_built_image(
    local_build: subprocess.CompletedProcess[str],
    gsc: Gsc,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"Gramine:\n  Image: {LOCAL_IMAGE}\n", encoding="utf-8")
    out = tmp_path / "out"

    gsc(
        "build", "-c", str(config), "-L", "--file-only", str(out), "gsc-test/python-app"
    )

    manifest: dict[str, Any] = tomllib.loads(
        (out / "app_files" / "entrypoint.manifest").read_text("utf-8")
    )
    trusted = {e["uri"]: e["sha256"] for e in manifest["sgx"]["trusted_files"]}
    for name in (
        "runtime/glibc/libgsc_standin_marker.so",
        "sgx/loader",
        "sgx/libpal.so",
    ):
        assert f"file:{PKGLIBDIR}/{name}" in trusted
    libsysdb = read_file(docker_client, LOCAL_IMAGE, f"{PKGLIBDIR}/libsysdb.so")
    assert manifest["loader"]["entrypoint"] == {
        "uri": f"file:{PKGLIBDIR}/libsysdb.so",
        "sha256": hashlib.sha256(libsysdb).hexdigest(),
    }


def test_failed_build_tags_nothing_and_shows_why(
    gsc: Gsc, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    source = copy_standin(tmp_path / "gramine")
    with (source / "meson.build").open("a", encoding="utf-8") as meson:
        meson.write("error('the stand-in is broken on purpose')\n")
    config = write_config(tmp_path / "config.yaml", str(source), "standin-1.9")

    result = gsc("build-gramine", "-c", str(config), BROKEN_IMAGE, check=False)

    assert result.returncode == 1
    assert "the stand-in is broken on purpose" in result.stderr
    assert "ERROR image build failed" in result.stderr
    assert result.stdout == ""
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(BROKEN_IMAGE)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def git_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The stand-in as a git repository served over HTTP: (URL, tagged commit)."""
    work = copy_standin(tmp_path / "work")

    def git(*args: str, where: Path = work) -> str:
        done = subprocess.run(
            [
                "git",
                "-C",
                str(where),
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

    git("init", "--quiet")
    git("add", ".")
    git("commit", "--quiet", "-m", "stand-in")
    git("tag", "-a", "-m", "stand-in", "v-standin")
    commit = git("rev-parse", "HEAD")
    git("commit", "--quiet", "--allow-empty", "-m", "after the tag")
    served = tmp_path / "served"
    git(
        "clone",
        "--quiet",
        "--bare",
        str(work),
        str(served / "standin.git"),
        where=tmp_path,
    )
    git("update-server-info", where=served / "standin.git")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/standin.git", commit
    finally:
        server.shutdown()
        thread.join()


def test_git_build_checks_out_the_tag_and_labels_its_commit(
    gsc: Gsc,
    made: list[str],
    git_server: tuple[str, str],
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    url, commit = git_server
    config = write_config(tmp_path / "config.yaml", url, "v-standin")
    made.append(GIT_IMAGE)

    result = gsc("build-gramine", "-c", str(config), "-d", GIT_IMAGE)

    labels = gramine_labels(docker_client, GIT_IMAGE)
    assert result.stdout.strip() == GIT_IMAGE
    assert labels["gsc.gramine.version"] == "v-standin"
    assert labels["gsc.gramine.commit"] == commit
    assert (labels["gsc.gramine.buildtype"], labels["gsc.gramine.direct"]) == (
        "debug",
        "false",
    )
    listing = run_in(
        docker_client,
        GIT_IMAGE,
        f"cat /gramine/source-commit {OPTIONS}; ls {PKGLIBDIR}",
    )
    assert listing.startswith(f"{commit}\n")
    assert "buildtype=debug\nsgx=enabled\ndirect=disabled\n" in listing
    assert "wrap_mode=default\n" in listing
    assert listing.endswith("libsysdb.so\nruntime\nsgx\n")


def test_build_compiles_gramine_itself_when_no_image_is_configured(
    gsc: Gsc,
    tmp_path: Path,
    made: list[str],
    docker_client: docker.DockerClient,
) -> None:
    source = copy_standin(tmp_path / "gramine-src")
    config = write_config(tmp_path / "config.yaml", str(source), "v1.9")
    expected = "gsc-gramine:debian-12-v1.9-release-direct"
    made.append(expected)
    review = tmp_path / "review"

    first = gsc(
        "build",
        "-c",
        str(config),
        "-L",
        "--file-only",
        str(review),
        "gsc-test/python-app",
    )
    again = gsc(
        "build",
        "-c",
        str(config),
        "-L",
        "--file-only",
        str(tmp_path / "again"),
        "gsc-test/python-app",
    )

    labels = docker_client.images.get(expected).labels
    assert labels["gsc.gramine.distro"] == "debian:12"
    assert labels["gsc.gramine.direct"] == "true"
    assert f"compiling Gramine as {expected}" in first.stderr
    assert f"using {expected}, compiled earlier" in again.stderr
    manifest = tomllib.loads((review / "app_files" / "entrypoint.manifest").read_text())
    uris = {e["uri"] for e in manifest["sgx"]["trusted_files"]}
    assert f"file:{PKGLIBDIR}/libsysdb.so" in uris
