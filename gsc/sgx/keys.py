"""Enclave signing keys: RSA-3072 with public exponent 3, in PEM files.

Error messages name the file and the problem, never the key material or the
passphrase.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from gsc.errors import KeyFileError

KEY_BITS = 3072
PUBLIC_EXPONENT = 3
GENERATE_HINT = "make one with: gsc generate-key KEY.pem"

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)(?:-----END \1-----|\Z)", re.DOTALL
)
_PRIVATE_LABELS = frozenset(
    {
        b"PRIVATE KEY",
        b"ENCRYPTED PRIVATE KEY",
        b"RSA PRIVATE KEY",
        b"EC PRIVATE KEY",
        b"DSA PRIVATE KEY",
    }
)
_PUBLIC_LABELS = frozenset({b"PUBLIC KEY", b"RSA PUBLIC KEY"})


@dataclass(frozen=True)
class _PemBlock:
    label: bytes
    text: bytes
    encrypted: bool


def load_private_key(path: Path, passphrase: bytes | None) -> rsa.RSAPrivateKey:
    """Load an enclave signing key from a PEM file, decrypting it if needed."""
    block = _read_pem(path, _PRIVATE_LABELS, "private key")
    if block.encrypted and passphrase is None:
        raise KeyFileError(f"{path}: the key is encrypted and needs a passphrase")

    try:
        key = serialization.load_pem_private_key(
            block.text, password=passphrase if block.encrypted else None
        )
    except ValueError:
        if block.encrypted:
            raise KeyFileError(
                f"{path}: cannot decrypt the key: wrong passphrase "
                "(or the file is damaged)"
            ) from None
        raise KeyFileError(f"{path}: the key is corrupt") from None
    except (TypeError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{path}: the key uses an unsupported format or encryption"
        ) from None

    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(
            f"{path}: {_key_type(key)} key, but SGX needs RSA; {GENERATE_HINT}"
        )
    check_signing_key(key.public_key(), str(path))
    return key


def key_is_encrypted(path: Path) -> bool:
    """Whether a PEM private key file needs a passphrase (errors as when loading)."""
    return _read_pem(path, _PRIVATE_LABELS, "private key").encrypted


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """Load the public half of an enclave signing key from a PEM file."""
    block = _read_pem(path, _PUBLIC_LABELS, "public key")
    try:
        key = serialization.load_pem_public_key(block.text)
    except ValueError:
        raise KeyFileError(f"{path}: the public key is corrupt") from None
    except UnsupportedAlgorithm:
        raise KeyFileError(
            f"{path}: the public key uses an unsupported format"
        ) from None

    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileError(f"{path}: {_key_type(key)} key, but SGX needs RSA")
    check_signing_key(key, str(path))
    return key


def check_signing_key(key: rsa.RSAPublicKey, source: str) -> None:
    """Refuse a key that SGX cannot use: it must be RSA-3072 with exponent 3."""
    if key.key_size != KEY_BITS:
        raise KeyFileError(
            f"{source}: the key is {key.key_size} bits but SGX needs {KEY_BITS}; "
            f"{GENERATE_HINT}"
        )
    exponent = key.public_numbers().e
    if exponent != PUBLIC_EXPONENT:
        raise KeyFileError(
            f"{source}: the key's public exponent is {exponent} but SGX needs "
            f"{PUBLIC_EXPONENT}; {GENERATE_HINT}"
        )


def generate_private_key(path: Path, passphrase: bytes | None) -> None:
    """Write a new RSA-3072, exponent-3 key to `path` (mode 0600, never replaced)."""
    if passphrase is not None and not passphrase:
        raise KeyFileError(f"{path}: the passphrase is empty; give one or none")
    if os.path.lexists(path):
        raise KeyFileError(f"{path}: already exists; refusing to overwrite it")

    key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    _write_new_file(path, pem)


def _write_new_file(path: Path, data: bytes) -> None:
    # mkstemp creates the file with mode 0600; the hard link then publishes the
    # complete file under its name, and fails instead of replacing a file.
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise KeyFileError(
            f"{path}: cannot create the key file ({_reason(error)})"
        ) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.link(temporary, path)
    except FileExistsError:
        raise KeyFileError(
            f"{path}: already exists; refusing to overwrite it"
        ) from None
    except OSError as error:
        raise KeyFileError(
            f"{path}: cannot write the key file ({_reason(error)})"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _read_pem(path: Path, labels: frozenset[bytes], wanted: str) -> _PemBlock:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise KeyFileError(
            f"{path}: cannot read the key file ({_reason(error)})"
        ) from None

    match = _PEM_BLOCK.search(data)
    if match is None:
        raise KeyFileError(f"{path}: not a PEM file; the key must be in PEM format")
    label, body = match[1], match[2]
    if not match[0].endswith(b"-----END " + label + b"-----"):
        raise KeyFileError(f"{path}: the PEM file is truncated (no END line)")
    if label not in labels:
        raise KeyFileError(
            f"{path}: holds a PEM {label.decode()} block, not a {wanted}"
            f"{_label_hint(label)}"
        )

    body = body.replace(b"\r\n", b"\n")
    headers, _, encoded = body.rpartition(b"\n\n") if b":" in body else (b"", b"", body)
    try:
        base64.b64decode(b"".join(encoded.split()), validate=True)
    except binascii.Error:
        raise KeyFileError(f"{path}: the PEM file is corrupt (bad base64)") from None
    encrypted = label == b"ENCRYPTED PRIVATE KEY" or b"ENCRYPTED" in headers
    return _PemBlock(label, match[0], encrypted)


def _label_hint(label: bytes) -> str:
    if label == b"CERTIFICATE":
        return "; extract the key with: openssl x509 -pubkey -noout -in CERT.pem"
    if label in _PRIVATE_LABELS:
        return "; derive the public key with: openssl pkey -pubout -in KEY.pem"
    if label == b"OPENSSH PRIVATE KEY":
        return "; convert it to PEM with: ssh-keygen -p -m PEM -f KEY"
    return ""


def _key_type(key: object) -> str:
    kinds = (
        ((ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey), "an EC"),
        ((dsa.DSAPrivateKey, dsa.DSAPublicKey), "a DSA"),
        ((ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey), "an Ed25519"),
        ((ed448.Ed448PrivateKey, ed448.Ed448PublicKey), "an Ed448"),
    )
    for classes, kind in kinds:
        if isinstance(key, classes):
            return kind
    return "a non-RSA"


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
