"""The entries and hashes of image layers, kept between runs, one file a layer.

A layer is kept under its diff id: the SHA-256 of the layer's tar, which
the image's config lists (`rootfs.diff_ids`, `docker inspect`'s
`RootFS.Layers`) and which the engine checks whenever it takes a layer in.
The same diff id always means the same layer content, whatever image the
layer belongs to and wherever it sits in it.

The names the saved stream gives its layers are no such key. In the OCI
layout a layer is a blob named by its digest, which is its diff id unless
the blob is compressed. In Docker's legacy layout a layer's directory is
named by its v1 id: the SHA-256 of a JSON document that holds the layer's
chain id (the digest of its diff id and of every diff id below it) and the
v1 id of the layer below it. That is content-addressed too, but the top
layer's document also holds the image's config, so the layer that was on
top of one image gets another v1 id in an image built on it: keyed by v1
id, it would be hashed again for every such image. `gsc.layers` therefore
tells which cached layer a stream member is by the size of its tar (the
entry records it), and checks that against the diff ids of the image when
the stream ends; a member taken for the wrong layer is read in a second
pass.

An entry is one file, written under a temporary name and renamed into
place, so that runs at the same time never see half of one. It holds a
format version, its own diff id, the fingerprint of the layer's tar and the
SHA-256 of its payload; an entry that is truncated, corrupted, of another
format or copied from another layer's file is ignored, and the layer is
hashed again. The checksum guards against accidents, not against someone
who can write to the cache directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import tempfile
import zlib
from binascii import a2b_base64, b2a_base64
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from operator import itemgetter
from pathlib import Path
from typing import Any

from gsc.image import Entry
from gsc.layers import CachedLayer, Fingerprint, Layer

# Raised whenever what an entry holds, or how it is derived from a layer, changes.
FORMAT = 2
_MAGIC = f"gsc-layer-cache {FORMAT}\n".encode()
_DIFF_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
# zlib's fastest level: on a layer of 100,000 files it compresses in a third
# of the time of the default level, into a file 4% larger.
_COMPRESSION = 1


def default_directory(environ: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_CACHE_HOME/gsc/layers`, or `~/.cache/gsc/layers`."""
    base = environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative path.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "gsc" / "layers"


class LayerCache:
    """Layers read before, by key; see the module's description."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else default_directory()
        # Why entries could not be written, for the caller to warn about.
        self.problems: list[str] = []

    def path(self, diff_id: str) -> Path | None:
        """The file of the entry for `diff_id`; None for what is no diff id."""
        if not _DIFF_ID.match(diff_id):
            return None
        return self.directory / diff_id.replace(":", "-")

    def load(self, diff_id: str) -> CachedLayer | None:
        """The entry for `diff_id`, or None if there is no sound one."""
        path = self.path(diff_id)
        if path is None:
            return None
        try:
            return decode(path.read_bytes(), diff_id)
        except (OSError, ValueError, KeyError, TypeError, zlib.error):
            return None

    def store(
        self,
        diff_id: str,
        layer: Layer,
        fingerprint: Fingerprint,
        hash_rules: str = "",
    ) -> None:
        """Keep `layer`, read under `hash_rules`, as the entry for `diff_id`; a
        failure goes to `problems`."""
        path = self.path(diff_id)
        if path is None:
            return
        pieces = _entry_pieces(diff_id, layer, fingerprint, hash_rules)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_replacing(path, pieces)
        except OSError as err:
            self.problems.append(
                f"cannot write the layer cache in {self.directory}"
                f" ({err.strerror or err})"
            )


def _write_replacing(path: Path, pieces: list[bytes]) -> None:
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.writelines(pieces)
        os.replace(partial, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(partial)
        raise


def encode(
    diff_id: str, layer: Layer, fingerprint: Fingerprint, hash_rules: str = ""
) -> bytes:
    """The bytes of the cache entry of `layer`."""
    return b"".join(_entry_pieces(diff_id, layer, fingerprint, hash_rules))


def _entry_pieces(
    diff_id: str, layer: Layer, fingerprint: Fingerprint, hash_rules: str
) -> list[bytes]:
    """The bytes of the cache entry of `layer`, in pieces to be written one
    after another: joined, the compressed payload of a large layer would be
    held twice more while it is written."""
    payload = _compressed(_document_text(layer, hash_rules))
    checksum = hashlib.sha256()
    for piece in payload:
        checksum.update(piece)
    header = {
        "diff_id": diff_id,
        "tar_size": fingerprint.size,
        "tar_head_sha256": fingerprint.head_sha256,
        "payload_size": sum(map(len, payload)),
        "payload_sha256": checksum.hexdigest(),
    }
    return [_MAGIC + json.dumps(header).encode("ascii") + b"\n", *payload]


def _compressed(text: Iterator[str]) -> list[bytes]:
    """The pieces of ASCII `text`, compressed as one zlib stream."""
    compressor = zlib.compressobj(_COMPRESSION)
    compressed = [compressor.compress(piece.encode("ascii")) for piece in text]
    compressed.append(compressor.flush())
    return [piece for piece in compressed if piece]


# A layer of many files makes tens of MB of JSON. It is written a part of a
# column at a time, and compressed as it is written: never whole, nor as bytes.
_ITEMS_AT_ONCE = 8192


def _document_text(layer: Layer, hash_rules: str) -> Iterator[str]:
    """The compact JSON text (as json.dumps writes it with the separators ","
    and ":") of the document that `_layer_from` reads back, in pieces.

    The rules are in the document, so that the payload's checksum covers
    them. Entries are tuples, and a column of them is taken a field at a
    time, so that one column is held, not all of them.
    """
    yield '{"hash_rules":' + json.dumps(hash_rules) + ',"entries":'
    separator = "{"
    for index, name in enumerate(Entry._fields):
        column: Iterable[Any] = map(itemgetter(index), layer.entries)
        if name == "head":
            column = map(_base64, column)
        yield f"{separator}{json.dumps(name)}:"
        yield from _json_list(list(column))
        separator = ","
    yield "}"
    tables: dict[str, list[Any]] = {
        "deleted": list(layer.deleted),
        "opaque": list(layer.opaque),
        "contents": [[path, _base64(data)] for path, data in layer.contents.items()],
        "skipped": list(layer.skipped_names),
        "links": [[path, target] for path, target in layer.links.items()],
    }
    for name, items in tables.items():
        yield f",{json.dumps(name)}:"
        yield from _json_list(items)
    yield "}"


def _base64(data: bytes) -> str:
    return b2a_base64(data, newline=False).decode("ascii")


def _json_list(items: list[Any]) -> Iterator[str]:
    """json.dumps(items) with compact separators, a few thousand items at a time."""
    if not items:
        yield "[]"
        return
    opening = "["
    for start in range(0, len(items), _ITEMS_AT_ONCE):
        part = json.dumps(items[start : start + _ITEMS_AT_ONCE], separators=(",", ":"))
        yield opening + part[1:-1]
        opening = ","
    yield "]"


def decode(data: bytes, diff_id: str) -> CachedLayer:
    """The layer in a cache entry; ValueError if it is no sound entry of `diff_id`."""
    if not data.startswith(_MAGIC):
        raise ValueError("not a layer cache entry of this format")
    # The payload is looked at where it lies, not copied; its text is made
    # a string before it is parsed, so that the bytes and the string are not
    # both held while the document grows.
    end = data.find(b"\n", len(_MAGIC))
    if end < 0:
        raise ValueError("no header line")
    header = json.loads(data[len(_MAGIC) : end])
    payload = memoryview(data)[end + 1 :]
    if header["diff_id"] != diff_id:
        raise ValueError("the entry of another layer")
    if header["payload_size"] != len(payload):
        raise ValueError("truncated")
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise ValueError("corrupted")
    text = zlib.decompress(payload).decode("ascii")
    # Nor is the entry's file held while its text is parsed: `load` keeps
    # no other reference to it.
    payload.release()
    del payload, data
    document = json.loads(text)
    del text
    fingerprint = Fingerprint(int(header["tar_size"]), str(header["tar_head_sha256"]))
    hash_rules = document.get("hash_rules", "")
    if type(hash_rules) is not str:
        raise ValueError("hash rules that are not a string")
    return CachedLayer(diff_id, _layer_from(document), fingerprint, hash_rules)


# An entry's fields, each kept as one list (a column) so that a layer of
# many files is decoded and checked a column at a time, not a file at a time.
_TEXT_FIELDS = ("path", "kind", "target", "sha256", "head")
_NUMBER_FIELDS = ("mode", "uid", "gid", "size")


def _layer_from(document: dict[str, Any]) -> Layer:
    return Layer(
        entries=_entries(document["entries"]),
        deleted=tuple(str(p) for p in document["deleted"]),
        opaque=tuple(str(p) for p in document["opaque"]),
        contents={str(p): base64.b64decode(d) for p, d in document["contents"]},
        skipped_names=tuple(str(p) for p in document["skipped"]),
        links={str(p): str(t) for p, t in document["links"]},
    )


def _entries(columns: dict[str, Any]) -> tuple[Entry, ...]:
    # The checksum vouches for what was written; the types are still checked,
    # a column at a time, so that a wrong one is no entry rather than a crash.
    for names, kind in ((_TEXT_FIELDS, str), (_NUMBER_FIELDS, int)):
        for name in names:
            column = columns[name]
            if type(column) is not list or not set(map(type, column)) <= {kind}:
                raise ValueError(f"entry field {name}: not a list of {kind.__name__}")
    if len({len(columns[name]) for name in (*_TEXT_FIELDS, *_NUMBER_FIELDS)}) != 1:
        raise ValueError("entry fields of different lengths")
    return tuple(
        map(
            Entry,
            columns["path"],
            map(sys.intern, columns["kind"]),
            columns["mode"],
            columns["uid"],
            columns["gid"],
            columns["size"],
            columns["target"],
            columns["sha256"],
            map(a2b_base64, columns["head"]),
        )
    )
