"""The manifest as Gramine's signer ships and measures it (`.manifest.sgx`).

Gramine's manifest loader fills in defaults before signing, and those keys are
written into the shipped file, so they are part of the measured bytes. This
module adds the same keys, in the same order, and serializes the result the
way Gramine does (tomli-w), so that our bytes equal the signer's.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from typing import Any

import tomli_w

from gsc.errors import ManifestError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

DEFAULT_MAX_THREADS = 4
DEFAULT_ENCLAVE_SIZE = "256M"
DEFAULT_ENCLAVE_SIZE_EDMM = "1024G"

# Gramine appends missing keys in exactly this order; the order is measured.
_SGX_DEFAULTS_BEFORE_SIZE: tuple[tuple[str, object], ...] = (
    ("trusted_files", []),
    ("max_threads", DEFAULT_MAX_THREADS),
    ("isvprodid", 0),
    ("isvsvn", 0),
    ("remote_attestation", "none"),
    ("debug", False),
    ("enable_stats", False),
    ("edmm_enable", False),
)
_CPU_FEATURE_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("avx", "unspecified"),
    ("avx512", "unspecified"),
    ("amx", "unspecified"),
    ("mpx", "disabled"),
    ("pkru", "disabled"),
)

ReadFile = Callable[[str], bytes]


def parse_manifest(text: str) -> dict[str, Any]:
    """Parse manifest TOML text into a dictionary that keeps the key order."""
    try:
        manifest: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(f"manifest is not valid TOML: {error}") from None
    return manifest


def complete_manifest(text: str, pkglibdir: str, read_file: ReadFile) -> bytes:
    """Return the `.manifest.sgx` bytes: `text` with Gramine's defaults added.

    `read_file` reads a path of the signer's file system; it is called only
    when `loader.entrypoint.sha256` is missing, to hash the entrypoint.
    """
    manifest = parse_manifest(text)
    add_defaults(manifest, pkglibdir, read_file)
    check_trusted_files(manifest["sgx"]["trusted_files"])
    return serialize_manifest(manifest)


def add_defaults(manifest: dict[str, Any], pkglibdir: str, read_file: ReadFile) -> None:
    """Add, in place, the keys that Gramine's signer adds when they are missing."""
    _add_sgx_defaults(_table(manifest, "sgx", "sgx"))
    _add_entrypoint_defaults(manifest, pkglibdir, read_file)


def check_trusted_files(entries: object) -> None:
    """Refuse trusted files without a hash: Gramine could not open them."""
    if not isinstance(entries, list):
        raise ManifestError("sgx.trusted_files must be a list")
    for index, entry in enumerate(entries):
        uri = entry.get("uri") if isinstance(entry, dict) else entry
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(uri, str) or not uri.startswith("file:"):
            raise ManifestError(
                f"sgx.trusted_files entry {index} has no file: URI: {entry!r}"
            )
        if not isinstance(digest, str) or not _is_sha256(digest):
            raise ManifestError(
                f"sgx.trusted_files entry {index} ({uri}) has no valid sha256; "
                "hash the trusted files before signing"
            )


def _is_sha256(digest: str) -> bool:
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def serialize_manifest(manifest: dict[str, Any]) -> bytes:
    """Serialize a manifest as Gramine writes it: tomli-w, UTF-8, no NUL."""
    try:
        data = tomli_w.dumps(manifest).encode("utf-8")
    except (TypeError, UnicodeEncodeError) as error:
        raise ManifestError(f"manifest cannot be written as TOML: {error}") from None
    if b"\0" in data:
        raise ManifestError("manifest contains a NUL byte, which Gramine refuses")
    return data


def _table(parent: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    table = parent.setdefault(key, {})
    if not isinstance(table, dict):
        raise ManifestError(f"manifest key {name} must be a table")
    return table


def _add_sgx_defaults(sgx: dict[str, Any]) -> None:
    for key, value in _SGX_DEFAULTS_BEFORE_SIZE:
        sgx.setdefault(key, value)

    edmm = bool(sgx["edmm_enable"])
    sgx.setdefault(
        "enclave_size", DEFAULT_ENCLAVE_SIZE_EDMM if edmm else DEFAULT_ENCLAVE_SIZE
    )
    sgx.setdefault("use_exinfo", False)

    cpu_features = _table(sgx, "cpu_features", "sgx.cpu_features")
    for key, value in _CPU_FEATURE_DEFAULTS:
        cpu_features.setdefault(key, value)


def _add_entrypoint_defaults(
    manifest: dict[str, Any], pkglibdir: str, read_file: ReadFile
) -> None:
    loader = _table(manifest, "loader", "loader")
    entrypoint = _table(loader, "entrypoint", "loader.entrypoint")
    entrypoint.setdefault("uri", f"file:{pkglibdir.rstrip('/')}/libsysdb.so")
    if "sha256" not in entrypoint:
        entrypoint["sha256"] = _hash_entrypoint(entrypoint["uri"], read_file)


def _hash_entrypoint(uri: object, read_file: ReadFile) -> str:
    if not isinstance(uri, str) or not uri.startswith("file:"):
        raise ManifestError(
            f"loader.entrypoint.uri must be a file: URI string, not {uri!r}"
        )
    path = uri.removeprefix("file:")
    try:
        contents = read_file(path)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ManifestError(
            f"loader.entrypoint: cannot read {path} to hash it ({reason}); "
            "set loader.entrypoint.sha256 or fix the path"
        ) from None
    return hashlib.sha256(contents).hexdigest()
