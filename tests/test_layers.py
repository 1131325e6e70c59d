"""Tests for gsc.layers: an image read from its saved layers, whiteouts applied."""

from __future__ import annotations

import hashlib
import posixpath
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from gsc.errors import ImageError
from gsc.hashing import HashPool
from gsc.image import FileSystem, read_filesystem
from gsc.layers import apply_layers, read_image

from .fstree import ELF, FakeEngine, SavedImage, Tree, chunks, legacy_save, oci_save

PASSWD = b"root:x:0:0:root:/root:/bin/bash\n"
PASSWD_2 = PASSWD + b"app:x:1000:1000::/home/app:/bin/sh\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def everything(path: str) -> bool:
    return True


def read(
    saved: SavedImage,
    wants: Callable[[str], bool] = everything,
    chunk_size: int = 65_536,
) -> FileSystem:
    with HashPool(2, budget=64 << 10, chunk=4096, inline_limit=1024) as pool:
        return read_image(
            FakeEngine(saved, chunk_size), saved.image_id, wants, pool=pool
        )


def layered(*trees: Tree) -> FileSystem:
    return read(legacy_save([tree.tar() for tree in trees]))


def test_whiteout_removes_a_file_of_a_lower_layer() -> None:
    base = Tree().dir("/etc").file("/etc/a", b"a").file("/etc/b", b"b")
    upper = Tree().dir("/etc").whiteout("/etc/a")

    fs = layered(base, upper)

    assert set(fs.entries) == {"/etc", "/etc/b"}


def test_whiteout_of_a_directory_removes_everything_under_it() -> None:
    base = (
        Tree()
        .dir("/opt")
        .dir("/opt/tool")
        .dir("/opt/tool/lib")
        .file("/opt/tool/lib/x.so", ELF)
        .file("/opt/toolbox", b"a sibling whose name starts alike")
    )
    upper = Tree().dir("/opt").whiteout("/opt/tool")

    fs = layered(base, upper)

    assert set(fs.entries) == {"/opt", "/opt/toolbox"}


def test_whiteouts_in_successive_layers_remove_what_each_layer_below_added() -> None:
    # The first whiteout makes the merged tree index its directories; the
    # files added after that must be found by the later whiteouts too.
    base = Tree().dir("/a").file("/a/one", b"1").dir("/b").file("/b/one", b"1")
    middle = Tree().dir("/a").whiteout("/a/one").dir("/b").file("/b/two", b"2")
    middle.dir("/c").file("/c/one", b"1")
    top = Tree().whiteout("/b").dir("/c").whiteout("/c/one").file("/c/two", b"2")

    fs = layered(base, middle, top)

    assert set(fs.entries) == {"/a", "/c", "/c/two"}


def test_opaque_directory_hides_what_lower_layers_had_but_keeps_its_own() -> None:
    base = (
        Tree()
        .dir("/srv")
        .file("/srv/old", b"old")
        .dir("/srv/sub")
        .file("/srv/sub/deep", b"deep")
        .file("/srvx", b"outside")
    )
    # The engine writes the marker in name order, after names that sort
    # before ".wh..wh..opq".
    upper = (
        Tree()
        .dir("/srv")
        .file("/srv/-early", b"early")
        .opaque("/srv")
        .file("/srv/new", b"new")
    )

    fs = layered(base, upper)

    assert set(fs.entries) == {"/srv", "/srv/-early", "/srv/new", "/srvx"}


def test_file_replaced_in_an_upper_layer_has_the_new_content_and_mode() -> None:
    base = Tree().dir("/app").file("/app/run", b"#!/bin/sh\necho one\n", 0o644)
    upper = Tree().dir("/app").file("/app/run", b"#!/bin/sh\necho two\n", 0o755)

    entry = layered(base, upper).get("/app/run")

    assert entry is not None
    assert (entry.sha256, entry.mode) == (sha(b"#!/bin/sh\necho two\n"), 0o755)
    assert entry.head == b"#!/bin/sh\necho two\n"


def test_directory_replaced_by_a_file_takes_its_children_away() -> None:
    base = Tree().dir("/data").dir("/data/x").file("/data/x/inner", b"inner")
    upper = Tree().dir("/data").file("/data/x", b"now a file")

    fs = layered(base, upper)

    assert set(fs.entries) == {"/data", "/data/x"}
    entry = fs.get("/data/x")
    assert entry is not None and entry.kind == "file"


def test_file_replaced_by_a_directory() -> None:
    base = Tree().dir("/data").file("/data/x", b"a file")
    upper = Tree().dir("/data").dir("/data/x").file("/data/x/inner", b"inner")

    fs = layered(base, upper)

    kinds = {path: entry.kind for path, entry in fs.entries.items()}
    assert kinds == {"/data": "dir", "/data/x": "dir", "/data/x/inner": "file"}


def test_symbolic_link_replacing_a_directory() -> None:
    base = Tree().dir("/lib").file("/lib/libc.so", ELF)
    upper = Tree().dir("/usr").dir("/usr/lib").symlink("/lib", "usr/lib")

    fs = layered(base, upper)

    assert set(fs.entries) == {"/lib", "/usr", "/usr/lib"}
    assert fs.resolve("/lib") == "/usr/lib"


def test_hard_link_takes_the_hash_of_its_file_in_the_same_layer() -> None:
    base = Tree().dir("/bin").file("/bin/tool", b"old tool", 0o755)
    # `ln` in a later step copies the file up into the new layer first.
    upper = (
        Tree()
        .dir("/bin")
        .program("/bin/tool", ELF)
        .hardlink("/bin/tool-again", "/bin/tool", 0o755)
    )

    fs = layered(base, upper)

    link = fs.get("/bin/tool-again")
    assert link is not None
    assert (link.kind, link.size, link.sha256) == ("file", len(ELF), sha(ELF))
    assert link.head == ELF[:256]


def test_hard_link_never_reaches_into_a_lower_layer() -> None:
    base = Tree().dir("/bin").file("/bin/tool", b"tool")
    upper = Tree().dir("/bin").hardlink("/bin/odd", "/bin/tool")

    entry = layered(base, upper).get("/bin/odd")

    # A layer tar never writes such a link; the export reader makes the same
    # of a link to a file it has not seen.
    assert entry is not None and entry.kind == "other"


def test_kept_contents_come_from_the_topmost_layer_and_go_with_a_whiteout() -> None:
    base = Tree().dir("/etc").file("/etc/passwd", PASSWD).file("/etc/group", b"g\n")
    middle = Tree().dir("/etc").file("/etc/passwd", PASSWD_2)
    top = Tree().dir("/etc").whiteout("/etc/group")

    fs = layered(base, middle, top)

    assert fs.contents == {"/etc/passwd": PASSWD_2}


def test_kept_content_goes_when_the_file_becomes_a_link() -> None:
    base = Tree().dir("/etc").file("/etc/os-release", b"ID=debian\n")
    upper = Tree().dir("/etc").symlink("/etc/os-release", "../usr/lib/os-release")

    fs = layered(base, upper)

    assert fs.contents == {}


def test_layers_are_applied_in_chain_order_not_in_stream_order() -> None:
    trees = [
        Tree().dir("/v").file("/v/f", str(n).encode()).file(f"/v/only{n}", b"")
        for n in range(6)
    ]
    saved = legacy_save([tree.tar() for tree in trees])
    # The stream holds the layer directories in the order of their ids.
    assert sorted(saved.layer_keys) != saved.layer_keys

    fs = read(saved)

    entry = fs.get("/v/f")
    assert entry is not None and entry.sha256 == sha(b"5")
    assert {f"/v/only{n}" for n in range(6)} <= set(fs.entries)


def test_a_layer_saved_as_a_link_to_an_identical_one() -> None:
    same = Tree().dir("/x").file("/x/f", b"again")
    removal = Tree().dir("/x").whiteout("/x/f")
    saved = legacy_save([same.tar(), removal.tar(), same.tar()])
    assert b"../" in saved.stream

    fs = read(saved)

    entry = fs.get("/x/f")
    assert entry is not None and entry.sha256 == sha(b"again")


@pytest.mark.parametrize(
    ("docker_manifest", "compress"), [(True, False), (False, False), (True, True)]
)
def test_oci_layout(docker_manifest: bool, compress: bool) -> None:
    base = Tree().dir("/etc").file("/etc/passwd", PASSWD).file("/etc/old", b"x")
    upper = Tree().dir("/etc").whiteout("/etc/old").program("/etc/tool")
    saved = oci_save(
        [base.tar(), upper.tar()], docker_manifest=docker_manifest, compress=compress
    )

    fs = read(saved)

    assert set(fs.entries) == {"/etc", "/etc/passwd", "/etc/tool"}
    tool = fs.get("/etc/tool")
    assert tool is not None and tool.sha256 == sha(ELF)
    assert fs.contents == {"/etc/passwd": PASSWD}


def test_oci_layout_with_one_blob_used_by_two_layers() -> None:
    same = Tree().dir("/x").file("/x/f", b"again")
    removal = Tree().dir("/x").whiteout("/x/f")

    fs = read(oci_save([same.tar(), removal.tar(), same.tar()]))

    assert set(fs.entries) == {"/x", "/x/f"}


def test_root_entry_and_dot_slash_names_as_an_imported_base_has_them() -> None:
    base = Tree().dir("./").dir("./etc").file("./etc/passwd", PASSWD)

    fs = layered(base)

    assert set(fs.entries) == {"/etc", "/etc/passwd"}
    assert fs.contents == {"/etc/passwd": PASSWD}


def test_file_type_bits_in_a_mode_field_are_dropped() -> None:
    tree = Tree().dir("/d", 0o40755).file("/d/f", b"f", 0o100640)

    fs = layered(tree)

    modes = {path: entry.mode for path, entry in fs.entries.items()}
    assert modes == {"/d": 0o755, "/d/f": 0o640}


def test_aufs_bookkeeping_is_not_part_of_the_file_system() -> None:
    tree = (
        Tree()
        .dir("/.wh..wh.plnk")
        .file("/.wh..wh.plnk/123.456", b"x")
        .file("/.wh..wh.aufs", b"")
        .file("/kept", b"k")
    )

    assert set(layered(tree).entries) == {"/kept"}


def test_names_that_are_not_utf8_are_reported_until_a_whiteout_removes_them() -> None:
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    base = Tree().dir("/d").file(f"/d/{bad}", b"x").file(f"/d/{bad}2", b"y")
    upper = Tree().dir("/d").whiteout(f"/d/{bad}")

    fs = layered(base, upper)

    assert set(fs.entries) == {"/d"}
    assert fs.skipped_names == [f"/d/{bad}2"]


def test_progress_counts_the_bytes_of_the_files_read() -> None:
    base = Tree().dir("/d").file("/d/a", b"a" * 5000).file("/d/b", b"b" * 7)
    counted: list[int] = []
    saved = legacy_save([base.tar()])

    read_image(FakeEngine(saved), saved.image_id, everything, None, counted.append)

    assert sum(counted) == 5007


def test_files_not_wanted_have_no_hash() -> None:
    base = Tree().dir("/var").file("/var/log", b"noise").file("/var/keep", b"k")

    fs = read(legacy_save([base.tar()]), wants=lambda path: path != "/var/log")

    log, keep = fs.get("/var/log"), fs.get("/var/keep")
    assert log is not None and (log.sha256, log.size) == ("", 5)
    assert keep is not None and keep.sha256 == sha(b"k")


@pytest.mark.parametrize("chunk_size", [1, 7, 511, 4097, 1 << 20])
def test_chunks_of_any_size(chunk_size: int) -> None:
    big = random.Random(3).randbytes(50_001)
    base = Tree().dir("/d").file("/d/big", big).file("/d/small", b"s")
    upper = Tree().dir("/d").whiteout("/d/small").program("/d/run", b"#!/bin/sh\n")

    fs = read(legacy_save([base.tar(), upper.tar()]), chunk_size=chunk_size)

    hashes = {path: entry.sha256 for path, entry in fs.entries.items()}
    assert hashes == {"/d": "", "/d/big": sha(big), "/d/run": sha(b"#!/bin/sh\n")}


def test_a_truncated_stream_is_an_image_error() -> None:
    saved = legacy_save([Tree().dir("/d").file("/d/f", b"f" * 10_000).tar()])
    saved.stream = saved.stream[: len(saved.stream) // 2]

    with pytest.raises(ImageError, match="cannot read"):
        read(saved)


def test_garbage_is_an_image_error() -> None:
    saved = legacy_save([Tree().tar()])
    saved.stream = b"not a tar stream at all" * 100

    with pytest.raises(ImageError):
        read(saved)


def test_a_saved_image_without_a_manifest_is_an_image_error() -> None:
    saved = oci_save([Tree().dir("/d").tar()], docker_manifest=False, index=False)

    with pytest.raises(ImageError, match="no manifest"):
        read(saved)


def test_a_layer_named_by_the_manifest_but_absent_is_an_image_error() -> None:
    saved = legacy_save([Tree().dir("/a").tar(), Tree().dir("/b").tar()])
    first = saved.layer_keys[0].split(":")[1]
    # Name another directory in manifest.json (its data, not a tar header).
    named = f'"{first}/layer.tar"'.encode()
    assert named in saved.stream
    saved.stream = saved.stream.replace(named, f'"{"f" * 64}/layer.tar"'.encode())

    with pytest.raises(ImageError, match="missing"):
        read(saved)


def test_a_broken_layer_tar_is_an_image_error_naming_the_layer() -> None:
    good = Tree().dir("/a").file("/a/f", b"f" * 3000).tar()
    broken = good[:512] + b"\xff" * 512 + good[1024:]
    saved = legacy_save([broken])

    with pytest.raises(ImageError, match="layer"):
        read(saved)


def test_apply_layers_of_nothing_is_empty() -> None:
    fs = apply_layers([])

    assert (fs.entries, fs.contents, fs.skipped_names) == ({}, {}, [])


# The same file systems, built two ways: as layers with whiteouts, and as the
# merged tree a model of overlayfs gives, written out whole.


@dataclass
class Node:
    kind: str
    mode: int
    data: bytes = b""
    target: str = ""


NAMES = ("a", "b", "c", "x")
SPECIAL = ("/etc/passwd", "/etc/ld.so.conf.d/x.conf", "/bin/tool")


def random_layers(seed: int) -> tuple[list[Tree], dict[str, Node]]:
    rng = random.Random(seed)
    merged: dict[str, Node] = {}
    trees = []
    for _ in range(rng.randint(1, 5)):
        trees.append(_random_layer(rng, merged))
    return trees, merged


def _random_layer(rng: random.Random, merged: dict[str, Node]) -> Tree:
    tree = Tree()
    emitted: dict[str, Node] = {}
    removed: set[str] = set()
    directories = [p for p, n in merged.items() if n.kind == "dir"]
    for directory in rng.sample(directories, k=min(len(directories), 1)):
        if rng.random() < 0.3:
            _emit_parents(tree, emitted, directory, merged)
            _emit(tree, emitted, directory, Node("dir", 0o755), merged)
            tree.opaque(directory)
            _drop_below(merged, directory)
            removed.add(directory)
    for path in rng.sample(sorted(merged), k=min(len(merged), rng.randint(0, 3))):
        if _taken(path, emitted) or any(_under(path, r) for r in removed):
            continue
        _emit_parents(tree, emitted, path, merged)
        tree.whiteout(path)
        merged.pop(path)
        _drop_below(merged, path)
        removed.add(path)
    for _ in range(rng.randint(1, 8)):
        path = _random_path(rng)
        if _taken(path, emitted) or path in removed:
            continue
        _emit_parents(tree, emitted, path, merged)
        node = _random_node(rng, emitted)
        if node.kind == "link" and not (not_x(path) and not_x(node.target)):
            # Written out whole, a hard link loses the hash of its file
            # when only one of the two is hashed.
            node = Node("file", 0o644, b"instead of a link")
        _emit(tree, emitted, path, node, merged)
    return tree


def _taken(path: str, emitted: dict[str, Node]) -> bool:
    """Whether this layer has the path, or made one of its parents no directory."""
    if path in emitted:
        return True
    parent = posixpath.dirname(path)
    while parent != "/":
        if parent in emitted and emitted[parent].kind != "dir":
            return True
        parent = posixpath.dirname(parent)
    return False


def _random_path(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(SPECIAL)
    depth = rng.randint(1, 3)
    return "/" + "/".join(rng.choice(NAMES) for _ in range(depth))


def _random_node(rng: random.Random, emitted: dict[str, Node]) -> Node:
    roll = rng.random()
    if roll < 0.2:
        return Node("dir", rng.choice([0o755, 0o700]))
    if roll < 0.3:
        return Node("symlink", 0o777, target=rng.choice(["x", "/a/b", "../c"]))
    files = [p for p, n in emitted.items() if n.kind == "file"]
    if roll < 0.4 and files:
        return Node("link", 0, target=rng.choice(files))
    size = rng.choice([0, 1, 100, 1023, 1024, 4095, 4096, 4097, 20_000])
    mode = rng.choice([0o644, 0o600, 0o755, 0o4755])
    return Node("file", mode, rng.randbytes(size))


def _emit_parents(
    tree: Tree, emitted: dict[str, Node], path: str, merged: dict[str, Node]
) -> None:
    parent = posixpath.dirname(path)
    if parent == "/" or parent in emitted:
        return
    _emit_parents(tree, emitted, parent, merged)
    _emit(tree, emitted, parent, Node("dir", 0o755), merged)


def _emit(
    tree: Tree, emitted: dict[str, Node], path: str, node: Node, merged: dict[str, Node]
) -> None:
    if node.kind == "link":
        target = emitted[node.target]
        tree.hardlink(path, node.target, target.mode)
        node = Node("file", target.mode, target.data)
    elif node.kind == "dir":
        tree.dir(path, node.mode)
    elif node.kind == "symlink":
        tree.symlink(path, node.target)
    else:
        tree.file(path, node.data, node.mode)
    old = merged.get(path)
    if node.kind != "dir" or (old is not None and old.kind != "dir"):
        _drop_below(merged, path)
    merged[path] = node
    emitted[path] = node


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


def _drop_below(merged: dict[str, Node], directory: str) -> None:
    for path in [p for p in merged if p.startswith(directory + "/")]:
        del merged[path]


def merged_tree(merged: dict[str, Node]) -> Tree:
    tree = Tree()
    for path in sorted(merged):
        node = merged[path]
        if node.kind == "dir":
            tree.dir(path, node.mode)
        elif node.kind == "symlink":
            tree.symlink(path, node.target)
        else:
            tree.file(path, node.data, node.mode)
    return tree


def not_x(path: str) -> bool:
    return not path.endswith("/x")


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("save", [legacy_save, oci_save])
def test_layers_give_the_file_system_the_merged_tree_gives(
    seed: int, save: Callable[[Sequence[bytes]], SavedImage]
) -> None:
    trees, merged = random_layers(seed)
    expected = read_filesystem(chunks(merged_tree(merged).tar(), 4096), not_x)

    fs = read(save([tree.tar() for tree in trees]), not_x, chunk_size=1000 + seed)

    assert fs.entries == expected.entries
    assert fs.contents == expected.contents
    assert fs.skipped_names == expected.skipped_names
