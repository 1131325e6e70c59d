"""Tests for gsc.layercache: layers kept between runs, and reads that use them."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import gsc.hashing
from gsc.hashing import HashPool
from gsc.image import Entry, FileSystem
from gsc.layercache import FORMAT, LayerCache, decode, default_directory, encode
from gsc.layers import Fingerprint, Layer, read_image

from .fstree import ELF, FakeEngine, SavedImage, Tree, legacy_save, oci_save

BAD_NAME = b"caf\xe9".decode("utf-8", "surrogateescape")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def everything(path: str) -> bool:
    return True


def base_tree() -> Tree:
    return (
        Tree()
        .dir("/etc")
        .file("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .dir("/usr")
        .dir("/usr/bin")
        .program("/usr/bin/tool")
        .hardlink("/usr/bin/tool-again", "/usr/bin/tool", 0o755)
        .file("/usr/data", b"d" * 70_000)
        .file("/usr/notes", b"notes")
        .hardlink("/usr/notes-again", "/usr/notes")
    )


def app_tree(version: bytes = b"1") -> Tree:
    return Tree().dir("/app").file("/app/main.py", b"print(" + version + b")\n")


def image(
    version: bytes = b"1", save: Callable[..., SavedImage] = legacy_save
) -> SavedImage:
    return save([base_tree().tar(), app_tree(version).tar()])


class Counting:
    """Stands for the hashlib module in gsc.hashing and counts its hashes."""

    def __init__(self) -> None:
        self.calls = 0

    def sha256(self, *data: bytes) -> Any:
        self.calls += 1
        return hashlib.sha256(*data)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Counting:
    counter = Counting()
    monkeypatch.setattr(gsc.hashing, "hashlib", counter)
    return counter


def read(
    saved: SavedImage,
    cache: LayerCache | None,
    wants: Callable[[str], bool] = everything,
    engine: FakeEngine | None = None,
) -> tuple[FileSystem, HashPool]:
    engine = engine or FakeEngine(saved)
    with HashPool(2, chunk=16_384, inline_limit=1024) as pool:
        return read_image(engine, saved.image_id, wants, cache, pool=pool), pool


@pytest.fixture
def cache(tmp_path: Path) -> LayerCache:
    return LayerCache(tmp_path / "layers")


@pytest.mark.parametrize("save", [legacy_save, oci_save])
def test_a_second_read_hashes_nothing(
    cache: LayerCache, counting: Counting, save: Callable[..., SavedImage]
) -> None:
    saved = image(save=save)
    cold, cold_pool = read(saved, cache)
    calls = counting.calls

    warm, warm_pool = read(saved, cache)

    assert calls > 0 and counting.calls == calls
    assert (warm_pool.files_hashed, warm_pool.bytes_hashed) == (0, 0)
    # Hard links carry no data: four files below, one on top.
    assert cold_pool.files_hashed == 5
    assert warm == cold
    assert warm == read(saved, None)[0]
    entry = warm.get("/usr/data")
    assert entry is not None and entry.sha256 == sha(b"d" * 70_000)


def test_only_the_changed_top_layer_is_hashed(cache: LayerCache) -> None:
    read(image(b"1"), cache)

    fs, pool = read(image(b"2"), cache)

    assert (pool.files_hashed, pool.bytes_hashed) == (1, len(b"print(2)\n"))
    entry = fs.get("/app/main.py")
    assert entry is not None and entry.sha256 == sha(b"print(2)\n")


def test_no_cache_hashes_every_layer_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    saved = image()

    first = read(saved, None)[1]
    second = read(saved, None)[1]

    assert first.files_hashed == second.files_hashed == 5
    assert list(tmp_path.iterdir()) == []


def test_entries_are_one_file_a_layer_named_by_diff_id(cache: LayerCache) -> None:
    saved = image()

    read(saved, cache)

    names = sorted(p.name for p in cache.directory.iterdir())
    assert names == sorted(d.replace(":", "-") for d in saved.diff_ids)


def test_a_fully_cached_image_is_not_even_saved(cache: LayerCache) -> None:
    saved = image()
    read(saved, cache)
    engine = FakeEngine(saved)
    counted: list[int] = []

    with HashPool(2) as pool:
        fs = read_image(
            engine, saved.image_id, everything, cache, counted.append, pool=pool
        )

    assert engine.saves == []
    assert pool.files_hashed == 0
    assert fs == read(saved, None)[0]
    assert sum(counted) > 70_000


def test_the_top_layer_of_one_image_is_a_hit_below_another_one(
    cache: LayerCache,
) -> None:
    # Docker's legacy layout names a layer anew when it stops being the top.
    first = legacy_save([base_tree().tar(), app_tree().tar()])
    read(first, cache)
    more = Tree().dir("/more").file("/more/file", b"more")
    second = legacy_save([base_tree().tar(), app_tree().tar(), more.tar()])
    assert set(first.layer_keys).isdisjoint(second.layer_keys[1:])
    engine = FakeEngine(second)

    fs, pool = read(second, cache, engine=engine)

    assert (pool.files_hashed, len(engine.saves)) == (1, 1)
    assert fs == read(second, None)[0]


def _only_entry(cache: LayerCache, saved: SavedImage) -> Path:
    path = cache.path(saved.diff_ids[0])
    assert path is not None and path.is_file()
    return path


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),
        lambda data: data[: len(data) // 2],
        lambda data: data.replace(
            f"gsc-layer-cache {FORMAT}".encode(), b"gsc-layer-cache 99", 1
        ),
        lambda data: b"",
        lambda data: b"\x00" * 1000,
    ],
    ids=["flipped-bit", "truncated", "other-format", "empty", "zeros"],
)
def test_a_damaged_entry_is_ignored_and_rewritten(
    cache: LayerCache, damage: Callable[[bytes], bytes]
) -> None:
    saved = image()
    read(saved, cache)
    path = _only_entry(cache, saved)
    path.write_bytes(damage(path.read_bytes()))
    assert cache.load(saved.diff_ids[0]) is None

    fs, pool = read(saved, cache)

    assert pool.files_hashed == 4
    assert fs == read(saved, None)[0]
    assert cache.load(saved.diff_ids[0]) is not None


def test_the_entry_of_another_layer_copied_in_is_ignored(cache: LayerCache) -> None:
    saved = image()
    read(saved, cache)
    base, app = (cache.path(diff_id) for diff_id in saved.diff_ids)
    assert base is not None and app is not None
    app.write_bytes(base.read_bytes())

    fs, pool = read(saved, cache)

    assert pool.files_hashed == 1
    assert fs == read(saved, None)[0]


def same_size_layers(first_sorts_first: bool) -> tuple[SavedImage, Tree]:
    """Two layers whose tars are of one size and start alike, saved in the
    stream order asked."""
    common = bytes(range(256)) * 100
    first = Tree().dir("/x").file("/x/common", common).file("/x/a", b"first")
    second = Tree().dir("/x").file("/x/common", common).file("/x/a", b"other")
    assert len(first.tar()) == len(second.tar())
    assert first.tar()[:20_000] == second.tar()[:20_000]
    for n in range(100):
        saved = legacy_save([first.tar(), second.tar()], top_config=f"app{n}")
        keys = saved.layer_keys
        if (keys[0] < keys[1]) == first_sorts_first:
            return saved, second
    raise AssertionError("no such order found")


def test_a_layer_taken_for_a_cached_one_like_it_is_read_in_a_second_pass(
    cache: LayerCache,
) -> None:
    saved, second = same_size_layers(first_sorts_first=True)
    read(legacy_save([second.tar()]), cache)
    engine = FakeEngine(saved)

    fs, pool = read(saved, cache, engine=engine)

    # The first layer came first in the stream and was taken for the cached
    # second one, which looks the same from outside; the order at the end of
    # the stream tells it is not.
    assert engine.saves == [saved.image_id, saved.image_id]
    # Two files of the second layer in the first pass, two of the first in
    # the second.
    assert pool.files_hashed == 4
    assert fs == read(saved, None)[0]
    assert cache.load(saved.diff_ids[0]) is not None


def test_a_layer_like_a_cached_one_after_it_needs_one_pass(
    cache: LayerCache,
) -> None:
    saved, second = same_size_layers(first_sorts_first=False)
    read(legacy_save([second.tar()]), cache)
    engine = FakeEngine(saved)

    fs, pool = read(saved, cache, engine=engine)

    assert engine.saves == [saved.image_id]
    assert pool.files_hashed == 2
    assert fs == read(saved, None)[0]


def test_an_image_with_a_layer_not_cached_needs_one_pass(cache: LayerCache) -> None:
    read(image(b"1"), cache)
    saved = image(b"2")
    engine = FakeEngine(saved)

    read(saved, cache, engine=engine)

    assert engine.saves == [saved.image_id]


def test_a_layer_missing_a_hash_now_wanted_is_hashed_again(cache: LayerCache) -> None:
    saved = image()
    read(saved, cache, wants=lambda path: path != "/usr/data")

    fs, pool = read(saved, cache)

    assert pool.files_hashed == 4
    entry = fs.get("/usr/data")
    assert entry is not None and entry.sha256 == sha(b"d" * 70_000)


def _without(*paths: str) -> Callable[[str], bool]:
    return lambda path: path not in paths


@pytest.mark.parametrize(
    "later",
    [
        _without("/usr/data"),
        _without("/usr/notes"),
        _without("/usr/notes-again"),
        _without("/usr/bin/tool", "/etc/passwd"),
    ],
)
def test_a_cached_layer_reads_as_a_fresh_read_would(
    cache: LayerCache, later: Callable[[str], bool]
) -> None:
    saved = image()
    read(saved, cache)

    fs, pool = read(saved, cache, wants=later)

    assert pool.files_hashed == 0
    assert fs == read(saved, None, wants=later)[0]


def read_under_rules(
    saved: SavedImage, cache: LayerCache, wants: Callable[[str], bool], rules: str
) -> FileSystem:
    with HashPool(2, chunk=16_384, inline_limit=1024) as pool:
        return read_image(
            FakeEngine(saved), saved.image_id, wants, cache, pool=pool, hash_rules=rules
        )


def test_a_layer_cached_under_the_same_hash_rules_is_taken_as_it_is(
    cache: LayerCache,
) -> None:
    saved = image()
    read_under_rules(saved, cache, everything, "rules A")
    not_data = _without("/usr/data")

    # The name says the rules are the same; the cache takes its word, so the
    # hash that `not_data` would leave out is still there.
    same = read_under_rules(saved, cache, not_data, "rules A")
    other = read_under_rules(saved, cache, not_data, "rules B")
    unnamed = read_under_rules(saved, cache, not_data, "")

    assert same == read(saved, None)[0]
    data = same.get("/usr/data")
    assert data is not None and data.sha256 == sha(b"d" * 70_000)
    assert other == unnamed == read(saved, None, wants=not_data)[0]


def test_a_layer_cached_under_other_rules_without_a_wanted_hash_is_read_again(
    cache: LayerCache, counting: Counting
) -> None:
    saved = image()
    read_under_rules(saved, cache, _without("/usr/data"), "rules A")
    calls = counting.calls

    fs = read_under_rules(saved, cache, everything, "rules B")

    assert counting.calls > calls
    data = fs.get("/usr/data")
    assert data is not None and data.sha256 == sha(b"d" * 70_000)
    cached = cache.load(saved.diff_ids[0])
    assert cached is not None and cached.hash_rules == "rules B"


def test_the_hash_rules_are_kept_under_the_checksum(cache: LayerCache) -> None:
    saved = image()
    read_under_rules(saved, cache, everything, "rules A")
    path = cache.path(saved.diff_ids[0])
    assert path is not None
    cached = cache.load(saved.diff_ids[0])
    assert cached is not None and cached.hash_rules == "rules A"

    layer = cached.layer
    path.write_bytes(encode(saved.diff_ids[0], layer, cached.fingerprint, "rules B"))
    reread = cache.load(saved.diff_ids[0])
    assert reread is not None and reread.hash_rules == "rules B"

    # The payload changed to name other rules, under the header of before.
    magic, header, payload = path.read_bytes().split(b"\n", 2)
    body = zlib.decompress(payload).replace(b'"rules B"', b'"rules A"')
    path.write_bytes(b"\n".join([magic, header, zlib.compress(body)]))
    assert cache.load(saved.diff_ids[0]) is None


def test_round_trip_of_every_part_of_a_layer() -> None:
    layer = Layer(
        entries=(
            Entry(
                "/bin/x", "file", 0o4755, 1, 2, 3, sha256="a" * 64, head=b"\x7fELF\0"
            ),
            Entry("/bin/y", "symlink", 0o777, 0, 0, target="x"),
            Entry("/dev/z", "other", 0o600, 0, 0),
        ),
        deleted=("/gone", f"/{BAD_NAME}"),
        opaque=("/opt",),
        contents={"/etc/passwd": b"root\n\xff"},
        skipped_names=(f"/d/{BAD_NAME}",),
        links={"/bin/x2": "/bin/x"},
    )

    fingerprint = Fingerprint(1234, "f" * 64)

    cached = decode(
        encode("sha256:" + "e" * 64, layer, fingerprint), "sha256:" + "e" * 64
    )

    assert cached.layer == layer
    assert cached.fingerprint == fingerprint


def test_round_trip_of_an_empty_layer() -> None:
    layer = Layer(entries=(), deleted=("/gone",))
    diff_id = "sha256:" + "d" * 64

    cached = decode(encode(diff_id, layer, Fingerprint(1, "")), diff_id)

    assert cached.layer == layer


def test_round_trip_of_a_layer_whose_json_is_several_megabytes() -> None:
    # The payload is written a column at a time and compressed a megabyte
    # at a time; what it holds is the compact JSON of the whole document.
    layer = Layer(
        entries=tuple(
            Entry(
                f"/usr/lib/caf\u00e9/module-{n:06}.py",
                "file",
                0o644,
                n % 7,
                n % 5,
                n,
                sha256=sha(str(n).encode()),
                head=b"\x7fELF" if n % 1000 == 0 else b"",
            )
            for n in range(40_000)
        ),
        deleted=("/gone",),
        contents={"/etc/passwd": b"root\n"},
    )
    diff_id = "sha256:" + "c" * 64

    data = encode(diff_id, layer, Fingerprint(1, ""), "sha256:" + "r" * 64)

    payload = data.split(b"\n", 2)[2]
    body = zlib.decompress(payload)
    assert len(body) > 3 << 20
    document = json.loads(body)
    assert body == json.dumps(document, separators=(",", ":")).encode("ascii")
    cached = decode(data, diff_id)
    assert cached.layer == layer
    assert cached.hash_rules == "sha256:" + "r" * 64


def test_what_is_no_diff_id_is_never_kept(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path)

    cache.store("../../etc/evil", Layer(entries=()), Fingerprint(0, ""))

    assert cache.path("../../etc/evil") is None
    assert cache.load("../../etc/evil") is None
    assert list(tmp_path.iterdir()) == []


def test_a_cache_that_cannot_be_written_is_noted_and_the_read_goes_on(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = LayerCache(blocker / "layers")

    fs, _ = read(image(), cache)

    assert fs == read(image(), None)[0]
    assert cache.problems and "layer cache" in cache.problems[0]


def test_xdg_cache_home_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")

    assert LayerCache().directory == Path("/somewhere/cache/gsc/layers")


@pytest.mark.parametrize("value", [None, "", "relative/cache"])
def test_without_a_usable_xdg_cache_home_the_home_cache_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    if value is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", value)

    assert default_directory() == tmp_path / ".cache" / "gsc" / "layers"


def _variant(n: int) -> Layer:
    entries = tuple(
        Entry(f"/f{i}", "file", 0o644, 0, 0, i, sha256=f"{n:064x}") for i in range(300)
    )
    return Layer(entries=entries, contents={"/etc/passwd": bytes([n]) * 1000})


KEY = "sha256:" + "c" * 64


def _store_many(directory: str, first: int) -> None:
    cache = LayerCache(Path(directory))
    for n in range(first, first + 20):
        cache.store(KEY, _variant(n), Fingerprint(1000 + n, "head"))


def test_writers_at_the_same_time_leave_a_sound_entry(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path)
    expected = [_variant(n) for n in range(80)]
    seen: list[Layer | None] = []
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.is_set():
            cached = cache.load(KEY)
            seen.append(None if cached is None else cached.layer)

    readers = [threading.Thread(target=keep_reading) for _ in range(2)]
    writers = [
        threading.Thread(target=_store_many, args=(str(tmp_path), first))
        for first in (0, 20, 40, 60)
    ]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()

    final = cache.load(KEY)
    assert final is not None and final.layer in expected
    assert all(layer is None or layer in expected for layer in seen)
    assert [p.name for p in tmp_path.iterdir()] == [KEY.replace(":", "-")]


def test_processes_writing_at_the_same_time_leave_a_sound_entry(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_store_many, args=(str(tmp_path), first))
        for first in (0, 20, 40)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    assert [process.exitcode for process in processes] == [0, 0, 0]
    final = LayerCache(tmp_path).load(KEY)
    assert final is not None and final.layer in [_variant(n) for n in range(60)]
    assert [p.name for p in tmp_path.iterdir()] == [KEY.replace(":", "-")]


def test_entry_holds_the_executable_heads_and_kept_files_but_no_other_content(
    cache: LayerCache,
) -> None:
    saved = image()

    read(saved, cache)

    cached = cache.load(saved.diff_ids[0])
    assert cached is not None
    heads = {e.path: e.head for e in cached.layer.entries if e.head}
    assert heads == {"/usr/bin/tool": ELF[:256], "/usr/bin/tool-again": ELF[:256]}
    assert dict(cached.layer.contents) == {
        "/etc/passwd": b"root:x:0:0::/root:/bin/sh\n"
    }


def _forged(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """An entry whose document is changed by `change`, with a sound checksum."""
    document = json.loads(zlib.decompress(data.split(b"\n", 2)[2]))
    change(document)
    return _with_body(data, json.dumps(document).encode())


def _with_body(data: bytes, body: bytes) -> bytes:
    """An entry with this payload body, under a sound checksum."""
    magic, header_line, _ = data.split(b"\n", 2)
    payload = zlib.compress(body)
    header = json.loads(header_line)
    header["payload_size"] = len(payload)
    header["payload_sha256"] = sha(payload)
    return b"\n".join([magic, json.dumps(header).encode(), payload])


def _set_first(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["entries"][field][0] = value

    return change


def _drop_last(field: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["entries"][field].pop()

    return change


@pytest.mark.parametrize(
    "change",
    [
        _set_first("mode", "420"),
        _set_first("size", True),
        _set_first("path", 7),
        _set_first("kind", None),
        _set_first("sha256", ["a"]),
        _drop_last("uid"),
        lambda document: document["entries"].pop("gid"),
        lambda document: document.__setitem__("hash_rules", 1),
    ],
    ids=[
        "str-mode",
        "bool-size",
        "int-path",
        "null-kind",
        "list-hash",
        "short-column",
        "no-column",
        "int-rules",
    ],
)
def test_a_checksummed_entry_of_the_wrong_shape_is_ignored(
    cache: LayerCache, change: Callable[[dict[str, Any]], None]
) -> None:
    saved = image()
    read(saved, cache)
    path = _only_entry(cache, saved)
    untouched = _forged(path.read_bytes(), lambda document: None)
    assert decode(untouched, saved.diff_ids[0]).layer.entries

    path.write_bytes(_forged(path.read_bytes(), change))

    assert cache.load(saved.diff_ids[0]) is None


@pytest.mark.parametrize(
    "forge",
    [
        # GSC writes its JSON in ASCII; a body in UTF-8 is not one of its own.
        lambda data, document: _with_body(
            data, json.dumps(document, ensure_ascii=False).encode("utf-8")
        ),
        lambda data, document: _with_body(
            data, b"\xff" + json.dumps(document).encode()
        ),
        lambda data, document: b"\n".join(data.split(b"\n", 2)[:1]) + b"\n",
        lambda data, document: b"\n".join(data.split(b"\n", 2)[:2]),
    ],
    ids=["utf-8-body", "not-text", "magic-only", "header-unended"],
)
def test_a_checksummed_entry_that_is_not_ascii_json_is_ignored(
    cache: LayerCache, forge: Callable[[bytes, dict[str, Any]], bytes]
) -> None:
    saved = image()
    read(saved, cache)
    path = _only_entry(cache, saved)
    data = path.read_bytes()
    document = json.loads(zlib.decompress(data.split(b"\n", 2)[2]))
    document["entries"]["path"][0] += "/caf\u00e9"
    assert decode(_with_body(data, json.dumps(document).encode()), saved.diff_ids[0])

    path.write_bytes(forge(data, document))

    assert cache.load(saved.diff_ids[0]) is None
