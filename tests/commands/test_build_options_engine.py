"""`gsc build` beyond glibc images and plain files, end to end: musl and
scratch images, volumes, Docker secrets, extra trusted files, environment
and numeric users, on the offline test images with the stand-in Gramine
image (see tests/standin/README.md)."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import tomllib

from tests.commands.test_build_engine import read_manifest, report
from tests.conftest import Gsc, error_line, run_image

pytestmark = pytest.mark.engine

MUSL = "gsc-test/musl-app"
SCRATCH = "gsc-test/scratch-static"
VOLUME = "gsc-test/volume-app"
DIRECT = {"GRAMINE_MODE": "direct"}
STANDIN_MUSL = "gsc-test/standin-gramine-musl"
PKGLIBDIR = "/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine"
RUNTIME_GLIBC = f"{PKGLIBDIR}/runtime/glibc"
IMAGES = Path(__file__).resolve().parents[1] / "images"
SUMMARY = re.compile(
    r"Trusting (\d+) files, ([\d.]+) MB \(largest: ([^)]*)\); distro (\S+)"
)


@pytest.fixture(scope="module", autouse=True)
def option_images(docker_client: docker.DockerClient) -> None:
    for name in (MUSL, SCRATCH, VOLUME, STANDIN_MUSL):
        try:
            docker_client.images.get(name)
        except docker.errors.ImageNotFound:
            pytest.fail(f"test image {name} is missing; run scripts/make-test-images")


def unsigned(image: str) -> str:
    return f"gsc-{image}-unsigned:latest"


def build(gsc: Gsc, image: str, *options: str) -> subprocess.CompletedProcess[str]:
    """Build IMAGE for direct mode too; the result is removed at session end."""
    gsc.made.append(unsigned(image))
    return gsc("build", "-c", str(gsc.config), "-L", *options, image)


def dry_run(
    gsc: Gsc, target: Path, image: str, *options: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`gsc build --file-only`: the real image read, its manifest, no build."""
    result = gsc(
        "build", "-c", str(gsc.config), *options, "--file-only", str(target), image
    )
    manifest = (target / "app_files" / "entrypoint.manifest").read_text("utf-8")
    return result, tomllib.loads(manifest)


def trusted_uris(manifest: dict[str, Any]) -> list[str]:
    return [entry["uri"] for entry in manifest["sgx"]["trusted_files"]]


def summary(result: subprocess.CompletedProcess[str]) -> re.Match[str]:
    found = SUMMARY.search(result.stderr)
    assert found is not None, result.stderr
    return found


# musl and scratch images


@pytest.fixture(scope="module")
def musl_build(gsc: Gsc) -> subprocess.CompletedProcess[str]:
    """The musl app built with the stand-in labelled as a Gramine built on
    Alpine with its musl runtime (tests/images/standin-musl)."""
    config = gsc.workdir / "musl-config.yaml"
    config.write_text(f"Gramine:\n  Image: {STANDIN_MUSL}\n", encoding="utf-8")
    gsc.made.append(unsigned(MUSL))
    return gsc("build", "-c", str(config), "-L", MUSL)


def test_glibc_app_is_refused_with_a_gramine_built_for_musl(
    gsc: Gsc, musl_build: subprocess.CompletedProcess[str]
) -> None:
    config = gsc.workdir / "musl-config.yaml"
    result = gsc("build", "-c", str(config), "-L", VOLUME, check=False)

    line = error_line(result)
    assert "musl" in line and "debian:12" in line and "glibc" in line


def test_musl_app_runs_with_its_argv_env_and_cwd(
    musl_build: subprocess.CompletedProcess[str],
) -> None:
    native = report(run_image(MUSL))
    inside = report(run_image(unsigned(MUSL), env=DIRECT))

    assert inside["argv"] == native["argv"] == ["report", "--libc", "musl", "two words"]
    assert inside["cwd"] == native["cwd"] == "/app"
    assert (inside["uid"], inside["gid"]) == (0, 0)
    assert inside["env"]["PATH"] == native["env"]["PATH"]
    assert inside["env"]["HOME"] == native["env"]["HOME"] == "/root"


def test_musl_app_library_path_is_musls_path_file(
    musl_build: subprocess.CompletedProcess[str], docker_client: docker.DockerClient
) -> None:
    manifest = read_manifest(docker_client, unsigned(MUSL))
    uris = trusted_uris(manifest)

    # Gramine's musl runtime first; then /etc/ld-musl-x86_64.path, which
    # lists /usr/lib/x86_64-linux-musl too (not in this image); musl's
    # built-in /lib is not searched when the path file exists.
    assert manifest["loader"]["env"]["LD_LIBRARY_PATH"] == (
        f"{PKGLIBDIR}/runtime/musl:/lib/x86_64-linux-musl"
    )
    assert manifest["libos"]["entrypoint"] == "/app/report"
    assert {
        "file:/app/report",
        "file:/lib/x86_64-linux-musl/libc.so",
        "file:/bin/busybox",
        "file:/etc/ld-musl-x86_64.path",
    } <= set(uris)


def test_musl_app_summary_names_alpine_and_directories(
    musl_build: subprocess.CompletedProcess[str],
) -> None:
    found = summary(musl_build)

    assert found.group(4) == "alpine:3.19.1"
    largest = found.group(3).split(", ")
    # Directories, not files: busybox counts for /bin.
    assert largest[0].startswith("/bin ")
    assert not any(item.startswith("/bin/busybox") for item in largest)


def test_scratch_static_app_runs_as_root_with_home_slash(
    gsc: Gsc, docker_client: docker.DockerClient
) -> None:
    result = build(gsc, SCRATCH)

    native = report(run_image(SCRATCH))
    inside = report(run_image(unsigned(SCRATCH), env=DIRECT))
    manifest = read_manifest(docker_client, unsigned(SCRATCH))

    assert inside["argv"] == native["argv"] == ["/report", "--static"]
    assert inside["cwd"] == native["cwd"] == "/"
    assert (inside["uid"], inside["gid"]) == (0, 0)
    assert inside["env"]["HOME"] == native["env"]["HOME"] == "/"
    assert inside["env"]["PATH"] == native["env"]["PATH"]
    assert "uid" not in manifest["loader"]
    assert manifest["loader"]["env"]["LD_LIBRARY_PATH"] == RUNTIME_GLIBC
    found = summary(result)
    assert found.group(4) == "unknown"
    # The program lies in /, a directory, not in a directory named /report.
    assert found.group(3).split(", ")[-1] == "/ 0.0 MB"
    assert "Traceback" not in result.stderr


# volumes


@pytest.fixture(scope="module")
def volume_default(
    gsc: Gsc, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    return dry_run(gsc, tmp_path_factory.mktemp("volume-default"), VOLUME)


def test_unhandled_volume_is_named_with_the_choices_and_not_trusted(
    volume_default: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, manifest = volume_default
    warnings = [line for line in result.stderr.splitlines() if "VOLUME /data" in line]

    assert len(warnings) == 1
    for choice in ("--allowed /data/", "--encrypted-volume /data", "--tmpfs-volume"):
        assert choice in warnings[0]
    uris = trusted_uris(manifest)
    assert "file:/app/files.py" in uris
    assert not [u for u in uris if u.startswith("file:/data")]
    assert not [u for u in manifest["sgx"]["allowed_files"] if "/data" in u]
    assert [m["path"] for m in manifest["fs"]["mounts"]] == ["/tmp"]


def test_allowed_volume(gsc: Gsc, tmp_path: Path) -> None:
    result, manifest = dry_run(gsc, tmp_path / "out", VOLUME, "--allowed", "/data/")

    assert "file:/data/" in manifest["sgx"]["allowed_files"]
    assert not [u for u in trusted_uris(manifest) if u.startswith("file:/data")]
    assert "VOLUME /data" not in result.stderr
    assert "/data/ is allowed" in result.stderr


def test_allowed_volume_without_trailing_slash(gsc: Gsc, tmp_path: Path) -> None:
    _, manifest = dry_run(gsc, tmp_path / "out", VOLUME, "--allowed", "/app")

    # A directory named without its '/' is still a directory: Gramine allows
    # what lies below it, so nothing below it is trusted either.
    assert "file:/app" in manifest["sgx"]["allowed_files"]
    assert not [u for u in trusted_uris(manifest) if u.startswith("file:/app")]


@pytest.mark.parametrize(
    ("option", "key"), [("/data:mykey", "mykey"), ("/data", "_sgx_mrsigner")]
)
def test_encrypted_volume(gsc: Gsc, tmp_path: Path, option: str, key: str) -> None:
    result, manifest = dry_run(
        gsc, tmp_path / "out", VOLUME, "--encrypted-volume", option
    )

    assert manifest["fs"]["mounts"] == [
        {"type": "encrypted", "path": "/data", "uri": "file:/data", "key_name": key},
        {"type": "tmpfs", "path": "/tmp"},
    ]
    assert not [u for u in trusted_uris(manifest) if u.startswith("file:/data")]
    assert "VOLUME /data" not in result.stderr


def test_tmpfs_volume(gsc: Gsc, tmp_path: Path) -> None:
    result, manifest = dry_run(gsc, tmp_path / "out", VOLUME, "--tmpfs-volume", "/data")

    assert {"type": "tmpfs", "path": "/data"} in manifest["fs"]["mounts"]
    assert not [u for u in trusted_uris(manifest) if u.startswith("file:/data")]
    assert "VOLUME /data" not in result.stderr


def test_encrypted_secrets(gsc: Gsc, tmp_path: Path) -> None:
    _, manifest = dry_run(
        gsc,
        tmp_path / "out",
        VOLUME,
        "--secrets",
        "encrypted:provisioned",
        "--allowed",
        "/data/",
    )

    assert {
        "type": "encrypted",
        "path": "/run/secrets",
        "uri": "file:/run/secrets",
        "key_name": "provisioned",
    } in manifest["fs"]["mounts"]
    assert not [u for u in manifest["sgx"]["allowed_files"] if "secrets" in u]


# one real build with every file and environment option


TOKEN_FILE = "a secret the enclave may read\n"
SETTINGS = "/var/lib/volume-app/settings.txt"


@pytest.fixture(scope="module")
def volume_full(gsc: Gsc) -> subprocess.CompletedProcess[str]:
    return build(
        gsc,
        VOLUME,
        "--allowed",
        "/data/",
        "--secrets",
        "allowed",
        "--trusted",
        SETTINGS,
        "--exclude",
        "/usr/share/doc/*",
        "--env",
        "A=B",
        "--env",
        "WITH_EQUALS=x=y",
        "--env-passthrough",
        "TOKEN",
    )


@pytest.fixture(scope="module")
def volume_full_report(
    volume_full: subprocess.CompletedProcess[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    secret = tmp_path_factory.mktemp("secrets") / "token"
    secret.write_text(TOKEN_FILE, encoding="utf-8")
    return report(
        run_image(
            unsigned(VOLUME),
            env={**DIRECT, "TOKEN": "x", "OTHER": "y"},
            extra=("-v", f"{secret}:/run/secrets/token:ro"),
        )
    )


def test_secret_and_volume_are_readable_when_allowed(
    volume_full_report: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    manifest = read_manifest(docker_client, unsigned(VOLUME))

    assert {"file:/run/secrets/", "file:/data/"} <= set(
        manifest["sgx"]["allowed_files"]
    )
    assert volume_full_report["files"] == {
        "/data/readme.txt": (IMAGES / "volume-app/data/readme.txt").read_text(),
        "/run/secrets/token": TOKEN_FILE,
    }


def test_environment_is_fixed_except_the_passthrough_names(
    volume_full_report: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    env = volume_full_report["env"]
    manifest = read_manifest(docker_client, unsigned(VOLUME))

    assert (env["A"], env["WITH_EQUALS"], env["TOKEN"]) == ("B", "x=y", "x")
    assert "OTHER" not in env
    assert manifest["loader"]["env"]["TOKEN"] == {"passthrough": True}
    assert "insecure__use_host_env" not in manifest["loader"]


def test_trusted_file_under_an_excluded_directory(
    volume_full: subprocess.CompletedProcess[str], docker_client: docker.DockerClient
) -> None:
    manifest = read_manifest(docker_client, unsigned(VOLUME))
    digest = hashlib.sha256((IMAGES / "volume-app/settings.txt").read_bytes())

    assert {"uri": f"file:{SETTINGS}", "sha256": digest.hexdigest()} in manifest["sgx"][
        "trusted_files"
    ]
    assert not [
        u for u in trusted_uris(manifest) if u.startswith("file:/var/lib/dpkg/")
    ]


def test_exclude_shrinks_the_trusted_files_and_summary_counts_them(
    volume_full: subprocess.CompletedProcess[str],
    volume_default: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    docker_client: docker.DockerClient,
) -> None:
    manifest = read_manifest(docker_client, unsigned(VOLUME))
    uris = trusted_uris(manifest)
    before = trusted_uris(volume_default[1])
    found = summary(volume_full)

    assert [u for u in before if u.startswith("file:/usr/share/doc/")]
    assert not [u for u in uris if u.startswith("file:/usr/share/doc/")]
    # Everything else stays: the documentation left, the settings file came.
    assert set(before) - set(uris) == {
        u for u in before if u.startswith("file:/usr/share/doc/")
    }
    assert set(uris) - set(before) == {f"file:{SETTINGS}"}
    assert int(found.group(1)) == len(uris)
    assert int(summary(volume_default[0]).group(1)) == len(before)
    assert float(found.group(2)) < float(summary(volume_default[0]).group(2))
    assert re.fullmatch(r"(/\S* [\d.]+ MB, ){2}/\S* [\d.]+ MB", found.group(3))


# users


def test_numeric_user_without_passwd_entry(
    gsc: Gsc, docker_client: docker.DockerClient
) -> None:
    derived = "gsc-test/python-numeric-user:latest"
    gsc.made.append(derived)
    dockerfile = b"FROM gsc-test/python-app\nUSER 1234:1234\n"
    docker_client.images.build(
        fileobj=io.BytesIO(dockerfile), tag=derived, network_mode="none", rm=True
    )
    build(gsc, derived.removesuffix(":latest"))
    image = unsigned(derived.removesuffix(":latest"))

    native = report(run_image(derived))
    inside = report(run_image(image, env=DIRECT))
    manifest = read_manifest(docker_client, image)

    assert (inside["uid"], inside["gid"]) == (native["uid"], native["gid"])
    assert (inside["uid"], inside["gid"]) == (1234, 1234)
    assert inside["env"]["HOME"] == native["env"]["HOME"] == "/"
    assert inside["argv"] == ["/app/report.py", "--name", "two words", ""]
    assert (manifest["loader"]["uid"], manifest["loader"]["gid"]) == (1234, 1234)


# bad values


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--trusted", "relative", "--trusted 'relative'"),
        ("--allowed", "data/", "--allowed 'data/'"),
        ("--tmpfs-volume", "tmp", "--tmpfs-volume 'tmp'"),
        ("--encrypted-volume", "relative:key", "--encrypted-volume 'relative'"),
        ("--encrypted-volume", "/data:", "--encrypted-volume '/data:'"),
        ("--env", "NOEQUALS", "--env 'NOEQUALS'"),
        ("--env", "=value", "--env '=value'"),
        ("--env-passthrough", "A=B", "--env-passthrough 'A=B'"),
        ("--env-passthrough", "*", "--env-passthrough '*'"),
        ("--exclude", "usr/share/doc/*", "--exclude 'usr/share/doc/*'"),
        ("--secrets", "bogus", "--secrets 'bogus'"),
        ("--secrets", "allowed:key", "--secrets 'allowed:key'"),
        ("--secrets", "encrypted:", "--secrets 'encrypted:'"),
    ],
)
def test_bad_values_are_one_line_errors(
    gsc: Gsc, option: str, value: str, named: str
) -> None:
    result = gsc("build", "-c", str(gsc.config), option, value, VOLUME, check=False)

    assert named in error_line(result)


def test_trusted_path_missing_from_the_image(gsc: Gsc, tmp_path: Path) -> None:
    result = gsc(
        "build",
        "-c",
        str(gsc.config),
        "--trusted",
        "/var/lib/missing",
        "--file-only",
        str(tmp_path / "out"),
        VOLUME,
        check=False,
    )

    assert "/var/lib/missing" in error_line(result)
    assert not (tmp_path / "out").exists()


def test_excluding_the_program_is_an_error(gsc: Gsc, tmp_path: Path) -> None:
    result = gsc(
        "build",
        "-c",
        str(gsc.config),
        "--exclude",
        "/usr/bin/python3*",
        "--file-only",
        str(tmp_path / "out"),
        VOLUME,
        check=False,
    )

    assert "/usr/bin/python3.11" in error_line(result)
