"""How fast is measure_enclave? Compare it with a page-by-page loop and SHA-256.

Run by hand from the repository root:

    python benchmarks/mrenclave.py [--sizes 256M,1G,4G,16G,64G] [--libpal PATH]

For each enclave size (EDMM off, 4 threads, the stand-in test PAL) it prints
our time, the time of a straightforward page-by-page implementation of the
same algorithm (skipped where it would take longer than --naive-limit
seconds, estimated from the previous size), and the time hashlib.sha256 takes
over the same number of bytes fed in large buffers: the floor.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gsc.sgx.layout import (
    PAGE_SIZE,
    Area,
    EnclaveConfig,
    enclave_areas,
    format_size,
    parse_pal,
    parse_size,
)
from gsc.sgx.manifest_sgx import complete_manifest
from gsc.sgx.measure import measure_enclave

DEFAULT_SIZES = "256M,1G,4G,16G,64G"
DEFAULT_LIBPAL = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "testdata"
    / "sgx-vectors"
    / "libpal-test.so"
)
THREADS = 4
RECORD = 64
MEASURED_PAGE = RECORD + 16 * (RECORD + 256)
FLOOR_BUFFER = 1 << 20

MANIFEST = f"""
libos.entrypoint = "/app/run"
loader.entrypoint.uri = "file:/gramine/lib/libsysdb.so"
loader.entrypoint.sha256 = "{"0" * 64}"
fs.mounts = []
"""


def naive_measure(enclave_size: int, areas: list[Area]) -> bytes:
    """The algorithm of the reference, one record at a time."""
    digest = hashlib.sha256()
    digest.update(struct.pack("<8sIQ44x", b"ECREATE", 4, enclave_size))
    for area in areas:
        for offset in range(0, area.size, PAGE_SIZE):
            address = area.addr + offset
            page = area.content[offset : offset + PAGE_SIZE].ljust(PAGE_SIZE, b"\0")
            digest.update(struct.pack("<8sQQ40x", b"EADD", address, area.flags))
            if not area.measured:
                continue
            for chunk in range(0, PAGE_SIZE, 256):
                digest.update(struct.pack("<8sQ48x", b"EEXTEND", address + chunk))
                digest.update(page[chunk : chunk + 256])
    return digest.digest()


def hashed_bytes(areas: list[Area]) -> int:
    """How many bytes the measurement feeds to SHA-256."""
    total = RECORD
    for area in areas:
        pages = area.size // PAGE_SIZE
        total += pages * (MEASURED_PAGE if area.measured else RECORD)
    return total


def sha256_floor(length: int) -> float:
    """Seconds SHA-256 takes over `length` bytes given in 1 MiB buffers."""
    buffer = bytes(FLOOR_BUFFER)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(length // FLOOR_BUFFER):
        digest.update(buffer)
    digest.update(view[: length % FLOOR_BUFFER])
    digest.digest()
    return time.perf_counter() - start


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The shortest of `repeat` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated")
    parser.add_argument("--libpal", type=Path, default=DEFAULT_LIBPAL)
    parser.add_argument("--repeat", type=int, default=3, help="best of N (ours, floor)")
    parser.add_argument(
        "--naive-limit",
        type=float,
        default=60.0,
        help="skip the page-by-page loop where it would take longer (seconds)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    libpal = arguments.libpal.read_bytes()
    manifest_sgx = complete_manifest(MANIFEST, "/gramine/lib", lambda path: b"")
    sizes = [parse_size(text, "--sizes") for text in arguments.sizes.split(",")]

    header = (
        f"{'size':>6} {'pages':>10} {'hashed MB':>10} {'ours s':>8} {'naive s':>8} "
        f"{'naive/ours':>10} {'floor s':>8} {'ours/floor':>10}"
    )
    print(header)
    print("-" * len(header))
    skipped = []
    naive_rate = 0.0  # seconds per page of the last size the naive loop ran for
    for size in sizes:
        config = EnclaveConfig(size=size, max_threads=THREADS, edmm=False)
        areas = enclave_areas(config, manifest_sgx, parse_pal(libpal))
        pages = size // PAGE_SIZE
        length = hashed_bytes(areas)

        measure = functools.partial(measure_enclave, manifest_sgx, libpal, config)
        ours = best_of(arguments.repeat, measure)
        floor = min(sha256_floor(length) for _ in range(arguments.repeat))

        naive_text, ratio_text = "skipped", "-"
        if naive_rate * pages > arguments.naive_limit:
            skipped.append(format_size(size))
        else:
            start = time.perf_counter()
            expected = naive_measure(size, areas)
            naive = time.perf_counter() - start
            if expected != measure():
                raise SystemExit(f"the two implementations disagree at {size}")
            naive_rate = naive / pages
            naive_text, ratio_text = f"{naive:.2f}", f"{naive / ours:.1f}"

        print(
            f"{format_size(size):>6} {pages:>10} {length / 1e6:>10.0f} {ours:>8.3f} "
            f"{naive_text:>8} {ratio_text:>10} {floor:>8.3f} {ours / floor:>10.2f}"
        )
    if skipped:
        print(
            f"naive loop skipped for {', '.join(skipped)}: estimated over "
            f"{arguments.naive_limit:.0f} s from the previous size"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
