"""SIGSTRUCT: the signed 1808-byte structure that an SGX enclave starts from.

All integers are little-endian. The structure is built from the manifest and
MRENCLAVE, signed elsewhere (`gsc.sgx.sign`), and read back for display.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gsc.errors import ManifestError, SignatureError

SIGSTRUCT_SIZE = 1808
RSA_KEY_SIZE = 384
RSA_EXPONENT = 3

HEADER = bytes.fromhex("06000000e10000000000010000000000")
HEADER2 = bytes.fromhex("01010000600000006000000001000000")

FLAG_DEBUG = 0x2
FLAG_MODE64BIT = 0x4
FLAGS_MASK = 0xFFFF_FFFF_FFFF_FFFF
MISC_EXINFO = 0x1
MISC_MASK = 0xFFFF_FFFF
XFRM_LEGACY = 0x3
XFRM_MASK = 0xFFFF_FFFF_FFF9_FF1B

# sgx.cpu_features knobs and their XFRM bits. Gramine applies them in this
# order whatever the manifest's order, and the avx512 bits include avx's bit,
# so "avx512 = disabled" clears a bit that "avx = required" set.
CPU_FEATURE_BITS: tuple[tuple[str, int, frozenset[str]], ...] = (
    ("avx", 0x4, frozenset({"unspecified", "disabled", "required"})),
    ("avx512", 0xE4, frozenset({"unspecified", "disabled", "required"})),
    ("amx", 0x6_0000, frozenset({"unspecified", "disabled", "required"})),
    ("mpx", 0x18, frozenset({"disabled", "required"})),
    ("pkru", 0x200, frozenset({"disabled", "required"})),
)

# Fixed-size fields other than the RSA numbers: (offset, struct format, name).
_SCALAR_FIELDS = (
    (0x010, "<I", "vendor"),
    (0x028, "<I", "sw_defined"),
    (0x200, "<I", "exponent"),
    (0x384, "<I", "misc_select"),
    (0x388, "<I", "misc_mask"),
    (0x38C, "<B", "cet_attributes"),
    (0x38D, "<B", "cet_attributes_mask"),
    (0x3A0, "<Q", "attribute_flags"),
    (0x3A8, "<Q", "attribute_xfrm"),
    (0x3B0, "<Q", "attribute_flags_mask"),
    (0x3B8, "<Q", "attribute_xfrm_mask"),
    (0x400, "<H", "isv_prod_id"),
    (0x402, "<H", "isv_svn"),
)
_BYTES_FIELDS = (
    (0x390, 16, "isv_family_id"),
    (0x3C0, 32, "mr_enclave"),
    (0x3F0, 16, "isv_ext_prod_id"),
)
_RSA_FIELDS = (
    (0x080, "modulus"),
    (0x204, "signature"),
    (0x410, "q1"),
    (0x590, "q2"),
)
_HEADER_AT = 0x000
_DATE_AT = 0x014
_HEADER2_AT = 0x018
_RESERVED = ((0x02C, 84), (0x38E, 2), (0x3E0, 16), (0x404, 12))
_SIGNED_RANGES = ((0x000, 0x080), (0x384, 0x404))


@dataclass(frozen=True)
class EnclaveAttributes:
    """The attribute and MISCSELECT values that a manifest asks for."""

    flags: int
    xfrm: int
    flags_mask: int
    xfrm_mask: int
    misc_select: int
    misc_mask: int


@dataclass(frozen=True)
class Sigstruct:
    """A SIGSTRUCT's fields; RSA numbers are ints, zero until signed."""

    date: datetime.date
    mr_enclave: bytes
    attribute_flags: int
    attribute_xfrm: int
    attribute_flags_mask: int
    attribute_xfrm_mask: int
    misc_select: int
    misc_mask: int
    isv_prod_id: int
    isv_svn: int
    modulus: int = 0
    exponent: int = RSA_EXPONENT
    signature: int = 0
    q1: int = 0
    q2: int = 0
    vendor: int = 0
    sw_defined: int = 0
    cet_attributes: int = 0
    cet_attributes_mask: int = 0
    isv_family_id: bytes = bytes(16)
    isv_ext_prod_id: bytes = bytes(16)

    def __post_init__(self) -> None:
        _check_date(self.date)
        for _, fmt, name in _SCALAR_FIELDS:
            _check_int(name, getattr(self, name), 8 * struct.calcsize(fmt))
        for _, size, name in _BYTES_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise SignatureError(f"SIGSTRUCT field {name} must be {size} bytes")
        for _, name in _RSA_FIELDS:
            _check_int(name, getattr(self, name), 8 * RSA_KEY_SIZE)

    @property
    def is_debug(self) -> bool:
        """Whether the enclave may be debugged (its secrets are not protected)."""
        return bool(self.attribute_flags & FLAG_DEBUG)

    def to_bytes(self) -> bytes:
        """The 1808-byte structure."""
        data = bytearray(SIGSTRUCT_SIZE)
        data[_HEADER_AT : _HEADER_AT + len(HEADER)] = HEADER
        data[_DATE_AT : _DATE_AT + 4] = encode_date(self.date)
        data[_HEADER2_AT : _HEADER2_AT + len(HEADER2)] = HEADER2
        for offset, fmt, name in _SCALAR_FIELDS:
            struct.pack_into(fmt, data, offset, getattr(self, name))
        for offset, size, name in _BYTES_FIELDS:
            data[offset : offset + size] = getattr(self, name)
        for offset, name in _RSA_FIELDS:
            value: int = getattr(self, name)
            data[offset : offset + RSA_KEY_SIZE] = value.to_bytes(
                RSA_KEY_SIZE, "little"
            )
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Sigstruct:
        """Parse a SIGSTRUCT; anything malformed raises SignatureError."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise SignatureError(f"SIGSTRUCT must be bytes, not {type(data).__name__}")
        data = bytes(data)
        _check_frame(data)

        fields: dict[str, Any] = {"date": decode_date(data[_DATE_AT : _DATE_AT + 4])}
        for offset, fmt, name in _SCALAR_FIELDS:
            (fields[name],) = struct.unpack_from(fmt, data, offset)
        for offset, size, name in _BYTES_FIELDS:
            fields[name] = data[offset : offset + size]
        for offset, name in _RSA_FIELDS:
            fields[name] = int.from_bytes(
                data[offset : offset + RSA_KEY_SIZE], "little"
            )
        return cls(**fields)

    def signed_data(self) -> bytes:
        """The 256 bytes that the signer's RSA signature covers."""
        data = self.to_bytes()
        return b"".join(data[start:end] for start, end in _SIGNED_RANGES)

    def mr_signer(self) -> bytes:
        """MRSIGNER: the SHA-256 of the stored modulus."""
        return hashlib.sha256(self.modulus.to_bytes(RSA_KEY_SIZE, "little")).digest()

    def view(self) -> dict[str, object]:
        """The reading that Gramine's SIGSTRUCT viewer gives, as JSON-ready values."""
        return {
            "mr_signer": self.mr_signer().hex(),
            "mr_enclave": self.mr_enclave.hex(),
            "isv_prod_id": self.isv_prod_id,
            "isv_svn": self.isv_svn,
            "attribute_flags": hex(self.attribute_flags),
            "attribute_xfrms": hex(self.attribute_xfrm),
            "misc_select": hex(self.misc_select),
            "attribute_flags_mask": hex(self.attribute_flags_mask),
            "attribute_xfrm_mask": hex(self.attribute_xfrm_mask),
            "misc_mask": hex(self.misc_mask),
            "date": self.date.isoformat(),
            "debug_enclave": self.is_debug,
        }


def encode_date(date: datetime.date) -> bytes:
    """The DATE field: day, month, then the year as u16, each digit in BCD."""
    return bytes(
        [
            _to_bcd(date.day),
            _to_bcd(date.month),
            _to_bcd(date.year % 100),
            _to_bcd(date.year // 100),
        ]
    )


def decode_date(field: bytes) -> datetime.date:
    """Decode a DATE field; a nibble above 9 or an impossible date is an error."""
    day, month, year_low, year_high = (_from_bcd(byte) for byte in field)
    try:
        return datetime.date(year_high * 100 + year_low, month, day)
    except ValueError:
        raise SignatureError(
            f"SIGSTRUCT DATE {field.hex()} is not a valid date"
        ) from None


def _to_bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


def _from_bcd(byte: int) -> int:
    high, low = byte >> 4, byte & 0xF
    if high > 9 or low > 9:
        raise SignatureError(f"SIGSTRUCT DATE byte {byte:#04x} is not BCD")
    return high * 10 + low


def _check_date(date: object) -> None:
    if not isinstance(date, datetime.date) or isinstance(date, datetime.datetime):
        raise SignatureError("SIGSTRUCT date must be a datetime.date")


def _check_int(name: str, value: object, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SignatureError(f"SIGSTRUCT field {name} must be an integer")
    if not 0 <= value < 1 << bits:
        raise SignatureError(f"SIGSTRUCT field {name} does not fit in {bits} bits")


def _check_frame(data: bytes) -> None:
    """Check the size, both headers and that every reserved byte is zero."""
    if len(data) != SIGSTRUCT_SIZE:
        raise SignatureError(
            f"SIGSTRUCT must be {SIGSTRUCT_SIZE} bytes, not {len(data)}"
        )
    _check_constant(data, _HEADER_AT, HEADER, "HEADER")
    _check_constant(data, _HEADER2_AT, HEADER2, "HEADER2")
    for offset, size in _RESERVED:
        if any(data[offset : offset + size]):
            raise SignatureError(
                f"SIGSTRUCT reserved bytes at {offset:#x} are not zero"
            )


def _check_constant(data: bytes, offset: int, expected: bytes, name: str) -> None:
    if data[offset : offset + len(expected)] != expected:
        raise SignatureError(f"SIGSTRUCT {name} is wrong: not an SGX SIGSTRUCT")


def attributes_from_manifest(manifest: Mapping[str, Any]) -> EnclaveAttributes:
    """The attributes and MISCSELECT for `sgx.debug`, `use_exinfo`, `cpu_features`."""
    sgx = _sgx_table(manifest)
    flags = FLAG_MODE64BIT
    if _bool_key(sgx, "debug"):
        flags |= FLAG_DEBUG
    misc_select = MISC_EXINFO if _bool_key(sgx, "use_exinfo") else 0

    xfrm, xfrm_mask = XFRM_LEGACY, XFRM_MASK
    features = sgx.get("cpu_features", {})
    if not isinstance(features, Mapping):
        raise ManifestError("sgx.cpu_features must be a table")
    for name, bits, allowed in CPU_FEATURE_BITS:
        setting = features.get(
            name, "unspecified" if "unspecified" in allowed else "disabled"
        )
        if setting not in allowed:
            raise ManifestError(
                f"sgx.cpu_features.{name} = {setting!r} is not one of "
                f"{', '.join(sorted(allowed))}"
            )
        if setting == "required":
            xfrm, xfrm_mask = xfrm | bits, xfrm_mask | bits
        elif setting == "disabled":
            xfrm, xfrm_mask = xfrm & ~bits, xfrm_mask | bits
    return EnclaveAttributes(flags, xfrm, FLAGS_MASK, xfrm_mask, misc_select, MISC_MASK)


def unsigned_sigstruct(
    manifest: Mapping[str, Any], mr_enclave: bytes, date: datetime.date, modulus: int
) -> Sigstruct:
    """A SIGSTRUCT for this manifest and MRENCLAVE, with the signature left empty."""
    sgx = _sgx_table(manifest)
    attributes = attributes_from_manifest(manifest)
    if len(mr_enclave) != 32:
        raise SignatureError("MRENCLAVE must be 32 bytes")
    return Sigstruct(
        date=date,
        mr_enclave=bytes(mr_enclave),
        attribute_flags=attributes.flags,
        attribute_xfrm=attributes.xfrm,
        attribute_flags_mask=attributes.flags_mask,
        attribute_xfrm_mask=attributes.xfrm_mask,
        misc_select=attributes.misc_select,
        misc_mask=attributes.misc_mask,
        isv_prod_id=_u16_key(sgx, "isvprodid"),
        isv_svn=_u16_key(sgx, "isvsvn"),
        modulus=modulus,
    )


def with_signature(unsigned: Sigstruct, modulus: int, signature: int) -> Sigstruct:
    """Fill in the modulus, the signature and the Q1/Q2 helper values."""
    q1, q2 = signature_quotients(signature, modulus)
    return dataclasses.replace(
        unsigned,
        modulus=modulus,
        exponent=RSA_EXPONENT,
        signature=signature,
        q1=q1,
        q2=q2,
    )


def signature_quotients(signature: int, modulus: int) -> tuple[int, int]:
    """Q1 and Q2, which let the CPU check the signature without dividing."""
    if modulus <= 0:
        raise SignatureError("SIGSTRUCT has no modulus: it is not signed")
    square = signature * signature
    return square // modulus, (square % modulus) * signature // modulus


def _sgx_table(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    sgx = manifest.get("sgx", {})
    if not isinstance(sgx, Mapping):
        raise ManifestError("manifest key sgx must be a table")
    return sgx


def _bool_key(sgx: Mapping[str, Any], key: str) -> bool:
    value = sgx.get(key, False)
    if not isinstance(value, bool):
        raise ManifestError(f"sgx.{key} must be true or false, not {value!r}")
    return value


def _u16_key(sgx: Mapping[str, Any], key: str) -> int:
    value = sgx.get(key, 0)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= 0xFFFF
    ):
        raise ManifestError(
            f"sgx.{key} must be an integer from 0 to 65535, not {value!r}"
        )
    return value
