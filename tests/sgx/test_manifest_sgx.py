from __future__ import annotations

import hashlib

import pytest

from gsc.errors import ManifestError
from gsc.sgx.manifest_sgx import complete_manifest, parse_manifest

from .vectors import CASES, read_signer_file, vector

PKGLIBDIR = "/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine"
ENTRYPOINT_HASH = "ab" * 32
MINIMAL = f'''
libos.entrypoint = "/app/run"
loader.entrypoint.sha256 = "{ENTRYPOINT_HASH}"
fs.mounts = []
'''


def no_file(path: str) -> bytes:
    raise AssertionError(f"read_file({path!r}) should not be called")


@pytest.mark.parametrize("case", CASES)
def test_vector_manifest_sgx_is_byte_exact(case: str) -> None:
    text = vector(case, ".manifest").decode()

    result = complete_manifest(text, PKGLIBDIR, read_signer_file)

    assert result == vector(case, ".manifest.sgx")


def test_missing_entrypoint_hash_is_the_hash_of_the_file() -> None:
    text = 'loader.entrypoint.uri = "file:/w/libsysdb-test.bin"\n'
    expected = hashlib.sha256(read_signer_file("/w/libsysdb-test.bin")).hexdigest()

    manifest = parse_manifest(
        complete_manifest(text, PKGLIBDIR, read_signer_file).decode()
    )

    assert manifest["loader"]["entrypoint"]["sha256"] == expected
    assert expected.endswith("3d01")


def test_missing_entrypoint_uri_is_libsysdb_under_pkglibdir() -> None:
    asked: list[str] = []

    def read_file(path: str) -> bytes:
        asked.append(path)
        return b"library OS"

    result = complete_manifest("", "/opt/gramine/lib/", read_file)

    entrypoint = parse_manifest(result.decode())["loader"]["entrypoint"]
    assert asked == ["/opt/gramine/lib/libsysdb.so"]
    assert entrypoint == {
        "uri": "file:/opt/gramine/lib/libsysdb.so",
        "sha256": hashlib.sha256(b"library OS").hexdigest(),
    }


def test_defaults_are_appended_in_gramines_order() -> None:
    manifest = parse_manifest(complete_manifest(MINIMAL, PKGLIBDIR, no_file).decode())

    assert list(manifest) == ["libos", "loader", "fs", "sgx"]
    assert list(manifest["sgx"].items()) == [
        ("trusted_files", []),
        ("max_threads", 4),
        ("isvprodid", 0),
        ("isvsvn", 0),
        ("remote_attestation", "none"),
        ("debug", False),
        ("enable_stats", False),
        ("edmm_enable", False),
        ("enclave_size", "256M"),
        ("use_exinfo", False),
        (
            "cpu_features",
            {
                "avx": "unspecified",
                "avx512": "unspecified",
                "amx": "unspecified",
                "mpx": "disabled",
                "pkru": "disabled",
            },
        ),
    ]


def test_given_values_are_kept_in_place() -> None:
    text = MINIMAL + 'sgx.max_threads = 9\nsgx.cpu_features.pkru = "required"\n'

    sgx = parse_manifest(complete_manifest(text, PKGLIBDIR, no_file).decode())["sgx"]

    assert list(sgx)[:2] == ["max_threads", "trusted_files"]
    assert sgx["max_threads"] == 9
    assert list(sgx["cpu_features"].items()) == [
        ("pkru", "required"),
        ("avx", "unspecified"),
        ("avx512", "unspecified"),
        ("amx", "unspecified"),
        ("mpx", "disabled"),
    ]


def test_edmm_changes_the_default_enclave_size() -> None:
    text = MINIMAL + "sgx.edmm_enable = true\n"

    sgx = parse_manifest(complete_manifest(text, PKGLIBDIR, no_file).decode())["sgx"]

    assert sgx["enclave_size"] == "1024G"


def test_a_nul_in_a_value_is_escaped_not_shipped() -> None:
    text = MINIMAL + 'loader.env.X = "a\\u0000b"\n'

    result = complete_manifest(text, PKGLIBDIR, no_file)

    assert b"\0" not in result
    assert parse_manifest(result.decode())["loader"]["env"]["X"] == "a\0b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("libos.entrypoint = ", "manifest is not valid TOML"),
        ('loader.entrypoint = "file:/x"', "loader.entrypoint must be a table"),
        ('loader = "x"', "loader must be a table"),
        ("sgx = 3", "sgx must be a table"),
        ('sgx.cpu_features = "all"', "sgx.cpu_features must be a table"),
        ('loader.entrypoint.uri = "dev:/x"', "must be a file: URI"),
    ],
)
def test_bad_manifests_are_refused(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        complete_manifest(text, PKGLIBDIR, no_file)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ('["file:/bin/sh"]', r"entry 0 \(file:/bin/sh\) has no valid sha256; hash the"),
        (
            '[{uri = "file:/a", sha256 = "' + "0" * 64 + '"}, {uri = "file:/b"}]',
            r"entry 1 \(file:/b\) has no valid sha256",
        ),
        ('[{uri = "file:/a", sha256 = "ABC"}]', "entry 0 .* has no valid sha256"),
        ('[{uri = "dev:/a", sha256 = "' + "0" * 64 + '"}]', "entry 0 has no file: URI"),
        ('"file:/a"', "sgx.trusted_files must be a list"),
    ],
)
def test_unhashed_trusted_files_are_refused(entries: str, message: str) -> None:
    text = MINIMAL + f"sgx.trusted_files = {entries}\n"

    with pytest.raises(ManifestError, match=message):
        complete_manifest(text, PKGLIBDIR, no_file)


def test_an_unreadable_entrypoint_names_the_path_and_the_fix() -> None:
    def read_file(path: str) -> bytes:
        raise FileNotFoundError(2, "No such file or directory", path)

    with pytest.raises(ManifestError) as caught:
        complete_manifest("", "/g", read_file)

    assert str(caught.value) == (
        "loader.entrypoint: cannot read /g/libsysdb.so to hash it "
        "(No such file or directory); set loader.entrypoint.sha256 or fix the path"
    )
