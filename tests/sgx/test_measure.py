from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsc.sgx.layout import Area, EnclaveConfig, enclave_config
from gsc.sgx.manifest_sgx import parse_manifest
from gsc.sgx.measure import measure_areas, measure_enclave, page_records

from .vectors import CASES, VECTORS, readelf_loads, vector, view

PAGE = 0x1000
MIB = 1 << 20


def eadd(offset: int, flags: int) -> bytes:
    return (
        b"EADD"
        + bytes(4)
        + offset.to_bytes(8, "little")
        + flags.to_bytes(8, "little")
        + bytes(40)
    )


def eextend(offset: int) -> bytes:
    return b"EEXTEND" + bytes(1) + offset.to_bytes(8, "little") + bytes(48)


def hash_page(
    digest: hashlib._Hash, offset: int, flags: int, page: bytes, measured: bool
) -> None:
    """One page's records, written out directly from the reference, section 4.4."""
    digest.update(eadd(offset, flags))
    if measured:
        for chunk in range(16):
            digest.update(eextend(offset + chunk * 256))
            digest.update(page[chunk * 256 : (chunk + 1) * 256])


def reference_mrenclave(size: int, threads: int, edmm: bool, manifest: bytes) -> bytes:
    """MRENCLAVE of the test PAL, built from a flat image of the whole enclave.

    Deliberately unlike the library: the layout is computed inline, every
    value is written into one bytearray the size of the enclave, and every
    page is then hashed one by one.
    """
    libpal = (VECTORS / "libpal-test.so").read_bytes()
    loads = readelf_loads(VECTORS / "libpal-test.so")
    entry = struct.unpack_from("<Q", libpal, 0x18)[0]
    memory = bytearray(size)
    regions: list[tuple[int, int, int, bool]] = []  # (start, end, flags, measured)

    def take(length: int, flags: int) -> int:
        start = (regions[-1][0] if regions else size) - length
        regions.append((start, start + length, flags, True))
        return start

    manifest_at = take(-(-(len(manifest) + 1) // PAGE) * PAGE, 0x201)
    memory[manifest_at : manifest_at + len(manifest)] = manifest
    ssa_at = take(threads * 0x8000, 0x203)
    tcs_at = take(threads * PAGE, 0x100)
    tls_at = take(threads * PAGE, 0x203)
    stack_at = [take(0x40000, 0x203) for _ in range(threads)]
    signal_at = [take(0x10000, 0x203) for _ in range(threads)]
    pal_size = -(-max(v + m for _, v, _, m, _ in loads) // PAGE) * PAGE
    pal_at = regions[-1][0] - pal_size
    assert pal_at >= 0x10000

    for t in range(threads):
        tcs = tcs_at + t * PAGE
        struct.pack_into("<QIQ", memory, tcs + 0x10, ssa_at + t * 0x8000, 0, 0)
        struct.pack_into("<I", memory, tcs + 0x1C, 2)
        struct.pack_into("<Q", memory, tcs + 0x20, pal_at + entry)
        struct.pack_into("<Q", memory, tcs + 0x38, tls_at + t * PAGE)
        struct.pack_into("<II", memory, tcs + 0x40, 0xFFF, 0xFFF)
        tls = tls_at + t * PAGE
        ssa = ssa_at + t * 0x8000
        for offset, value in [
            (0x000, tls),
            (0x008, 0xBADBADBADBAD),
            (0x110, size),
            (0x118, tcs),
            (0x120, stack_at[t] + 0x40000),
            (0x130, signal_at[t]),
            (0x138, signal_at[t] + 0x10000),
            (0x148, ssa),
            (0x150, ssa + 0x4000 - 0xB8),
            (0x1A0, len(manifest) + 1),
            (0x1A8, 0x10000),
            (0x1B0, pal_at),
        ]:
            struct.pack_into("<Q", memory, tls + offset, value)

    for offset, vaddr, filesz, memsz, rwx in loads:
        memory[pal_at + vaddr : pal_at + vaddr + filesz] = libpal[
            offset : offset + filesz
        ]
        page_flags = 0x200 | ("R" in rwx) | ("W" in rwx) << 1 | ("E" in rwx) << 2
        first = pal_at + vaddr // PAGE * PAGE
        regions.append(
            (first, pal_at + -(-(vaddr + memsz) // PAGE) * PAGE, page_flags, True)
        )
    if not edmm and pal_at > 0x10000:
        regions.append((0x10000, pal_at, 0x207, False))

    digest = hashlib.sha256(
        b"ECREATE\0"
        + (4).to_bytes(4, "little")
        + size.to_bytes(8, "little")
        + bytes(44)
    )
    for start, end, flags, measured in regions:
        for offset in range(start, end, PAGE):
            hash_page(
                digest, offset, flags, bytes(memory[offset : offset + PAGE]), measured
            )
    return digest.digest()


@pytest.mark.parametrize("case", CASES)
def test_vector_mrenclave(case: str, libpal: bytes) -> None:
    manifest_sgx = vector(case, ".manifest.sgx")
    config = enclave_config(parse_manifest(manifest_sgx.decode()))

    assert (
        measure_enclave(manifest_sgx, libpal, config).hex() == view(case)["mr_enclave"]
    )


@pytest.mark.parametrize(
    ("size", "threads", "edmm"),
    [(MIB, 1, False), (MIB, 1, True), (32 * MIB, 3, False), (64 * MIB, 2, False)],
)
def test_hand_built_enclaves_match_a_page_by_page_reference(
    size: int, threads: int, edmm: bool, libpal: bytes
) -> None:
    manifest = 'libos.entrypoint = "/app"\n# ünïcødé\n'.encode() * 3

    expected = reference_mrenclave(size, threads, edmm, manifest)

    assert (
        measure_enclave(manifest, libpal, EnclaveConfig(size, threads, edmm))
        == expected
    )


def test_the_reference_agrees_with_gramine_on_a_vector() -> None:
    # Keeps the reference itself honest: v2 is 64M, 1 thread, no EDMM.
    manifest_sgx = vector("v2-small-debug", ".manifest.sgx")

    result = reference_mrenclave(64 * MIB, 1, False, manifest_sgx)

    assert result.hex() == view("v2-small-debug")["mr_enclave"]


def test_page_records_follow_the_record_formats() -> None:
    page = bytes(range(256)) * 16

    records = page_records(0x12345000, 0x203, page, True)

    assert len(records) == 64 + 16 * (64 + 256)
    assert records[:64] == b"EADD\0\0\0\0" + bytes.fromhex(
        "0050341200000000"
    ) + bytes.fromhex("0302000000000000") + bytes(40)
    assert records[64:128] == b"EEXTEND\0" + bytes.fromhex("0050341200000000") + bytes(
        48
    )
    assert records[128:384] == page[:256]
    last = 64 + 15 * 320
    assert records[last : last + 16] == b"EEXTEND\0" + bytes.fromhex("005f341200000000")
    assert (
        page_records(0x12345000, 0x207, page, False)
        == records[:16] + b"\x07" + records[17:64]
    )


def reference_for_areas(enclave_size: int, areas: list[Area]) -> bytes:
    digest = hashlib.sha256(
        b"ECREATE\0"
        + (4).to_bytes(4, "little")
        + enclave_size.to_bytes(8, "little")
        + bytes(44)
    )
    for area in areas:
        for offset in range(0, area.size, PAGE):
            page = area.content[offset : offset + PAGE].ljust(PAGE, b"\0")
            hash_page(digest, area.addr + offset, area.flags, page, area.measured)
    return digest.digest()


@st.composite
def areas_near_block_edges(draw: st.DrawFn) -> list[Area]:
    """Areas that start just below a 1 MiB or 16 MiB boundary, anywhere in 2^52."""
    areas = []
    for index in range(draw(st.integers(1, 4))):
        edge = draw(st.integers(1, 1 << 28)) << draw(st.sampled_from([20, 24]))
        addr = edge - draw(st.integers(0, 40)) * PAGE
        pages = draw(st.integers(1, 300))
        content_size = draw(st.integers(0, min(pages, 3) * PAGE))
        areas.append(
            Area(
                name=f"area {index}",
                addr=addr,
                size=pages * PAGE,
                flags=draw(st.sampled_from([0x100, 0x201, 0x203, 0x205, 0x207])),
                measured=draw(st.booleans()),
                content=draw(st.binary(min_size=content_size, max_size=content_size)),
            )
        )
    return areas


@settings(max_examples=60, deadline=None)
@given(areas_near_block_edges())
def test_template_hashing_matches_page_by_page_hashing(areas: list[Area]) -> None:
    assert measure_areas(1 << 52, areas) == reference_for_areas(1 << 52, areas)


def test_many_free_pages_cross_many_blocks() -> None:
    # 20,000 unmeasured pages: the free-area path across five 16 MiB blocks.
    areas = [Area("free", 0x10000, 20000 * PAGE, 0x207, False)]

    assert measure_areas(1 << 30, areas) == reference_for_areas(1 << 30, areas)
