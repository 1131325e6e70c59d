"""Signing a SIGSTRUCT, with a key file or with a signature made elsewhere.

The signature is RSASSA-PKCS1-v1_5 with SHA-256 over `Sigstruct.signed_data()`.
Every result is verified before it is returned, so a SIGSTRUCT that leaves
this module is one the CPU accepts.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gsc.errors import SignatureError
from gsc.sgx.keys import KEY_BITS, check_signing_key
from gsc.sgx.sigstruct import (
    RSA_EXPONENT,
    RSA_KEY_SIZE,
    Sigstruct,
    signature_quotients,
    with_signature,
)


def sign_sigstruct(unsigned: Sigstruct, key: rsa.RSAPrivateKey) -> Sigstruct:
    """Sign with a private key; fills in the modulus, signature, Q1 and Q2."""
    public_key = key.public_key()
    check_signing_key(public_key, "signing key")
    signature = key.sign(unsigned.signed_data(), padding.PKCS1v15(), hashes.SHA256())
    return _finish(unsigned, public_key, signature)


def attach_signature(
    unsigned: Sigstruct, signature: bytes, public_key: rsa.RSAPublicKey
) -> Sigstruct:
    """Attach a signature made elsewhere (HSM, KMS, `openssl dgst -sha256 -sign`).

    `signature` is the raw 384-byte big-endian PKCS#1 v1.5 signature of
    `unsigned.signed_data()`; it must verify with `public_key`.
    """
    check_signing_key(public_key, "public key")
    if len(signature) != RSA_KEY_SIZE:
        raise SignatureError(
            f"the signature is {len(signature)} bytes; an RSA-{KEY_BITS} "
            f"signature is {RSA_KEY_SIZE}"
        )
    return _finish(unsigned, public_key, bytes(signature))


def verify_sigstruct(sigstruct: Sigstruct) -> None:
    """Check the signature against the SIGSTRUCT's own modulus, and Q1 and Q2."""
    if sigstruct.exponent != RSA_EXPONENT:
        raise SignatureError(
            f"SIGSTRUCT exponent is {sigstruct.exponent}, not {RSA_EXPONENT}"
        )
    modulus, signature = sigstruct.modulus, sigstruct.signature
    if modulus.bit_length() != KEY_BITS or modulus % 2 == 0:
        raise SignatureError(f"SIGSTRUCT modulus is not an RSA-{KEY_BITS} modulus")
    if signature >= modulus:
        raise SignatureError("SIGSTRUCT signature is not below the modulus")

    try:
        public_key = rsa.RSAPublicNumbers(RSA_EXPONENT, modulus).public_key()
    except ValueError:
        raise SignatureError("SIGSTRUCT modulus is not a usable RSA modulus") from None
    try:
        public_key.verify(
            signature.to_bytes(RSA_KEY_SIZE, "big"),
            sigstruct.signed_data(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise SignatureError(
            "SIGSTRUCT signature does not verify with its modulus: "
            "the structure was altered or signed by another key"
        ) from None

    if (sigstruct.q1, sigstruct.q2) != signature_quotients(signature, modulus):
        raise SignatureError("SIGSTRUCT Q1/Q2 do not match its signature")


def _finish(
    unsigned: Sigstruct, public_key: rsa.RSAPublicKey, signature: bytes
) -> Sigstruct:
    modulus = public_key.public_numbers().n
    signed = with_signature(unsigned, modulus, int.from_bytes(signature, "big"))
    verify_sigstruct(signed)
    return signed
