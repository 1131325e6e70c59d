"""Tests for gsc.hashing: files of a tar stream hashed on several threads."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from gsc.errors import ImageError
from gsc.hashing import ChunkStream, Digest, HashPool, read_tree
from gsc.image import read_filesystem

from .fstree import ELF, Tree, chunks
from .test_image import sample


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def everything(path: str) -> bool:
    return True


def random_tree(seed: int, files: int = 60, largest: int = 300_000) -> Tree:
    rng = random.Random(seed)
    tree = Tree().dir("/d")
    for n in range(files):
        size = rng.choice([0, 1, 2047, 2048, 4096, 4097, rng.randint(0, largest)])
        mode = rng.choice([0o644, 0o755, 0o600])
        tree.file(f"/d/f{n}", rng.randbytes(size), mode)
        if rng.random() < 0.1:
            tree.hardlink(f"/d/link{n}", f"/d/f{n}", mode)
        if rng.random() < 0.1:
            tree.symlink(f"/d/sym{n}", f"f{n}")
    return tree.file("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n")


@pytest.mark.parametrize("workers", [0, 1, 2, 5])
def test_pool_digests_equal_hashlib_for_whole_files_and_chunked_ones(
    workers: int,
) -> None:
    rng = random.Random(workers)
    files = [rng.randbytes(rng.randint(0, 50_000)) for _ in range(100)]

    with HashPool(workers, budget=32_768, chunk=4096, inline_limit=1024) as pool:
        digests = []
        for data in files:
            if len(data) <= pool.chunk:
                digests.append(pool.whole(data))
                continue
            strand = pool.strand()
            for start in range(0, len(data), pool.chunk):
                strand.feed(data[start : start + pool.chunk])
            digests.append(strand.finish())
        pool.wait()

    assert [d.hexdigest() for d in digests] == [sha(data) for data in files]
    assert pool.files_hashed == len(files)
    assert pool.bytes_hashed == sum(len(data) for data in files)


def test_bytes_in_flight_stay_within_the_budget_for_a_file_larger_than_it() -> None:
    big = random.Random(1).randbytes(3_000_000)
    tree = Tree().file("/big", big).file("/small", b"s" * 10_000)

    with HashPool(3, budget=100_000, chunk=8192, inline_limit=0) as pool:
        fs = read_tree(chunks(tree.tar(), 65_536), everything, pool=pool)

    entry = fs.get("/big")
    assert entry is not None and entry.sha256 == sha(big)
    assert 0 < pool.peak_in_flight <= 100_000


@pytest.mark.parametrize("chunk_size", [1, 7, 512, 4097, 1 << 20])
@pytest.mark.parametrize("workers", [0, 1, 3])
def test_read_tree_equals_read_filesystem(chunk_size: int, workers: int) -> None:
    data = sample().tar()
    expected = read_filesystem(chunks(data, 1000), everything)

    with HashPool(workers, budget=200_000, chunk=65_536, inline_limit=4096) as pool:
        fs = read_tree(chunks(data, chunk_size), everything, pool=pool)

    assert fs.entries == expected.entries
    assert list(fs.entries) == list(expected.entries)
    assert fs.contents == expected.contents
    assert fs.skipped_names == expected.skipped_names


@pytest.mark.parametrize("seed", range(8))
def test_read_tree_equals_read_filesystem_on_random_trees(seed: int) -> None:
    data = random_tree(seed).tar()

    def wants(path: str) -> bool:
        return not path.endswith("3")

    expected = read_filesystem(chunks(data, 4096), wants)

    with HashPool(2, budget=50_000, chunk=10_000, inline_limit=3000) as pool:
        fs = read_tree(chunks(data, 3001 + seed), wants, pool=pool)

    assert fs == expected


def test_results_are_the_same_on_every_run() -> None:
    data = random_tree(99, files=200).tar()

    runs = []
    for workers in (4, 4, 4, 1, 0):
        with HashPool(workers, budget=64_000, chunk=8192, inline_limit=100) as pool:
            runs.append(read_tree(chunks(data, 10_000), everything, pool=pool))

    assert all(run == runs[0] for run in runs)


def test_progress_counts_every_byte_read() -> None:
    tree = Tree().file("/a", b"a" * 100_000).program("/b", ELF).file("/c", b"")
    counted: list[int] = []

    with HashPool(2, chunk=4096, inline_limit=0) as pool:
        read_tree(chunks(tree.tar(), 777), everything, counted.append, pool=pool)

    assert sum(counted) == 100_000 + len(ELF)


def test_default_pool_has_a_worker_per_core() -> None:
    pool = HashPool()
    try:
        assert len(pool._threads) == (os.cpu_count() or 1)
    finally:
        pool.close()


def test_a_failing_worker_is_reported_to_the_reader() -> None:
    with HashPool(2) as pool:
        strand = pool.strand()
        strand.feed("not bytes")  # type: ignore[arg-type]
        strand.finish()

        with pytest.raises(RuntimeError, match="hashing thread failed"):
            pool.wait()


def test_a_digest_read_too_early_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="before"):
        Digest().hexdigest()


def test_a_damaged_header_after_the_first_is_an_error_not_the_end() -> None:
    data = bytearray(Tree().file("/a", b"a").file("/b", b"b").tar())
    # A header block, a data block, then the second member's header.
    assert data[1024:1025] == b"b"
    data[1024:1034] = b"\xff" * 10

    with pytest.raises(ImageError, match="damaged"):
        read_tree(chunks(bytes(data), 4096), everything, pool=HashPool(0))


def test_chunk_stream_hands_out_views_of_the_chunks_in_order() -> None:
    stream = ChunkStream(iter([b"abc", b"", b"defgh"]))

    pieces = [bytes(stream.read(2)) for _ in range(5)]

    assert pieces == [b"ab", b"c", b"de", b"fg", b"h"]
    assert bytes(stream.read(10)) == b""
