from __future__ import annotations

import contextlib
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsc.errors import EnclaveError
from gsc.sgx.layout import (
    Area,
    EnclaveConfig,
    enclave_areas,
    enclave_config,
    parse_pal,
)

from .vectors import VECTORS, readelf_loads

MIB = 1 << 20
GIB = 1 << 30
MANIFEST = b"x" * 100


def areas_by_name(areas: list[Area]) -> dict[str, Area]:
    return {area.name: area for area in areas}


def u64(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<Q", data, offset)[0]
    return value


def u32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<I", data, offset)[0]
    return value


# Enclave configuration from the manifest


def test_config_defaults_are_gramines() -> None:
    assert enclave_config({}) == EnclaveConfig(256 * MIB, 4, False)
    assert enclave_config({"sgx": {"edmm_enable": True}}) == EnclaveConfig(
        1024 * GIB, 4, True
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [("64K", 64 << 10), ("256M", 256 * MIB), ("4G", 4 * GIB), ("1048576", MIB)],
)
def test_enclave_sizes_use_powers_of_1024(text: str, size: int) -> None:
    assert enclave_config({"sgx": {"enclave_size": text}}).size == size


@pytest.mark.parametrize(
    ("sgx", "message"),
    [
        ({"enclave_size": "3M"}, "sgx.enclave_size = '3M' is not a power of two"),
        ({"enclave_size": "0M"}, "sgx.enclave_size = '0M' is not a power of two"),
        ({"enclave_size": "1T"}, "sgx.enclave_size must be a size string"),
        ({"enclave_size": "4 G"}, "sgx.enclave_size must be a size string"),
        ({"enclave_size": 4096}, "sgx.enclave_size must be a size string"),
        (
            {"enclave_size": "17179869184G"},
            "sgx.enclave_size = '17179869184G' is too large",
        ),
        ({"max_threads": 0}, r"sgx.max_threads = 0 is out of range \(1 to 4096\)"),
        ({"max_threads": 4097}, "sgx.max_threads = 4097 is out of range"),
        ({"max_threads": "4"}, "sgx.max_threads must be an integer"),
        ({"max_threads": True}, "sgx.max_threads must be an integer"),
        ({"edmm_enable": "yes"}, "sgx.edmm_enable must be true or false"),
    ],
)
def test_bad_settings_name_the_key(sgx: dict[str, Any], message: str) -> None:
    with pytest.raises(EnclaveError, match=message):
        enclave_config({"sgx": sgx})


@pytest.mark.parametrize(
    ("size", "threads", "message"),
    [
        (3 << 20, 4, "enclave size 0x300000 is not a power of two"),
        (0, 4, "enclave size 0x0 is not a power of two"),
        (1 << 64, 4, "not a power of two"),
        (1 << 30, 0, "0 threads is out of range"),
    ],
)
def test_an_enclave_config_cannot_hold_impossible_values(
    size: int, threads: int, message: str
) -> None:
    with pytest.raises(EnclaveError, match=message):
        EnclaveConfig(size, threads, False)


def test_a_non_table_sgx_is_refused() -> None:
    with pytest.raises(EnclaveError, match="sgx must be a table"):
        enclave_config({"sgx": []})


# The PAL's ELF file


def test_the_test_pal_has_the_segments_binutils_reports(libpal: bytes) -> None:
    pal = parse_pal(libpal)

    loads = readelf_loads(VECTORS / "libpal-test.so")
    assert [(s.vaddr, len(s.data), s.memsz) for s in pal.segments] == [
        (vaddr, filesz, memsz) for _, vaddr, filesz, memsz, _ in loads
    ]
    assert [s.data for s in pal.segments] == [
        libpal[offset : offset + filesz] for offset, _, filesz, _, _ in loads
    ]
    # README: R, R+X, R, R+W, the last one starting mid-page; entry 0x1050.
    assert [s.flags for s in pal.segments] == [0x201, 0x205, 0x201, 0x203]
    assert pal.segments[3].vaddr == 0x3EB8
    assert pal.entry == 0x1050
    assert (pal.low, pal.size) == (0, 0x8000)


def test_a_freshly_compiled_pal_parses_like_binutils_reads_it(tmp_path: Path) -> None:
    source = tmp_path / "pal.c"
    source.write_text(
        "int data = 5; char bss[50000];\n"
        "int start(void) { bss[data] = 1; return data; }\n"
    )
    library = tmp_path / "libpal.so"
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-shared",
            "-fPIC",
            "-nostdlib",
            "-Wl,-e,start",
            "-o",
            str(library),
            str(source),
        ],
        check=True,
    )
    symbols = subprocess.run(
        ["nm", str(library)], check=True, capture_output=True, text=True
    ).stdout
    found = re.search(r"^([0-9a-f]+) T start$", symbols, re.M)
    assert found is not None
    start = int(found[1], 16)

    pal = parse_pal(library.read_bytes())

    assert pal.entry == start
    assert [(s.vaddr, len(s.data), s.memsz) for s in pal.segments] == [
        (vaddr, filesz, memsz) for _, vaddr, filesz, memsz, _ in readelf_loads(library)
    ]
    executable = [s for s in pal.segments if s.vaddr <= start < s.vaddr + s.memsz]
    assert executable and executable[0].flags & 0x4


def elf32_header() -> bytes:
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    return ident + struct.pack(
        "<HHIIIIIHHHHHH", 3, 3, 1, 0, 0, 0, 0, 52, 32, 0, 40, 0, 0
    )


def with_phdr_field(libpal: bytes, index: int, offset: int, value: int) -> bytes:
    """libpal with one u64 field of program header `index` replaced."""
    phoff = u64(libpal, 0x20)
    data = bytearray(libpal)
    struct.pack_into("<Q", data, phoff + 56 * index + offset, value)
    return bytes(data)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda pal: b"not an ELF file at all", "not a readable ELF file"),
        (lambda pal: b"", "not a readable ELF file"),
        (lambda pal: elf32_header(), "not a 64-bit little-endian ELF file"),
        (lambda pal: pal[:0x12] + b"\xb7\x00" + pal[0x14:], "built for EM_AARCH64"),
        (
            lambda pal: with_phdr_field(pal, 2, 0x10, 0x1100),
            "two segments sharing a page",
        ),
        (
            lambda pal: with_phdr_field(
                with_phdr_field(pal, 3, 0x28, 0x20000), 3, 0x20, 0x10000
            ),
            "truncated",
        ),
        (
            lambda pal: with_phdr_field(pal, 0, 0x20, 0x9000),
            "more file bytes than memory",
        ),
    ],
)
def test_unusable_pal_files_are_refused(
    libpal: bytes, mutate: Any, message: str
) -> None:
    with pytest.raises(EnclaveError, match=message):
        parse_pal(mutate(libpal))


def test_a_pal_without_loadable_segments_is_refused(libpal: bytes) -> None:
    data = bytearray(libpal)
    phoff, phnum = u64(libpal, 0x20), struct.unpack_from("<H", libpal, 0x38)[0]
    for index in range(phnum):
        struct.pack_into("<I", data, phoff + 56 * index, 0x6474E551)  # PT_GNU_STACK

    with pytest.raises(EnclaveError, match="no loadable"):
        parse_pal(bytes(data))


TEST_PAL = (VECTORS / "libpal-test.so").read_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_damaged_pal_only_ever_raises_enclave_error(data: st.DataObject) -> None:
    damaged = bytearray(TEST_PAL)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, 0x400))  # headers and program headers
        damaged[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    with contextlib.suppress(EnclaveError):
        parse_pal(bytes(damaged[:cut]))


# The layout (reference section 4.3)


def test_the_worked_example_of_the_reference(libpal: bytes) -> None:
    areas = enclave_areas(
        EnclaveConfig(256 * MIB, 2, False), MANIFEST, parse_pal(libpal)
    )

    placed = [
        (area.name, area.addr, area.size, area.flags, area.measured) for area in areas
    ]
    assert placed == [
        ("manifest", 0xFFFF000, 0x1000, 0x201, True),
        ("ssa", 0xFFEF000, 0x10000, 0x203, True),
        ("tcs", 0xFFED000, 0x2000, 0x100, True),
        ("tls", 0xFFEB000, 0x2000, 0x203, True),
        ("stack 0", 0xFFAB000, 0x40000, 0x203, True),
        ("stack 1", 0xFF6B000, 0x40000, 0x203, True),
        ("signal stack 0", 0xFF5B000, 0x10000, 0x203, True),
        ("signal stack 1", 0xFF4B000, 0x10000, 0x203, True),
        # pal = 0xFF4B000 - P, P = 0x8000; segments at pal + their first page.
        ("pal segment 0", 0xFF43000, 0x1000, 0x201, True),
        ("pal segment 1", 0xFF44000, 0x1000, 0x205, True),
        ("pal segment 2", 0xFF45000, 0x1000, 0x201, True),
        ("pal segment 3", 0xFF46000, 0x5000, 0x203, True),
        ("free", 0x10000, 0xFF43000 - 0x10000, 0x207, False),
    ]


def test_tcs_and_tls_pages_point_at_their_threads_areas(libpal: bytes) -> None:
    areas = areas_by_name(
        enclave_areas(EnclaveConfig(256 * MIB, 2, False), MANIFEST, parse_pal(libpal))
    )
    tcs = areas["tcs"].content[0x1000:0x2000]
    tls = areas["tls"].content[0x1000:0x2000]

    assert u64(tcs, 0x10) == 0xFFEF000 + 0x8000  # OSSA of thread 1
    assert u32(tcs, 0x1C) == 2  # NSSA
    assert u64(tcs, 0x20) == 0xFF43000 + 0x1050  # OENTRY
    assert u64(tcs, 0x38) == 0xFFEB000 + 0x1000  # OGS_BASE
    assert (u32(tcs, 0x40), u32(tcs, 0x44)) == (0xFFF, 0xFFF)
    assert set(tcs[0x48:]) == {0} and u64(tcs, 0x08) == u32(tcs, 0x18) == 0

    expected_tls = {
        0x000: 0xFFEC000,
        0x008: 0xBADBADBADBAD,
        0x110: 256 * MIB,
        0x118: 0xFFEE000,
        0x120: 0xFF6B000 + 0x40000,
        0x130: 0xFF4B000,
        0x138: 0xFF5B000,
        0x148: 0xFFF7000,
        0x150: 0xFFF7000 + 0x4000 - 0xB8,
        0x1A0: len(MANIFEST) + 1,
        0x1A8: 0x10000,
        0x1B0: 0xFF43000,
    }
    assert {offset: u64(tls, offset) for offset in expected_tls} == expected_tls
    others = bytearray(tls)
    for offset in expected_tls:
        others[offset : offset + 8] = bytes(8)
    assert not any(others)


def test_contents_of_manifest_and_pal_areas(libpal: bytes) -> None:
    areas = areas_by_name(
        enclave_areas(EnclaveConfig(256 * MIB, 2, False), MANIFEST, parse_pal(libpal))
    )

    assert areas["manifest"].content == MANIFEST + b"\0"
    writable = areas["pal segment 3"].content
    # vaddr 0x3eb8 in a page from 0x3000: zeros first, then file bytes from 0x2eb8.
    assert writable[:0xEB8] == bytes(0xEB8)
    assert writable[0xEB8:] == libpal[0x2EB8 : 0x2EB8 + 0x154]


def test_edmm_leaves_out_the_free_area_only(libpal: bytes) -> None:
    pal = parse_pal(libpal)
    without = enclave_areas(EnclaveConfig(64 * MIB, 3, False), MANIFEST, pal)
    with_edmm = enclave_areas(EnclaveConfig(64 * MIB, 3, True), MANIFEST, pal)

    assert without[-1].name == "free"
    assert with_edmm == without[:-1]


def test_a_large_manifest_takes_several_pages(libpal: bytes) -> None:
    manifest = b"y" * 0x2FFF  # with its NUL exactly three pages
    areas = enclave_areas(
        EnclaveConfig(256 * MIB, 1, False), manifest, parse_pal(libpal)
    )

    assert (areas[0].addr, areas[0].size) == (0x10000000 - 0x3000, 0x3000)
    assert areas[1].addr == 0x10000000 - 0x3000 - 0x8000


def test_a_too_small_enclave_is_refused_with_the_fix(libpal: bytes) -> None:
    # 1M: 4 threads need 4 * 0x58000 bytes of stacks, more than the whole enclave.
    with pytest.raises(EnclaveError) as caught:
        enclave_areas(EnclaveConfig(MIB, 4, False), MANIFEST, parse_pal(libpal))

    message = str(caught.value)
    assert message.startswith("enclave too small: sgx.enclave_size is 1M but 4 threads")
    assert message.endswith("; raise sgx.enclave_size")


def test_an_enclave_that_just_fits_has_no_free_area(libpal: bytes) -> None:
    pal = parse_pal(libpal)
    # 512K with 1 thread: 8 ssa + 1 tcs + 1 tls + 64 stack + 16 signal stack
    # + 8 pal pages leave 14 pages above 0x10000 for the manifest and its NUL.
    manifest = b"m" * (14 * 0x1000 - 1)

    areas = enclave_areas(EnclaveConfig(1 << 19, 1, False), manifest, pal)

    assert areas[-1].name == "pal segment 3"
    assert areas[-4].addr == 0x10000
    with pytest.raises(EnclaveError, match="too small"):
        enclave_areas(EnclaveConfig(1 << 19, 1, False), manifest + b"m", pal)
