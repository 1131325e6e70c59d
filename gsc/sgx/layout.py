"""Where Gramine v1.9 places everything inside an SGX enclave, and what it holds.

The enclave is based at address 0, so an address is also an offset. Areas are
placed top-down from the enclave size; the PAL's segments sit below the
per-thread areas, and without EDMM the space between the lowest usable
address and the PAL is added as one unmeasured free area.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from gsc.errors import EnclaveError

PAGE_SIZE = 0x1000
SSA_FRAME_SIZE = 0x4000
SSA_FRAMES_PER_THREAD = 2
SSA_FRAME_PAGES = SSA_FRAME_SIZE // PAGE_SIZE
THREAD_SSA_SIZE = SSA_FRAME_SIZE * SSA_FRAMES_PER_THREAD
STACK_SIZE = 0x40000
SIGNAL_STACK_SIZE = 0x10000
LOWEST_ADDRESS = 0x10000
GPR_SIZE = 0xB8
STACK_CANARY = 0xBADBADBADBAD
MAX_THREADS = 4096
MAX_SIZE = 1 << 63

DEFAULT_MAX_THREADS = 4
DEFAULT_SIZE = 256 << 20
DEFAULT_SIZE_EDMM = 1024 << 30

# SECINFO flags of an added page.
PAGE_R = 0x1
PAGE_W = 0x2
PAGE_X = 0x4
PAGE_TCS = 0x100
PAGE_REG = 0x200
MANIFEST_FLAGS = PAGE_REG | PAGE_R
DATA_FLAGS = PAGE_REG | PAGE_R | PAGE_W
FREE_FLAGS = PAGE_REG | PAGE_R | PAGE_W | PAGE_X

# Offsets inside a TCS page and inside a thread's TLS page (Gramine's
# thread control block), as Gramine v1.9 lays them out.
_TCS_OSSA = 0x10
_TCS_NSSA = 0x1C
_TCS_OENTRY = 0x20
_TCS_OGS_BASE = 0x38
_TCS_OFS_LIMIT = 0x40
_TCS_OGS_LIMIT = 0x44
_SEGMENT_LIMIT = 0xFFF
_TLS_SELF = 0x000
_TLS_CANARY = 0x008
_TLS_ENCLAVE_SIZE = 0x110
_TLS_TCS_OFFSET = 0x118
_TLS_INITIAL_STACK = 0x120
_TLS_SIG_STACK_LOW = 0x130
_TLS_SIG_STACK_HIGH = 0x138
_TLS_SSA = 0x148
_TLS_GPR = 0x150
_TLS_MANIFEST_SIZE = 0x1A0
_TLS_HEAP_MIN = 0x1A8
_TLS_HEAP_MAX = 0x1B0

_SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_SIZE_PATTERN = re.compile(r"([0-9]+)([KMG]?)")

# ELF program header values.
_PT_LOAD = "PT_LOAD"
_PF_X = 0x1
_PF_W = 0x2
_PF_R = 0x4


@dataclass(frozen=True)
class EnclaveConfig:
    """The manifest settings that decide the enclave layout."""

    size: int
    max_threads: int
    edmm: bool

    def __post_init__(self) -> None:
        if not 0 < self.size <= MAX_SIZE or self.size & (self.size - 1):
            raise EnclaveError(f"enclave size {self.size:#x} is not a power of two")
        if not 1 <= self.max_threads <= MAX_THREADS:
            raise EnclaveError(f"{self.max_threads} threads is out of range")


@dataclass(frozen=True)
class PalSegment:
    """One PT_LOAD segment of the PAL: where it goes and its file bytes."""

    vaddr: int
    memsz: int
    flags: int
    data: bytes

    @property
    def first_page(self) -> int:
        return round_down(self.vaddr)

    @property
    def end_page(self) -> int:
        return round_up(self.vaddr + self.memsz)


@dataclass(frozen=True)
class PalImage:
    """The parts of the PAL's ELF file (libpal.so) that enter the measurement."""

    entry: int
    segments: tuple[PalSegment, ...]

    @property
    def low(self) -> int:
        return min(segment.first_page for segment in self.segments)

    @property
    def high(self) -> int:
        return max(segment.end_page for segment in self.segments)

    @property
    def size(self) -> int:
        return self.high - self.low


@dataclass(frozen=True)
class Area:
    """A page-aligned range of the enclave, added with one set of page flags.

    `content` is what the area holds from its start; the rest is zero.
    """

    name: str
    addr: int
    size: int
    flags: int
    measured: bool
    content: bytes = b""

    @property
    def end(self) -> int:
        return self.addr + self.size


def round_down(value: int) -> int:
    """Round down to a page boundary."""
    return value - value % PAGE_SIZE


def round_up(value: int) -> int:
    """Round up to a page boundary."""
    return round_down(value + PAGE_SIZE - 1)


def format_size(size: int) -> str:
    """Format a byte count with the largest suffix that divides it exactly."""
    for suffix in ("G", "M", "K"):
        unit = _SIZE_SUFFIXES[suffix]
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return f"{size} bytes"


def parse_size(value: object, key: str) -> int:
    """Parse a Gramine size string: decimal with an optional K, M or G suffix."""
    match = _SIZE_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise EnclaveError(
            f'{key} must be a size string such as "256M" or "4G", not {value!r}'
        )
    return int(match[1]) * _SIZE_SUFFIXES[match[2]]


def enclave_config(manifest: Mapping[str, Any]) -> EnclaveConfig:
    """Read the enclave size, thread count and EDMM switch, with Gramine's defaults."""
    sgx = manifest.get("sgx", {})
    if not isinstance(sgx, Mapping):
        raise EnclaveError("manifest key sgx must be a table")

    edmm = sgx.get("edmm_enable", False)
    if not isinstance(edmm, bool):
        raise EnclaveError(f"sgx.edmm_enable must be true or false, not {edmm!r}")
    return EnclaveConfig(
        size=_enclave_size(sgx.get("enclave_size"), edmm),
        max_threads=_max_threads(sgx.get("max_threads", DEFAULT_MAX_THREADS)),
        edmm=edmm,
    )


def _enclave_size(value: object, edmm: bool) -> int:
    if value is None:
        return DEFAULT_SIZE_EDMM if edmm else DEFAULT_SIZE

    size = parse_size(value, "sgx.enclave_size")
    if size <= 0 or size & (size - 1):
        raise EnclaveError(
            f"sgx.enclave_size = {value!r} is not a power of two; "
            'use a size such as "256M", "1G" or "4G"'
        )
    if size > MAX_SIZE:
        raise EnclaveError(f"sgx.enclave_size = {value!r} is too large")
    return size


def _max_threads(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnclaveError(f"sgx.max_threads must be an integer, not {value!r}")
    if not 1 <= value <= MAX_THREADS:
        raise EnclaveError(
            f"sgx.max_threads = {value} is out of range (1 to {MAX_THREADS})"
        )
    return value


def parse_pal(libpal: bytes) -> PalImage:
    """Read the entry point and PT_LOAD segments of libpal.so."""
    try:
        elf = ELFFile(io.BytesIO(libpal))
        if elf.elfclass != 64 or not elf.little_endian:
            raise EnclaveError("libpal.so is not a 64-bit little-endian ELF file")
        if elf["e_machine"] != "EM_X86_64":
            raise EnclaveError(f"libpal.so is built for {elf['e_machine']}, not x86-64")
        entry = elf["e_entry"]
        headers = [
            dict(s.header) for s in elf.iter_segments() if s["p_type"] == _PT_LOAD
        ]
    except (
        ELFError,
        ValueError,
        IndexError,
        KeyError,
        OverflowError,
        struct.error,
    ) as error:
        raise EnclaveError(f"libpal.so is not a readable ELF file: {error}") from None

    segments = tuple(_pal_segment(libpal, header) for header in headers)
    if not segments:
        raise EnclaveError("libpal.so has no loadable (PT_LOAD) segment")
    _check_disjoint(segments)
    return PalImage(entry=entry, segments=segments)


def _pal_segment(libpal: bytes, header: Mapping[str, int]) -> PalSegment:
    offset, filesz, memsz = header["p_offset"], header["p_filesz"], header["p_memsz"]
    if filesz > memsz:
        raise EnclaveError("libpal.so has a segment with more file bytes than memory")
    if offset + filesz > len(libpal):
        raise EnclaveError("libpal.so is truncated: a segment runs past the end")

    p_flags = header["p_flags"]
    flags = PAGE_REG
    flags |= PAGE_R if p_flags & _PF_R else 0
    flags |= PAGE_W if p_flags & _PF_W else 0
    flags |= PAGE_X if p_flags & _PF_X else 0
    return PalSegment(
        vaddr=header["p_vaddr"],
        memsz=memsz,
        flags=flags,
        data=libpal[offset : offset + filesz],
    )


def _check_disjoint(segments: tuple[PalSegment, ...]) -> None:
    ordered = sorted(segments, key=lambda segment: segment.first_page)
    for lower, upper in itertools.pairwise(ordered):
        if upper.first_page < lower.end_page:
            raise EnclaveError(
                f"libpal.so has two segments sharing a page "
                f"(at {upper.first_page:#x}); Gramine cannot load it"
            )


def enclave_areas(
    config: EnclaveConfig, manifest_sgx: bytes, pal: PalImage
) -> list[Area]:
    """Lay out the enclave: every area, with its contents, in the order added."""
    frame = _place(config, len(manifest_sgx), pal.size)
    pal_bias = frame.pal_addr - pal.low
    threads = range(config.max_threads)
    tcs_pages = b"".join(_tcs_page(frame, pal_bias + pal.entry, t) for t in threads)
    tls_pages = b"".join(_tls_page(frame, config.size, t) for t in threads)

    areas = [
        _with_content(frame.manifest, manifest_sgx + b"\0"),
        frame.ssa,
        _with_content(frame.tcs, tcs_pages),
        _with_content(frame.tls, tls_pages),
        *frame.stacks,
        *frame.signal_stacks,
        *(_segment_area(pal_bias, index, s) for index, s in enumerate(pal.segments)),
    ]
    # With EDMM the loader adds free pages at run time, so they are not added.
    if not config.edmm and frame.pal_addr > LOWEST_ADDRESS:
        free_size = frame.pal_addr - LOWEST_ADDRESS
        areas.append(Area("free", LOWEST_ADDRESS, free_size, FREE_FLAGS, False))
    return areas


@dataclass(frozen=True)
class _Frame:
    """Where the areas other than the PAL's segments go."""

    manifest: Area
    ssa: Area
    tcs: Area
    tls: Area
    stacks: tuple[Area, ...]
    signal_stacks: tuple[Area, ...]
    pal_addr: int
    manifest_size: int


def _place(config: EnclaveConfig, manifest_size: int, pal_size: int) -> _Frame:
    threads = range(config.max_threads)
    top = _TopDown(config.size)
    manifest = top.place("manifest", round_up(manifest_size + 1), MANIFEST_FLAGS)
    ssa = top.place("ssa", config.max_threads * THREAD_SSA_SIZE, DATA_FLAGS)
    tcs = top.place("tcs", config.max_threads * PAGE_SIZE, PAGE_TCS)
    tls = top.place("tls", config.max_threads * PAGE_SIZE, DATA_FLAGS)
    stacks = tuple(top.place(f"stack {t}", STACK_SIZE, DATA_FLAGS) for t in threads)
    signal_stacks = tuple(
        top.place(f"signal stack {t}", SIGNAL_STACK_SIZE, DATA_FLAGS) for t in threads
    )
    pal_addr = top.place("pal", pal_size, PAGE_REG).addr

    if pal_addr < LOWEST_ADDRESS:
        needed = config.size - pal_addr + LOWEST_ADDRESS
        raise EnclaveError(
            f"enclave too small: sgx.enclave_size is {format_size(config.size)} but "
            f"{config.max_threads} threads, the manifest and libpal.so need "
            f"{format_size(needed)}; raise sgx.enclave_size"
        )
    return _Frame(
        manifest, ssa, tcs, tls, stacks, signal_stacks, pal_addr, manifest_size
    )


class _TopDown:
    """Hands out measured areas downwards from the top of the enclave."""

    def __init__(self, top: int) -> None:
        self._next = top

    def place(self, name: str, size: int, flags: int) -> Area:
        self._next -= size
        return Area(name, self._next, size, flags, True)


def _with_content(area: Area, content: bytes) -> Area:
    return dataclasses.replace(area, content=content)


def _tcs_page(frame: _Frame, entry: int, thread: int) -> bytes:
    page = bytearray(PAGE_SIZE)
    struct.pack_into("<Q", page, _TCS_OSSA, frame.ssa.addr + thread * THREAD_SSA_SIZE)
    struct.pack_into("<I", page, _TCS_NSSA, SSA_FRAMES_PER_THREAD)
    struct.pack_into("<Q", page, _TCS_OENTRY, entry)
    struct.pack_into("<Q", page, _TCS_OGS_BASE, frame.tls.addr + thread * PAGE_SIZE)
    struct.pack_into("<I", page, _TCS_OFS_LIMIT, _SEGMENT_LIMIT)
    struct.pack_into("<I", page, _TCS_OGS_LIMIT, _SEGMENT_LIMIT)
    return bytes(page)


def _tls_page(frame: _Frame, enclave_size: int, thread: int) -> bytes:
    ssa = frame.ssa.addr + thread * THREAD_SSA_SIZE
    signal_stack = frame.signal_stacks[thread].addr
    fields = {
        _TLS_SELF: frame.tls.addr + thread * PAGE_SIZE,
        _TLS_CANARY: STACK_CANARY,
        _TLS_ENCLAVE_SIZE: enclave_size,
        _TLS_TCS_OFFSET: frame.tcs.addr + thread * PAGE_SIZE,
        _TLS_INITIAL_STACK: frame.stacks[thread].end,
        _TLS_SIG_STACK_LOW: signal_stack,
        _TLS_SIG_STACK_HIGH: signal_stack + SIGNAL_STACK_SIZE,
        _TLS_SSA: ssa,
        _TLS_GPR: ssa + SSA_FRAME_SIZE - GPR_SIZE,
        _TLS_MANIFEST_SIZE: frame.manifest_size + 1,
        _TLS_HEAP_MIN: LOWEST_ADDRESS,
        _TLS_HEAP_MAX: frame.pal_addr,
    }
    page = bytearray(PAGE_SIZE)
    for offset, value in fields.items():
        struct.pack_into("<Q", page, offset, value)
    return bytes(page)


def _segment_area(pal_bias: int, index: int, segment: PalSegment) -> Area:
    lead = bytes(segment.vaddr - segment.first_page)
    return Area(
        name=f"pal segment {index}",
        addr=pal_bias + segment.first_page,
        size=segment.end_page - segment.first_page,
        flags=segment.flags,
        measured=True,
        content=lead + segment.data,
    )
