"""MRENCLAVE: the SHA-256 of the records that building the enclave produces.

Every page added to the enclave contributes a 64-byte EADD record and, when
the page is measured, sixteen EEXTEND records each followed by 256 bytes of
the page. A large enclave without EDMM has millions of pages, nearly all of
them zero-filled, whose records differ only in their offset field. Those are
hashed from prebuilt templates that cover a block of pages: for a new block
only the offset bytes that depend on the block's base are rewritten, and
hashlib is fed the template in one large buffer.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gsc.sgx.layout import (
    PAGE_SIZE,
    SSA_FRAME_PAGES,
    Area,
    EnclaveConfig,
    enclave_areas,
    parse_pal,
)

if TYPE_CHECKING:
    from hashlib import _Hash

RECORD_SIZE = 64
CHUNK_SIZE = 0x100
CHUNKS_PER_PAGE = PAGE_SIZE // CHUNK_SIZE

_ECREATE = struct.Struct("<8sIQ44x")
_EADD = struct.Struct("<8sQQ40x")
_EEXTEND = struct.Struct("<8sQ48x")

# Where each u64 offset field sits in one page's records, and what the field
# holds relative to the page's own offset.
_EADD_FIELD = (8, 0)
_EEXTEND_FIELDS = tuple(
    (RECORD_SIZE + chunk * (RECORD_SIZE + CHUNK_SIZE) + 8, chunk * CHUNK_SIZE)
    for chunk in range(CHUNKS_PER_PAGE)
)

# Pages per template: about 256 KiB of records for unmeasured pages and
# 1.3 MiB for measured ones, large enough that hashlib runs at full speed.
_UNMEASURED_BLOCK_PAGES = 4096
_MEASURED_BLOCK_PAGES = 256


def measure_enclave(manifest_sgx: bytes, libpal: bytes, config: EnclaveConfig) -> bytes:
    """Compute MRENCLAVE for these `.manifest.sgx` bytes and libpal.so."""
    areas = enclave_areas(config, manifest_sgx, parse_pal(libpal))
    return measure_areas(config.size, areas)


def measure_areas(enclave_size: int, areas: Sequence[Area]) -> bytes:
    """Hash the ECREATE record and then every page record of `areas`, in order."""
    digest = hashlib.sha256(_ECREATE.pack(b"ECREATE", SSA_FRAME_PAGES, enclave_size))
    templates: dict[tuple[int, bool], _ZeroPageTemplate] = {}
    for area in areas:
        _hash_area(digest, area, templates)
    return digest.digest()


def page_records(addr: int, flags: int, page: bytes, measured: bool) -> bytes:
    """The records of one page: EADD, then EEXTEND and data chunks if measured."""
    records = [_EADD.pack(b"EADD", addr, flags)]
    if measured:
        for start in range(0, PAGE_SIZE, CHUNK_SIZE):
            records.append(_EEXTEND.pack(b"EEXTEND", addr + start))
            records.append(page[start : start + CHUNK_SIZE])
    return b"".join(records)


def _hash_area(
    digest: _Hash, area: Area, templates: dict[tuple[int, bool], _ZeroPageTemplate]
) -> None:
    content_pages = -(-len(area.content) // PAGE_SIZE)
    for index in range(content_pages):
        start = index * PAGE_SIZE
        page = area.content[start : start + PAGE_SIZE].ljust(PAGE_SIZE, b"\0")
        digest.update(page_records(area.addr + start, area.flags, page, area.measured))

    zero_start = area.addr + content_pages * PAGE_SIZE
    if zero_start < area.end:
        key = (area.flags, area.measured)
        if key not in templates:
            templates[key] = _ZeroPageTemplate(area.flags, area.measured)
        templates[key].hash_pages(digest, zero_start, area.end)


class _ZeroPageTemplate:
    """The records of a block of consecutive zero-filled pages, ready to hash.

    A block starts at a multiple of its span, so each record's offset is the
    block's base ORed with an offset below the span. The template keeps the
    lower part for every page and rewrites, per block, the bytes of the
    offset fields in which the base differs from the previous block's.
    """

    def __init__(self, flags: int, measured: bool) -> None:
        pages = _MEASURED_BLOCK_PAGES if measured else _UNMEASURED_BLOCK_PAGES
        first = page_records(0, flags, bytes(PAGE_SIZE), measured)
        self._span = pages * PAGE_SIZE
        self._stride = len(first)
        self._buffer = bytearray(first * pages)
        self._view = memoryview(self._buffer)

        # Byte 0 of every offset is 0: pages are 4 KiB, chunks 256 bytes.
        fields = [_EADD_FIELD, *(_EEXTEND_FIELDS if measured else ())]
        self._columns = [
            (position + byte, byte, _column(pages, relative, byte))
            for position, relative in fields
            for byte in range(1, 8)
        ]
        self._base = 0
        for position, _, column in self._columns:
            self._buffer[position :: self._stride] = column

    def hash_pages(self, digest: _Hash, start: int, end: int) -> None:
        """Feed `digest` the records of the pages in [start, end)."""
        while start < end:
            base = start - start % self._span
            stop = min(end, base + self._span)
            self._move_to(base)
            first = (start - base) // PAGE_SIZE * self._stride
            last = (stop - base) // PAGE_SIZE * self._stride
            digest.update(self._view[first:last])
            start = stop

    def _move_to(self, base: int) -> None:
        old, new = self._base.to_bytes(8, "little"), base.to_bytes(8, "little")
        for position, byte, column in self._columns:
            if old[byte] != new[byte]:
                column = column.translate(_or_table(new[byte]))
                self._buffer[position :: self._stride] = column
        self._base = base


@functools.cache
def _or_table(value: int) -> bytes:
    """A bytes.translate table that ORs `value` into every byte."""
    return bytes(byte | value for byte in range(256))


@functools.cache
def _column(pages: int, relative: int, byte: int) -> bytes:
    """Byte `byte` of an offset field below the block base, for each page."""
    shift = 8 * byte
    if (pages * PAGE_SIZE + relative) >> shift == 0:
        return bytes(pages)
    return bytes(
        ((page * PAGE_SIZE + relative) >> shift) & 0xFF for page in range(pages)
    )
