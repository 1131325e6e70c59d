from __future__ import annotations

import dataclasses
import datetime
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsc.errors import ManifestError, SignatureError
from gsc.sgx.sigstruct import (
    Sigstruct,
    attributes_from_manifest,
    decode_date,
    encode_date,
    unsigned_sigstruct,
)

from .vectors import CASES, vector, view

VALID_SIG = vector("v5-attributes", ".sig")


@pytest.mark.parametrize("case", CASES)
def test_vector_sigstructs_read_as_gramines_viewer_reads_them(case: str) -> None:
    sigstruct = Sigstruct.from_bytes(vector(case, ".sig"))

    assert sigstruct.view() == view(case)
    assert sigstruct.is_debug is view(case)["debug_enclave"]


@pytest.mark.parametrize("case", CASES)
def test_vector_sigstructs_round_trip(case: str) -> None:
    data = vector(case, ".sig")

    assert Sigstruct.from_bytes(data).to_bytes() == data


def test_fields_sit_at_the_reference_offsets() -> None:
    sigstruct = Sigstruct.from_bytes(VALID_SIG)

    assert sigstruct.mr_signer() == hashlib.sha256(VALID_SIG[0x80:0x200]).digest()
    assert sigstruct.mr_enclave == VALID_SIG[0x3C0:0x3E0]
    assert sigstruct.signature == int.from_bytes(VALID_SIG[0x204:0x384], "little")
    assert sigstruct.signed_data() == VALID_SIG[:0x80] + VALID_SIG[0x384:0x404]
    assert len(sigstruct.signed_data()) == 256
    assert (sigstruct.isv_prod_id, sigstruct.isv_svn) == (65535, 1)
    assert sigstruct.exponent == 3


@pytest.mark.parametrize(
    ("date", "field"),
    [
        (datetime.date(2025, 7, 9), "09072520"),
        (datetime.date(2026, 1, 2), "02012620"),
        (datetime.date(1999, 12, 31), "31129919"),
        (datetime.date(2100, 10, 1), "01100021"),
        (datetime.date(1, 1, 1), "01010100"),
    ],
)
def test_dates_are_bcd(date: datetime.date, field: str) -> None:
    assert encode_date(date).hex() == field
    assert decode_date(bytes.fromhex(field)) == date


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("0a012620", "byte 0x0a is not BCD"),
        ("02012a20", "byte 0x2a is not BCD"),
        ("0201269f", "byte 0x9f is not BCD"),
        ("02132620", "02132620 is not a valid date"),
        ("30022420", "30022420 is not a valid date"),
        ("00012620", "is not a valid date"),
        ("01010000", "is not a valid date"),
    ],
)
def test_bad_dates_are_signature_errors(field: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        decode_date(bytes.fromhex(field))


def patched(offset: int, value: bytes) -> bytes:
    return VALID_SIG[:offset] + value + VALID_SIG[offset + len(value) :]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (VALID_SIG[:-1], "must be 1808 bytes, not 1807"),
        (VALID_SIG + b"\0", "must be 1808 bytes, not 1809"),
        (b"", "must be 1808 bytes, not 0"),
        (patched(0, b"\x07"), "HEADER is wrong"),
        (patched(0x18, b"\x02"), "HEADER2 is wrong"),
        (patched(0x14, b"\x32"), "not a valid date"),
        (patched(0x40, b"\x01"), "reserved bytes at 0x2c are not zero"),
        (patched(0x3E5, b"\x01"), "reserved bytes at 0x3e0 are not zero"),
    ],
)
def test_malformed_sigstructs_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        Sigstruct.from_bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=2000), st.binary(min_size=1808, max_size=1808)))
def test_arbitrary_bytes_only_ever_raise_signature_error(data: bytes) -> None:
    try:
        parsed = Sigstruct.from_bytes(data)
    except SignatureError:
        return
    assert parsed.to_bytes() == data


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1807), st.integers(0, 255)), max_size=6))
def test_mutated_sigstructs_parse_exactly_or_raise_signature_error(
    changes: list[tuple[int, int]],
) -> None:
    data = bytearray(VALID_SIG)
    for offset, value in changes:
        data[offset] = value

    try:
        parsed = Sigstruct.from_bytes(bytes(data))
    except SignatureError:
        return
    assert parsed.to_bytes() == bytes(data)


def test_non_bytes_are_refused() -> None:
    with pytest.raises(SignatureError, match="must be bytes, not str"):
        Sigstruct.from_bytes("x" * 1808)  # type: ignore[arg-type]


def test_bytes_like_input_is_accepted() -> None:
    assert Sigstruct.from_bytes(memoryview(VALID_SIG)).to_bytes() == VALID_SIG


def test_fields_out_of_range_are_refused() -> None:
    sigstruct = Sigstruct.from_bytes(VALID_SIG)

    with pytest.raises(SignatureError, match="isv_svn does not fit in 16 bits"):
        dataclasses.replace(sigstruct, isv_svn=0x10000)
    with pytest.raises(SignatureError, match="mr_enclave must be 32 bytes"):
        dataclasses.replace(sigstruct, mr_enclave=b"short")
    with pytest.raises(SignatureError, match="q1 does not fit in 3072 bits"):
        dataclasses.replace(sigstruct, q1=1 << 3072)


# Attributes from the manifest (reference section 3)


def attributes(**sgx: Any) -> tuple[int, int, int, int, int, int]:
    a = attributes_from_manifest({"sgx": sgx})
    return (a.flags, a.xfrm, a.flags_mask, a.xfrm_mask, a.misc_select, a.misc_mask)


def test_default_attributes() -> None:
    assert attributes() == (0x4, 0x3, 2**64 - 1, 0xFFFFFFFFFFF9FF1B, 0, 0xFFFFFFFF)


def test_debug_and_exinfo() -> None:
    assert attributes(debug=True, use_exinfo=True)[::4] == (0x6, 1)


def test_cpu_features_apply_in_gramines_order_not_the_manifests() -> None:
    # v5's settings, listed backwards: avx512 "disabled" still clears the avx
    # bit that avx "required" set, because avx is applied first.
    features = {
        "pkru": "disabled",
        "mpx": "required",
        "amx": "required",
        "avx512": "disabled",
        "avx": "required",
    }
    expected = view("v5-attributes")

    _, xfrm, _, xfrm_mask, _, _ = attributes(cpu_features=features)

    assert hex(xfrm) == expected["attribute_xfrms"] == "0x6001b"
    assert hex(xfrm_mask) == expected["attribute_xfrm_mask"]


def test_each_cpu_feature_sets_its_own_bits() -> None:
    base_value, base_mask = 0x3, 0xFFFFFFFFFFF9FF1B
    for name, bits in [("avx", 0x4), ("avx512", 0xE4), ("amx", 0x60000), ("mpx", 0x18)]:
        _, xfrm, _, mask, _, _ = attributes(cpu_features={name: "required"})
        assert (xfrm, mask) == (base_value | bits, base_mask | bits), name
    _, xfrm, _, mask, _, _ = attributes(cpu_features={"avx": "disabled"})
    assert (xfrm, mask) == (0x3, base_mask | 0x4)


@pytest.mark.parametrize(
    ("sgx", "message"),
    [
        ({"debug": "yes"}, "sgx.debug must be true or false"),
        ({"use_exinfo": 1}, "sgx.use_exinfo must be true or false"),
        ({"cpu_features": {"avx": "on"}}, "sgx.cpu_features.avx = 'on' is not one of"),
        ({"cpu_features": {"mpx": "unspecified"}}, "sgx.cpu_features.mpx"),
        ({"cpu_features": ["avx"]}, "sgx.cpu_features must be a table"),
    ],
)
def test_bad_attribute_settings_are_manifest_errors(
    sgx: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        attributes_from_manifest({"sgx": sgx})


@pytest.mark.parametrize("value", [-1, 65536, "7", True])
def test_isv_ids_must_be_u16(value: object) -> None:
    with pytest.raises(
        ManifestError, match="isvsvn must be an integer from 0 to 65535"
    ):
        unsigned_sigstruct(
            {"sgx": {"isvsvn": value}}, bytes(32), datetime.date.today(), 0
        )


def test_unsigned_sigstruct_carries_the_manifest_values() -> None:
    manifest = {"sgx": {"isvprodid": 7, "isvsvn": 3, "debug": True}}

    sigstruct = unsigned_sigstruct(
        manifest, bytes(range(32)), datetime.date(2026, 1, 2), 5
    )

    data = sigstruct.to_bytes()
    assert data[0x3C0:0x3E0] == bytes(range(32))
    assert data[0x400:0x404] == bytes([7, 0, 3, 0])
    assert data[0x3A0] == 0x6
    assert data[0x14:0x18] == bytes.fromhex("02012620")
    assert data[0x80] == 5 and sigstruct.signature == sigstruct.q1 == sigstruct.q2 == 0
