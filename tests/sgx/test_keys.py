from __future__ import annotations

import datetime
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gsc.errors import KeyFileError
from gsc.sgx.keys import generate_private_key, load_private_key, load_public_key

PASSPHRASE = b"correct horse battery staple"
PEM = serialization.Encoding.PEM


def private_pem(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    passphrase: bytes | None = None,
    form: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(PEM, form, encryption)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def good_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=3072)


def assert_no_secret(message: str, pem: bytes) -> None:
    """The message holds neither the passphrase nor any line of the key file."""
    assert PASSPHRASE.decode() not in message
    for line in pem.splitlines():
        if not line.startswith(b"-----") and len(line) > 16:
            assert line.decode(errors="replace")[:16] not in message


# Loading private keys


def test_a_good_key_loads(good_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    path = write(tmp_path, "key.pem", private_pem(good_key))

    loaded = load_private_key(path, None)

    assert loaded.private_numbers() == good_key.private_numbers()


def test_the_vectors_key_loads(key_path: Path) -> None:
    key = load_private_key(key_path, None)

    assert (key.key_size, key.public_key().public_numbers().e) == (3072, 3)


def test_a_traditional_openssl_key_loads(
    good_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    pem = private_pem(good_key, form=serialization.PrivateFormat.TraditionalOpenSSL)
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")

    loaded = load_private_key(write(tmp_path, "key.pem", pem), None)

    assert loaded.private_numbers() == good_key.private_numbers()


@pytest.mark.parametrize(
    "form",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
)
def test_encrypted_keys(
    good_key: rsa.RSAPrivateKey, tmp_path: Path, form: serialization.PrivateFormat
) -> None:
    pem = private_pem(good_key, PASSPHRASE, form)
    path = write(tmp_path, "key.pem", pem)

    assert (
        load_private_key(path, PASSPHRASE).private_numbers()
        == good_key.private_numbers()
    )
    with pytest.raises(KeyFileError) as missing:
        load_private_key(path, None)
    with pytest.raises(KeyFileError) as wrong:
        load_private_key(path, b"not the passphrase")

    assert str(missing.value) == f"{path}: the key is encrypted and needs a passphrase"
    assert str(wrong.value) == (
        f"{path}: cannot decrypt the key: wrong passphrase (or the file is damaged)"
    )
    assert_no_secret(str(wrong.value), pem)


def test_a_passphrase_for_a_plain_key_is_ignored(
    good_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    path = write(tmp_path, "key.pem", private_pem(good_key))

    assert load_private_key(path, PASSPHRASE).key_size == 3072


def test_a_2048_bit_key_is_refused(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    path = write(tmp_path, "key.pem", private_pem(key))

    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, None)

    assert str(caught.value) == (
        f"{path}: the key is 2048 bits but SGX needs 3072; "
        "make one with: gsc generate-key KEY.pem"
    )


def test_exponent_65537_is_refused(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pem = private_pem(key)
    path = write(tmp_path, "key.pem", pem)

    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, None)

    assert str(caught.value).startswith(
        f"{path}: the key's public exponent is 65537 but SGX needs 3; make one with"
    )
    assert_no_secret(str(caught.value), pem)


def test_an_ec_key_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path, "key.pem", private_pem(ec.generate_private_key(ec.SECP384R1()))
    )

    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, None)

    assert str(caught.value).startswith(f"{path}: an EC key, but SGX needs RSA; ")


def test_a_truncated_key_is_refused(
    good_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    pem = private_pem(good_key)
    path = write(tmp_path, "key.pem", pem[: len(pem) // 2])

    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, None)

    assert str(caught.value) == f"{path}: the PEM file is truncated (no END line)"
    assert_no_secret(str(caught.value), pem)


def test_a_key_with_damaged_contents_is_refused(
    good_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    lines = private_pem(good_key).splitlines(keepends=True)
    lines[5] = b"A" * (len(lines[5]) - 1) + b"\n"  # still base64, no longer a key
    damaged = write(tmp_path, "damaged.pem", b"".join(lines))
    lines[5] = b"!!!!" + lines[5][4:]
    garbled = write(tmp_path, "garbled.pem", b"".join(lines))

    with pytest.raises(KeyFileError) as corrupt:
        load_private_key(damaged, None)
    with pytest.raises(KeyFileError) as not_base64:
        load_private_key(garbled, None)

    assert str(corrupt.value) == f"{damaged}: the key is corrupt"
    assert str(not_base64.value) == f"{garbled}: the PEM file is corrupt (bad base64)"


def test_a_der_key_is_not_pem(good_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    der = good_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = write(tmp_path, "key.der", der)

    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, None)

    assert str(caught.value) == f"{path}: not a PEM file; the key must be in PEM format"


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: None])
def test_an_unreadable_path_is_refused(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    path = tmp_path / "key.pem"
    make(path)

    with pytest.raises(KeyFileError, match=r"key.pem: cannot read the key file \("):
        load_private_key(path, None)


def test_a_public_key_is_not_a_private_key(
    good_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    public = good_key.public_key().public_bytes(
        PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = write(tmp_path, "key.pem", public)

    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, None)

    assert (
        str(caught.value) == f"{path}: holds a PEM PUBLIC KEY block, not a private key"
    )


# Loading public keys


@pytest.mark.parametrize(
    "form",
    [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1],
)
def test_public_keys_load(
    good_key: rsa.RSAPrivateKey, tmp_path: Path, form: serialization.PublicFormat
) -> None:
    path = write(tmp_path, "key.pub", good_key.public_key().public_bytes(PEM, form))

    assert (
        load_public_key(path).public_numbers() == good_key.public_key().public_numbers()
    )


def test_a_certificate_is_not_a_public_key(
    good_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(good_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(good_key, hashes.SHA256())
    )
    path = write(tmp_path, "cert.pem", certificate.public_bytes(PEM))

    with pytest.raises(KeyFileError) as caught:
        load_public_key(path)

    assert str(caught.value) == (
        f"{path}: holds a PEM CERTIFICATE block, not a public key; "
        "extract the key with: openssl x509 -pubkey -noout -in CERT.pem"
    )


def test_a_private_key_is_not_a_public_key(
    good_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    path = write(tmp_path, "key.pem", private_pem(good_key))

    with pytest.raises(
        KeyFileError, match="not a public key; derive the public key with"
    ):
        load_public_key(path)


def test_public_keys_get_the_same_checks(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=3, key_size=2048).public_key()
    path = write(
        tmp_path,
        "small.pub",
        small.public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    ec_public = ec.generate_private_key(ec.SECP256R1()).public_key()
    ec_path = write(
        tmp_path,
        "ec.pub",
        ec_public.public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )

    with pytest.raises(KeyFileError, match="the key is 2048 bits but SGX needs 3072"):
        load_public_key(path)
    with pytest.raises(KeyFileError, match="an EC key, but SGX needs RSA"):
        load_public_key(ec_path)
    with pytest.raises(KeyFileError, match="cannot read the key file"):
        load_public_key(tmp_path)


# Generating keys


def test_a_generated_key_is_usable_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "enclave-key.pem"
    modes_while_writing: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        modes_while_writing.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    old_umask = os.umask(0)  # the mode must not depend on the caller's umask
    try:
        generate_private_key(path, None)
    finally:
        os.umask(old_umask)

    assert modes_while_writing == [0o600]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_private_key(path, None)
    assert (key.key_size, key.public_key().public_numbers().e) == (3072, 3)
    assert os.listdir(tmp_path) == ["enclave-key.pem"]


def test_a_generated_key_can_be_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"

    generate_private_key(path, PASSPHRASE)

    assert b"ENCRYPTED" in path.read_bytes()
    assert load_private_key(path, PASSPHRASE).key_size == 3072
    with pytest.raises(KeyFileError, match="needs a passphrase"):
        load_private_key(path, None)


def test_generating_never_overwrites(tmp_path: Path) -> None:
    path = write(tmp_path, "key.pem", b"precious")

    with pytest.raises(KeyFileError) as caught:
        generate_private_key(path, None)

    assert str(caught.value) == f"{path}: already exists; refusing to overwrite it"
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["key.pem"]


def test_a_key_file_appearing_meanwhile_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "key.pem"
    real_fsync = os.fsync

    def racing_fsync(fd: int) -> None:
        real_fsync(fd)
        path.write_bytes(b"written by someone else")

    monkeypatch.setattr(os, "fsync", racing_fsync)
    with pytest.raises(KeyFileError, match="already exists; refusing to overwrite it"):
        generate_private_key(path, None)

    assert path.read_bytes() == b"written by someone else"
    assert os.listdir(tmp_path) == ["key.pem"]


def test_generating_into_a_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create the key file"):
        generate_private_key(tmp_path / "missing" / "key.pem", None)


def test_an_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="the passphrase is empty"):
        generate_private_key(tmp_path / "key.pem", b"")
