from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gsc.errors import KeyFileError, SignatureError
from gsc.sgx.keys import load_private_key
from gsc.sgx.layout import enclave_config
from gsc.sgx.manifest_sgx import complete_manifest, parse_manifest
from gsc.sgx.measure import measure_enclave
from gsc.sgx.sign import attach_signature, sign_sigstruct, verify_sigstruct
from gsc.sgx.sigstruct import Sigstruct, unsigned_sigstruct

from .vectors import CASES, VECTOR_DATE, read_signer_file, vector, view

PKGLIBDIR = "/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine"


@pytest.fixture(scope="module")
def key(key_path: Path) -> rsa.RSAPrivateKey:
    return load_private_key(key_path, None)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=3072)


def unsigned_for(case: str, key: rsa.RSAPrivateKey, libpal: bytes) -> Sigstruct:
    """The whole path from an input manifest to an unsigned SIGSTRUCT."""
    manifest_sgx = complete_manifest(
        vector(case, ".manifest").decode(), PKGLIBDIR, read_signer_file
    )
    manifest = parse_manifest(manifest_sgx.decode())
    mr_enclave = measure_enclave(manifest_sgx, libpal, enclave_config(manifest))
    modulus = key.public_key().public_numbers().n
    return unsigned_sigstruct(manifest, mr_enclave, VECTOR_DATE, modulus)


@pytest.mark.parametrize("case", CASES)
def test_vectors_are_reproduced_byte_for_byte(
    case: str, key: rsa.RSAPrivateKey, libpal: bytes
) -> None:
    signed = sign_sigstruct(unsigned_for(case, key, libpal), key)

    assert signed.to_bytes() == vector(case, ".sig")
    assert Sigstruct.from_bytes(signed.to_bytes()).view() == view(case)


def test_the_signature_verifies_with_the_public_key(
    key: rsa.RSAPrivateKey, libpal: bytes
) -> None:
    data = sign_sigstruct(unsigned_for("v2-small-debug", key, libpal), key).to_bytes()
    signature = int.from_bytes(data[0x204:0x384], "little").to_bytes(384, "big")

    key.public_key().verify(
        signature, data[:0x80] + data[0x384:0x404], padding.PKCS1v15(), hashes.SHA256()
    )


@pytest.mark.parametrize("case", CASES)
def test_q1_and_q2_follow_the_formulas(case: str) -> None:
    data = vector(case, ".sig")
    n = int.from_bytes(data[0x80:0x200], "little")
    s = int.from_bytes(data[0x204:0x384], "little")
    q1 = int.from_bytes(data[0x410:0x590], "little")
    q2 = int.from_bytes(data[0x590:0x710], "little")

    assert q1 == s * s // n
    assert q2 == (s * s - q1 * n) * s // n
    assert pow(s, 3, n) != 0


def openssl_sign(data: bytes, key_path: Path, tmp_path: Path) -> bytes:
    message = tmp_path / "signed_data.bin"
    message.write_bytes(data)
    result = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key_path), str(message)],
        check=True,
        capture_output=True,
    )
    return result.stdout


def test_a_signature_made_by_openssl_can_be_attached(
    key: rsa.RSAPrivateKey, key_path: Path, libpal: bytes, tmp_path: Path
) -> None:
    unsigned = unsigned_for("v6-gsc-like", key, libpal)
    signature = openssl_sign(unsigned.signed_data(), key_path, tmp_path)

    attached = attach_signature(unsigned, signature, key.public_key())

    assert len(signature) == 384
    assert attached.to_bytes() == vector("v6-gsc-like", ".sig")


def test_a_tampered_external_signature_is_refused(
    key: rsa.RSAPrivateKey, key_path: Path, libpal: bytes, tmp_path: Path
) -> None:
    unsigned = unsigned_for("v1-minimal", key, libpal)
    signature = bytearray(openssl_sign(unsigned.signed_data(), key_path, tmp_path))
    signature[100] ^= 0x01

    with pytest.raises(SignatureError, match="does not verify"):
        attach_signature(unsigned, bytes(signature), key.public_key())


def test_a_signature_of_other_data_is_refused(
    key: rsa.RSAPrivateKey, key_path: Path, libpal: bytes, tmp_path: Path
) -> None:
    unsigned = unsigned_for("v1-minimal", key, libpal)
    signature = openssl_sign(
        unsigned_for("v3-edmm", key, libpal).signed_data(), key_path, tmp_path
    )

    with pytest.raises(SignatureError, match="does not verify"):
        attach_signature(unsigned, signature, key.public_key())


def test_a_signature_by_another_key_is_refused(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey, libpal: bytes, tmp_path: Path
) -> None:
    unsigned = unsigned_for("v1-minimal", key, libpal)
    other_path = tmp_path / "other.pem"
    other_path.write_bytes(
        other_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signature = openssl_sign(unsigned.signed_data(), other_path, tmp_path)

    # Another key's signature may even exceed this key's modulus.
    with pytest.raises(SignatureError, match=r"does not verify|not below the modulus"):
        attach_signature(unsigned, signature, key.public_key())
    assert attach_signature(
        unsigned, signature, other_key.public_key()
    ).mr_signer() != (sign_sigstruct(unsigned, key).mr_signer())


@pytest.mark.parametrize("length", [0, 383, 385, 512])
def test_a_signature_of_the_wrong_length_is_refused(
    key: rsa.RSAPrivateKey, libpal: bytes, length: int
) -> None:
    unsigned = unsigned_for("v1-minimal", key, libpal)

    with pytest.raises(
        SignatureError,
        match=f"the signature is {length} bytes; an RSA-3072 signature is 384",
    ):
        attach_signature(unsigned, bytes(length), key.public_key())


def test_unsuitable_keys_are_refused_for_signing(
    key: rsa.RSAPrivateKey, libpal: bytes
) -> None:
    unsigned = unsigned_for("v1-minimal", key, libpal)
    small = rsa.generate_private_key(public_exponent=3, key_size=2048)

    with pytest.raises(KeyFileError, match="signing key: the key is 2048 bits"):
        sign_sigstruct(unsigned, small)
    with pytest.raises(KeyFileError, match="public key: the key is 2048 bits"):
        attach_signature(unsigned, bytes(256), small.public_key())


def test_the_modulus_comes_from_the_signing_key(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey, libpal: bytes
) -> None:
    unsigned = unsigned_for("v1-minimal", key, libpal)

    signed = sign_sigstruct(unsigned, other_key)

    assert signed.modulus == other_key.public_key().public_numbers().n
    verify_sigstruct(signed)


def test_verification_catches_every_kind_of_tampering(
    key: rsa.RSAPrivateKey, libpal: bytes
) -> None:
    signed = sign_sigstruct(unsigned_for("v7-threads", key, libpal), key)
    verify_sigstruct(signed)
    verify_sigstruct(Sigstruct.from_bytes(vector("v4-large", ".sig")))

    cases = [
        ("does not verify", dataclasses.replace(signed, mr_enclave=bytes(32))),
        ("does not verify", dataclasses.replace(signed, isv_svn=1)),
        ("Q1/Q2 do not match", dataclasses.replace(signed, q1=signed.q1 + 1)),
        ("Q1/Q2 do not match", dataclasses.replace(signed, q2=0)),
        ("exponent is 65537", dataclasses.replace(signed, exponent=65537)),
        (
            "not an RSA-3072 modulus",
            dataclasses.replace(signed, modulus=signed.modulus >> 8),
        ),
        (
            "not below the modulus",
            dataclasses.replace(signed, signature=signed.modulus + 1),
        ),
    ]
    for message, tampered in cases:
        with pytest.raises(SignatureError, match=message):
            verify_sigstruct(tampered)


def test_an_unsigned_sigstruct_does_not_verify(
    key: rsa.RSAPrivateKey, libpal: bytes
) -> None:
    unsigned = dataclasses.replace(unsigned_for("v1-minimal", key, libpal), modulus=0)

    with pytest.raises(SignatureError, match="not an RSA-3072 modulus"):
        verify_sigstruct(unsigned)
