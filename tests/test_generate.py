"""Tests for gsc.generate: the manifest made from an image, and user trusted files."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from gsc.entrypoint import Command
from gsc.errors import ImageError, ManifestError
from gsc.generate import (
    Generated,
    check_program_trusted,
    generated_manifest,
    runtime_libc,
    user_trusted_files,
)
from gsc.gramine import GramineRuntime
from gsc.image import FileSystem, ImageConfig, read_filesystem
from gsc.manifest import validate
from gsc.users import User

from .fstree import ELF, Tree, chunks

PREFIX = "/gramine/meson_build_output"
PKGLIBDIR = f"{PREFIX}/lib/x86_64-linux-gnu/gramine"
LIBSYSDB = ELF + b"\x00libsysdb stand-in"
MAIN = b"print('hello')\n"
SETTINGS = b"DEBUG = False\n"
HIDDEN = b"SECRET_SETTING = 1\n"
DATA = b"\x00\x01\x02" * 100


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def fs() -> FileSystem:
    return (
        Tree()
        .dir("/app")
        .file("/app/main.py", MAIN)
        .file("/app/.env", HIDDEN)
        .dir("/app/conf")
        .file("/app/conf/settings.py", SETTINGS)
        .symlink("/app/conf/current.py", "settings.py")
        .symlink("/app/conf/data.bin", "/srv/data.bin")
        .symlink("/app/srv", "/srv")
        .symlink("/app/dangling", "/nowhere")
        .dir("/app2")
        .file("/app2/other.py", b"other\n")
        .dir("/srv")
        .file("/srv/data.bin", DATA)
        .read()
    )


def trusted_of(manifest: dict[str, Any]) -> list[Any]:
    result: list[Any] = manifest["sgx"]["trusted_files"]
    return result


def test_manifest_without_trusted_files_is_unchanged(fs: FileSystem) -> None:
    for manifest in ({}, {"loader": {"log_level": "all"}}, {"sgx": {"debug": True}}):
        assert user_trusted_files(manifest, fs) == manifest


def test_file_uri_gets_the_hash_of_the_image_file(fs: FileSystem) -> None:
    user = {"sgx": {"trusted_files": ["file:/app/main.py"]}}

    result = user_trusted_files(user, fs)

    assert trusted_of(result) == [{"uri": "file:/app/main.py", "sha256": sha(MAIN)}]


def test_file_uri_through_a_link_keeps_its_name(fs: FileSystem) -> None:
    user = {"sgx": {"trusted_files": ["file:/app/srv/data.bin"]}}

    result = user_trusted_files(user, fs)

    assert trusted_of(result) == [
        {"uri": "file:/app/srv/data.bin", "sha256": sha(DATA)}
    ]


def test_entries_with_a_hash_and_other_keys_are_kept(fs: FileSystem) -> None:
    given = {"uri": "file:/app/main.py", "sha256": "ab" * 32}
    user = {
        "loader": {"env": {"A": "1"}},
        "sgx": {"trusted_files": [given], "max_threads": 8},
    }
    before = copy.deepcopy(user)

    result = user_trusted_files(user, fs)

    assert result == user
    assert user == before


def test_directory_uri_lists_every_file_below_it_sorted(fs: FileSystem) -> None:
    user = {"sgx": {"trusted_files": ["file:/app/"]}}

    result = user_trusted_files(user, fs)

    # Hidden files count; a link to a file is listed under the link's own
    # path; links to directories are not followed, dangling links are left out.
    assert trusted_of(result) == [
        {"uri": "file:/app/.env", "sha256": sha(HIDDEN)},
        {"uri": "file:/app/conf/current.py", "sha256": sha(SETTINGS)},
        {"uri": "file:/app/conf/data.bin", "sha256": sha(DATA)},
        {"uri": "file:/app/conf/settings.py", "sha256": sha(SETTINGS)},
        {"uri": "file:/app/main.py", "sha256": sha(MAIN)},
    ]


def test_directory_and_file_uris_together_keep_their_order(fs: FileSystem) -> None:
    user = {"sgx": {"trusted_files": ["file:/srv/data.bin", "file:/app/conf/"]}}

    uris = [item["uri"] for item in trusted_of(user_trusted_files(user, fs))]

    assert uris == [
        "file:/srv/data.bin",
        "file:/app/conf/current.py",
        "file:/app/conf/data.bin",
        "file:/app/conf/settings.py",
    ]


def test_directory_without_trailing_slash_is_an_error(fs: FileSystem) -> None:
    user = {"sgx": {"trusted_files": ["file:/app/conf"]}}

    with pytest.raises(ManifestError, match=r"file:/app/conf is a directory.*'/'"):
        user_trusted_files(user, fs)


@pytest.mark.parametrize("uri", ["file:/app/missing.py", "file:/app/dangling"])
def test_missing_file_is_an_error(fs: FileSystem, uri: str) -> None:
    user = {"sgx": {"trusted_files": [uri]}}

    with pytest.raises(ManifestError, match=f"{uri} is not in the image"):
        user_trusted_files(user, fs)


@pytest.mark.parametrize("uri", ["file:/app/main.py/", "file:/missing/"])
def test_directory_uri_that_is_no_directory(fs: FileSystem, uri: str) -> None:
    user = {"sgx": {"trusted_files": [uri]}}

    with pytest.raises(ManifestError, match="is not a directory in the image"):
        user_trusted_files(user, fs)


def runtime(files: FileSystem | None = None) -> GramineRuntime:
    if files is None:
        tree = (
            Tree()
            .dir("/meson_build_output")
            .file(f"{PKGLIBDIR[len('/gramine') :]}/libsysdb.so", LIBSYSDB)
        )
        files = read_filesystem(
            chunks(tree.tar(), 1000), lambda p: True, base="/gramine"
        )
    return GramineRuntime(
        "sha256:" + "ee" * 32, "gramine", PREFIX, PKGLIBDIR, files, {}
    )


def app_config(env: tuple[tuple[str, str], ...] = ()) -> ImageConfig:
    return ImageConfig(
        id="sha256:" + "aa" * 32,
        name="python-app",
        entrypoint=("python3",),
        cmd=("/app/main.py",),
        env=env,
        working_dir="/app",
        user="",
        volumes=(),
        layers=(),
        labels={},
    )


ROOT = User(0, 0, frozenset({0}), "/root")
COMMAND = Command("/usr/bin/python3.11", ("python3", "/app/main.py"), ())
TRUSTED = {"/app/main.py": sha(MAIN), "/usr/bin/python3.11": sha(ELF)}


def generated(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "config": app_config(),
        "command": COMMAND,
        "user": ROOT,
        "runtime": runtime(),
        "library_dirs": ("/usr/lib/x86_64-linux-gnu", "/usr/lib"),
        "trusted": TRUSTED,
        "debug": False,
        "insecure_args": False,
        **changes,
    }
    return generated_manifest(Generated(**fields))


def test_loader_runs_libsysdb_by_hash() -> None:
    manifest = generated()

    assert manifest["loader"]["entrypoint"] == {
        "uri": f"file:{PKGLIBDIR}/libsysdb.so",
        "sha256": sha(LIBSYSDB),
    }
    assert manifest["libos"]["entrypoint"] == "/usr/bin/python3.11"


def test_runtime_without_libsysdb_is_an_image_error() -> None:
    with pytest.raises(ImageError, match=r"libsysdb\.so"):
        generated(runtime=runtime(Tree().dir("/x").read()))


def test_trusted_argv_by_default() -> None:
    loader = generated()["loader"]

    assert loader["argv"] == ["python3", "/app/main.py"]
    assert "insecure__use_cmdline_argv" not in loader


def test_insecure_args_take_the_command_line_instead() -> None:
    loader = generated(insecure_args=True)["loader"]

    assert loader["insecure__use_cmdline_argv"] is True
    assert "argv" not in loader


def test_uid_and_gid_only_for_other_users_than_root() -> None:
    assert not {"uid", "gid"} & set(generated()["loader"])

    user = generated(user=User(1000, 1000, frozenset({1000}), "/home/app"))
    assert (user["loader"]["uid"], user["loader"]["gid"]) == (1000, 1000)

    group = generated(user=User(0, 50, frozenset({50}), "/root"))
    assert (group["loader"]["uid"], group["loader"]["gid"]) == (0, 50)


def test_library_path_starts_with_the_runtime_glibc() -> None:
    env = generated()["loader"]["env"]

    assert env["LD_LIBRARY_PATH"].split(":") == [
        f"{PKGLIBDIR}/runtime/glibc",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib",
    ]


def test_library_path_keeps_the_image_value_before_the_linker_dirs() -> None:
    config = app_config((("LD_LIBRARY_PATH", "/opt/lib::/usr/lib"),))

    env = generated(config=config)["loader"]["env"]

    assert env["LD_LIBRARY_PATH"].split(":") == [
        f"{PKGLIBDIR}/runtime/glibc",
        "/opt/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
    ]


def test_environment_defaults_and_image_values() -> None:
    plain = generated(user=User(1000, 1000, frozenset({1000}), "/home/app"))
    assert plain["loader"]["env"]["HOME"] == "/home/app"
    assert plain["loader"]["env"]["PATH"] == (
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )

    config = app_config((("HOME", "/data"), ("PATH", "/opt/bin"), ("LANG", "C")))
    env = generated(config=config)["loader"]["env"]
    assert (env["HOME"], env["PATH"], env["LANG"]) == ("/data", "/opt/bin", "C")


def test_file_system_and_start_dir() -> None:
    fs = generated()["fs"]

    assert fs["start_dir"] == "/app"
    assert fs["root"] == {"type": "chroot", "uri": "file:/"}
    assert {"type": "tmpfs", "path": "/tmp"} in fs["mounts"]


def test_trusted_and_allowed_files() -> None:
    sgx = generated()["sgx"]

    assert sgx["trusted_files"] == [
        {"uri": f"file:{path}", "sha256": digest} for path, digest in TRUSTED.items()
    ]
    assert sorted(sgx["allowed_files"]) == [
        "file:/etc/hostname",
        "file:/etc/hosts",
        "file:/etc/resolv.conf",
    ]


@pytest.mark.parametrize("debug", [False, True])
def test_debug_switches_enclave_and_log(debug: bool) -> None:
    manifest = generated(debug=debug)

    assert manifest["sgx"]["debug"] is debug
    assert manifest["loader"]["log_level"] == ("debug" if debug else "error")


@pytest.mark.parametrize("insecure_args", [False, True])
def test_generated_manifest_passes_validation(insecure_args: bool) -> None:
    validate(generated(insecure_args=insecure_args))


def runtime_with(libcs: tuple[str, ...], labels: dict[str, str]) -> GramineRuntime:
    """A Gramine runtime holding the patched C libraries named in `libcs`."""
    tree = Tree().dir("/meson_build_output")
    base = PKGLIBDIR[len("/gramine") :]
    tree.file(f"{base}/libsysdb.so", LIBSYSDB).dir(f"{base}/runtime")
    for libc in libcs:
        tree.dir(f"{base}/runtime/{libc}")
    files = read_filesystem(chunks(tree.tar(), 1000), lambda p: True, base="/gramine")
    return GramineRuntime("sha256:" + "ee" * 32, "g", PREFIX, PKGLIBDIR, files, labels)


@pytest.mark.parametrize(
    ("libcs", "labels", "chosen"),
    [
        (("glibc",), {}, "glibc"),
        (("glibc", "musl"), {}, "glibc"),
        (("glibc", "musl"), {"gsc.gramine.libc": "musl"}, "musl"),
        (("musl",), {}, "musl"),
        (("glibc",), {"gsc.gramine.libc": "musl"}, "glibc"),
    ],
)
def test_runtime_libc_comes_first_in_the_library_path(
    libcs: tuple[str, ...], labels: dict[str, str], chosen: str
) -> None:
    runtime = runtime_with(libcs, labels)
    env = generated(runtime=runtime)["loader"]["env"]

    assert runtime_libc(runtime) == f"{PKGLIBDIR}/runtime/{chosen}"
    assert env["LD_LIBRARY_PATH"].split(":")[0] == f"{PKGLIBDIR}/runtime/{chosen}"


SCRIPTED = Command("/usr/bin/bash", ("bash", "/app/run.sh"), ("/app/run.sh",))


def manifest_with(trusted: list[Any], allowed: list[str]) -> dict[str, Any]:
    return {"sgx": {"trusted_files": trusted, "allowed_files": allowed}}


def test_trusted_program_and_script_pass(fs: FileSystem) -> None:
    manifest = manifest_with(
        [{"uri": "file:/usr/bin/bash", "sha256": "0" * 64}, "file:/app/run.sh"], []
    )

    check_program_trusted(manifest, SCRIPTED, fs)


def test_allowed_script_passes(fs: FileSystem) -> None:
    manifest = manifest_with(["file:/usr/bin/bash"], ["file:/app"])

    check_program_trusted(manifest, SCRIPTED, fs)


@pytest.mark.parametrize(
    ("trusted", "missing"),
    [(["file:/app/run.sh"], "/usr/bin/bash"), (["file:/usr/bin/bash"], "/app/run.sh")],
)
def test_program_or_script_left_out_is_an_error(
    fs: FileSystem, trusted: list[Any], missing: str
) -> None:
    manifest = manifest_with(trusted, ["file:/app2/", "dev:/app/run.sh"])

    with pytest.raises(ManifestError, match=f"--trusted {missing}$"):
        check_program_trusted(manifest, SCRIPTED, fs)


def test_script_is_checked_under_its_real_path(fs: FileSystem) -> None:
    linked = Command("/usr/bin/bash", ("bash",), ("/app/conf/current.py",))
    manifest = manifest_with(["file:/usr/bin/bash", "file:/app/conf/settings.py"], [])

    check_program_trusted(manifest, linked, fs)
