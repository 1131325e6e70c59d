"""Tests for gsc.extras: what the command line adds about files, volumes,
secrets and environment, and the manifest keys it stands for."""

from __future__ import annotations

import pytest

from gsc.errors import GscError
from gsc.extras import (
    Extras,
    absolute_path,
    encrypted_volume,
    environment,
    extras_manifest,
    is_excluded_by,
    secrets_choice,
    unhandled_volumes,
)
from gsc.manifest import validate


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("/data", "/data"),
        ("/data/", "/data/"),
        ("//data//sub/../x/", "/data/x/"),
        ("/", "/"),
    ],
)
def test_absolute_paths_are_normalized_keeping_the_directory_mark(
    value: str, path: str
) -> None:
    assert absolute_path(value, "--allowed") == path


@pytest.mark.parametrize("value", ["data", "./data", "", "~/data"])
def test_relative_paths_are_refused_naming_the_option(value: str) -> None:
    with pytest.raises(GscError, match=f"^--tmpfs-volume '{value}': give an abs"):
        absolute_path(value, "--tmpfs-volume")


@pytest.mark.parametrize(
    ("value", "volume"),
    [
        ("/data", ("/data", "_sgx_mrsigner")),
        ("/data/:mykey", ("/data/", "mykey")),
        ("/srv/db:_sgx_mrenclave", ("/srv/db", "_sgx_mrenclave")),
        ("/srv/db:key-1.v2", ("/srv/db", "key-1.v2")),
    ],
)
def test_encrypted_volume_path_and_key(value: str, volume: tuple[str, str]) -> None:
    assert encrypted_volume(value) == volume


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("data:key", "give an absolute path"),
        ("/data:", "the key name after ':'"),
        ("/data:a/b", "the key name after ':'"),
        ("/data:k:x", "the key name after ':'"),
        ("/data:_sgx_other", "reserved"),
        ("/:key", "cannot mount over /"),
    ],
)
def test_bad_encrypted_volumes(value: str, problem: str) -> None:
    with pytest.raises(GscError, match=r"^--encrypted-volume '") as caught:
        encrypted_volume(value)

    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "pair"),
    [("A=B", ("A", "B")), ("A=", ("A", "")), ("URL=a=b", ("URL", "a=b"))],
)
def test_environment_pairs(value: str, pair: tuple[str, str]) -> None:
    assert environment(value) == pair


@pytest.mark.parametrize("value", ["NOEQUALS", "=value", " A=1", "A*=1", "A\x00=1"])
def test_bad_environment_pairs(value: str) -> None:
    with pytest.raises(GscError, match=r"^--env "):
        environment(value)


@pytest.mark.parametrize(
    ("value", "choice"),
    [
        ("allowed", ("allowed", "_sgx_mrsigner")),
        ("encrypted", ("encrypted", "_sgx_mrsigner")),
        ("encrypted:vault", ("encrypted", "vault")),
    ],
)
def test_secrets_choices(value: str, choice: tuple[str, str]) -> None:
    assert secrets_choice(value) == choice


@pytest.mark.parametrize(
    "value", ["bogus", "allowed:key", "encrypted:", "Allowed", "", "encrypted:a b"]
)
def test_bad_secrets_choices(value: str) -> None:
    with pytest.raises(GscError, match=r"^--secrets '"):
        secrets_choice(value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("A=B", "give a variable name"),
        ("", "give a variable name"),
        ("*", "never lets the whole"),
        ("AWS_*", "never lets the whole"),
    ],
)
def test_bad_passthrough_names(name: str, problem: str) -> None:
    with pytest.raises(GscError, match=f"^--env-passthrough '.*{problem}"):
        Extras(env_passthrough=(name,))


def test_a_variable_is_fixed_or_passed_through_not_both() -> None:
    with pytest.raises(GscError, match=r"TOKEN.*choose one"):
        Extras(env=(("TOKEN", "x"),), env_passthrough=("TOKEN",))


@pytest.mark.parametrize(
    "extras",
    [
        {"encrypted_volumes": (("/data", "k"),), "tmpfs_volumes": ("/data",)},
        {"allowed": ("/data/",), "tmpfs_volumes": ("/data",)},
        {"tmpfs_volumes": ("/run/secrets",), "secrets": "allowed"},
        {"tmpfs_volumes": ("/x", "/x")},
    ],
)
def test_one_treatment_per_path(extras: dict[str, object]) -> None:
    with pytest.raises(GscError, match="more than once"):
        Extras(**extras)  # type: ignore[arg-type]


def test_no_volume_over_the_root() -> None:
    with pytest.raises(GscError, match="over /"):
        Extras(tmpfs_volumes=("/",))


def everything() -> Extras:
    return Extras(
        trusted=("/var/lib/app/settings", "/opt/tools/"),
        allowed=("/data/", "/etc/app.conf"),
        encrypted_volumes=(("/srv/db", "_sgx_mrenclave"), ("/srv/keys", "vault")),
        tmpfs_volumes=("/cache",),
        secrets="encrypted",
        secrets_key="vault",
        env=(("A", "B"), ("EMPTY", "")),
        env_passthrough=("TOKEN",),
    )


def test_manifest_of_every_choice() -> None:
    assert extras_manifest(everything()) == {
        "sgx": {
            "trusted_files": ["file:/var/lib/app/settings", "file:/opt/tools/"],
            "allowed_files": ["file:/data/", "file:/etc/app.conf"],
        },
        "loader": {"env": {"A": "B", "EMPTY": "", "TOKEN": {"passthrough": True}}},
        "fs": {
            "mounts": [
                {
                    "type": "encrypted",
                    "path": "/srv/db",
                    "uri": "file:/srv/db",
                    "key_name": "_sgx_mrenclave",
                },
                {
                    "type": "encrypted",
                    "path": "/srv/keys",
                    "uri": "file:/srv/keys",
                    "key_name": "vault",
                },
                {"type": "tmpfs", "path": "/cache"},
                {
                    "type": "encrypted",
                    "path": "/run/secrets",
                    "uri": "file:/run/secrets",
                    "key_name": "vault",
                },
            ]
        },
    }


def test_manifest_of_every_choice_fits_gramines_schema() -> None:
    manifest = extras_manifest(everything())
    manifest["libos"] = {"entrypoint": "/app/main"}
    manifest["loader"]["entrypoint"] = {"uri": "file:/gramine/libsysdb.so"}

    validate(manifest)


def test_allowed_secrets_are_a_directory_of_allowed_files() -> None:
    manifest = extras_manifest(Extras(secrets="allowed"))

    assert manifest == {"sgx": {"allowed_files": ["file:/run/secrets/"]}}


def test_no_choices_no_keys() -> None:
    assert extras_manifest(Extras()) == {}
    assert Extras().volume_paths == ()


def test_volume_paths_are_the_run_time_mounts() -> None:
    assert everything().volume_paths == (
        "/srv/db",
        "/srv/keys",
        "/cache",
        "/run/secrets",
    )


def test_unhandled_volumes_are_those_without_a_choice() -> None:
    extras = Extras(
        allowed=("/data/",), tmpfs_volumes=("/cache",), trusted=("/opt/seed/",)
    )
    volumes = ("/data", "/cache/", "/opt/seed", "/logs", "/data/sub", "/datastore")

    # A volume below a chosen path is covered by that choice.
    assert unhandled_volumes(volumes, extras) == ["/logs", "/datastore"]
    assert unhandled_volumes(("/data",), Extras(tmpfs_volumes=("/data/tmp",))) == [
        "/data"
    ]


@pytest.mark.parametrize("glob", ["usr/share/doc/*", "", "?usr"])
def test_exclude_globs_must_be_absolute(glob: str) -> None:
    with pytest.raises(GscError, match=r"^--exclude '.*start the glob"):
        Extras(exclude=(glob,))


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("/usr/share/doc/x/copyright", True),
        ("/usr/share/docs", False),
        ("/usr/lib/python3/test.pyc", True),
        ("/usr/lib/python3/test.py", False),
    ],
)
def test_exclude_globs_match_across_directories(path: str, excluded: bool) -> None:
    assert is_excluded_by(path, ("/usr/share/doc/*", "*.pyc")) is excluded
