"""An image's file system read layer by layer from the engine's saved image.

`docker save` writes each layer as a tar of the changes it makes. A layer
is known by its diff id, the digest of that tar, so its entries and hashes
can be kept and reused by any image that holds it (see `gsc.layercache`):
when the cache has every layer of an image, the image is not even saved.
The layers are applied in order, with their whiteouts, to give the same
`FileSystem` that `gsc.image.read_filesystem` reads from an export of the
image.

Two layouts of the saved stream are read:

- the legacy one (Docker before 25): `<v1-id>/layer.tar` for each layer, in
  the order of the ids, then the image's config `<id>.json` and
  `manifest.json`, whose `Layers` give the order of the layers;
- the OCI one (Docker 25 and later, and others): `blobs/sha256/<digest>` for
  the layers and the JSON documents alike, then `index.json` and, from
  Docker, `manifest.json`.

Either way the order of the layers, and so which diff id is whose, is known
only at the end of the stream: every layer is read into its own list of
entries first, and a member is taken for a cached layer by its digest or
its size, then checked against the order at the end.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gsc.errors import ImageError
from gsc.hashing import (
    ChunkStream,
    HashPool,
    MemberData,
    Record,
    build_entries,
    open_tar,
    read_records,
)
from gsc.image import Entry, FileSystem, WantsHash, keeps_content
from gsc.layerdirs import LayerWalk, StorageChanged, hash_files, walk_directory

if TYPE_CHECKING:
    from gsc.layercache import LayerCache

_LEGACY_LAYER = re.compile(r"^([0-9a-f]{64})/layer\.tar$")
_BLOB = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
_DOCUMENT_LIMIT = 16 << 20
_FINGERPRINT_HEAD = 16 << 10
_INDEX_DEPTH = 4


class ImageSaver(Protocol):
    """The part of `gsc.engine.Engine` that this module uses."""

    def inspect_image(self, name: str) -> dict[str, Any]: ...

    def save_image(self, image_id: str) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class Layer:
    """What one layer does to the file system below it.

    `entries` are in the layer's tar order, hard links already made copies of
    the file they name in the same layer (`links` remembers which); `deleted`
    are the paths its whiteouts remove; `opaque` the directories whose lower
    content it hides.
    """

    entries: tuple[Entry, ...]
    deleted: tuple[str, ...] = ()
    opaque: tuple[str, ...] = ()
    contents: Mapping[str, bytes] = field(default_factory=dict)
    skipped_names: tuple[str, ...] = ()
    links: Mapping[str, str] = field(default_factory=dict)

    @property
    def file_bytes(self) -> int:
        return sum(e.size for e in self.entries if e.kind == "file")


@dataclass(frozen=True)
class Fingerprint:
    """A saved layer tar's size and the digest of its first bytes: enough to
    tell which cached layer a member of the saved stream is, before reading it."""

    size: int
    head_sha256: str


# The fingerprint of a layer read from its directory, whose tar is unknown:
# no member of a saved image has it.
NO_FINGERPRINT = Fingerprint(-1, "")


@dataclass(frozen=True)
class CachedLayer:
    """A layer as the cache kept it, with its diff id and its tar's fingerprint."""

    diff_id: str
    layer: Layer
    fingerprint: Fingerprint
    # Names the rules that chose the files hashed (see `read_image`).
    hash_rules: str = ""


def layer_of(records: Iterable[Record]) -> Layer:
    """The layer read as `records`, once their digests are known."""
    built = build_entries(records)
    return Layer(
        entries=tuple(built.entries.values()),
        deleted=tuple(built.deleted),
        opaque=tuple(built.opaque),
        contents=built.contents,
        skipped_names=tuple(built.skipped_names),
        links=built.links,
    )


def fit(layer: Layer, wants_hash: WantsHash) -> Layer | None:
    """A cached layer as reading it now would give it; None if it lacks a hash.

    Hashes that `wants_hash` does not ask for are left out, as a fresh read
    leaves them out, and hard links take their file's hash again.
    """
    fitted: dict[str, Entry] = {}
    for entry in layer.entries:
        target = layer.links.get(entry.path)
        if target is not None:
            entry = _relinked(entry, fitted.get(target))
        elif _hashed_if_wanted(entry):
            wanted = wants_hash(entry.path)
            if wanted and not entry.sha256:
                return None
            if entry.sha256 and not wanted:
                entry = entry._replace(sha256="")
        fitted[entry.path] = entry
    return replace(layer, entries=tuple(fitted.values()))


def _hashed_if_wanted(entry: Entry) -> bool:
    """Whether a fresh read hashes this file only when `wants_hash` says so."""
    if entry.kind != "file" or entry.mode & 0o111:
        return False
    return not keeps_content(entry.path, entry.size)


def _relinked(entry: Entry, target: Entry | None) -> Entry:
    if target is None or target.kind != "file" or entry.kind != "file":
        return entry
    return entry._replace(sha256=target.sha256)


def apply_layers(layers: Iterable[Layer]) -> FileSystem:
    """The merged file system of layers applied bottom first, as overlayfs shows it."""
    merged = _Merged()
    for layer in layers:
        merged.apply(layer)
    # An export of a container has no entry for the root itself.
    merged.entries.pop("/", None)
    return FileSystem(merged.entries, merged.contents, list(merged.skipped))


class _Merged:
    """Entries by path, with each directory's children, so that a whiteout or
    an opaque directory removes a subtree without a scan of every path.

    The children are indexed only when something is first removed: most
    images remove nothing, and indexing costs a step for every path.
    """

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.contents: dict[str, bytes] = {}
        self.skipped: dict[str, None] = {}
        self._children: dict[str, set[str]] | None = None

    def apply(self, layer: Layer) -> None:
        # A layer's whiteouts hide what is below it, never its own entries,
        # which may come before them in the tar.
        for path in layer.opaque:
            self._remove_below(path)
        for path in layer.deleted:
            self._remove(path)
        for entry in layer.entries:
            self._put(entry, layer.contents.get(entry.path))
        for name in layer.skipped_names:
            self._adopt(name)
            self.skipped[name] = None

    def _put(self, entry: Entry, content: bytes | None) -> None:
        old = self.entries.get(entry.path)
        if old is None:
            self._adopt(entry.path)
        elif old.kind == "dir" and entry.kind != "dir":
            self._remove_below(entry.path)
        self.entries[entry.path] = entry
        if content is None:
            self.contents.pop(entry.path, None)
        else:
            self.contents[entry.path] = content

    def _adopt(self, path: str) -> None:
        if self._children is None:
            return  # indexed with every other path when first needed
        parent = posixpath.dirname(path)
        if parent != path:
            self._children.setdefault(parent, set()).add(path)

    def _index(self) -> dict[str, set[str]]:
        if self._children is None:
            self._children = {}
            for path in (*self.entries, *self.skipped):
                self._adopt(path)
        return self._children

    def _remove(self, path: str) -> None:
        self._forget(path)
        siblings = self._index().get(posixpath.dirname(path))
        if siblings is not None:
            siblings.discard(path)
        self._remove_below(path)

    def _remove_below(self, path: str) -> None:
        children = self._index()
        pending = list(children.pop(path, ()))
        while pending:
            below = pending.pop()
            self._forget(below)
            pending.extend(children.pop(below, ()))

    def _forget(self, path: str) -> None:
        self.entries.pop(path, None)
        self.contents.pop(path, None)
        self.skipped.pop(path, None)


def _ignore(size: int) -> None:
    """Progress that nobody watches."""


def _say_nothing(note: str) -> None:
    """Notes that nobody reads."""


def read_image(
    engine: ImageSaver,
    image_id: str,
    wants_hash: WantsHash,
    cache: LayerCache | None = None,
    on_bytes: Callable[[int], None] = _ignore,
    *,
    diff_ids: Sequence[str] | None = None,
    directories: Sequence[Path] | None = None,
    pool: HashPool | None = None,
    on_note: Callable[[str], None] = _say_nothing,
    hash_rules: str = "",
) -> FileSystem:
    """Read an image's file system layer by layer, hashing what is asked.

    Layers found in `cache` are not hashed again, and when all of them are
    there the engine is not asked for any; layers hashed now are added to
    it. The others are read from `directories`, the layers' directories in
    the engine's storage (`gsc.layerdirs`), when given, and otherwise from
    the saved image. `diff_ids` are the image's layers as `docker inspect`
    lists them (asked of the engine when not given). `on_bytes` counts the
    bytes of the files read, or found in the cache; `on_note` hears why the
    directories were given up, if they were.

    `hash_rules`, when given, names what `wants_hash` asks for (such as
    `Choices.hash_rules`): a cached layer read under the same name is taken
    as it is, without asking `wants_hash` about each of its files again.
    """
    if diff_ids is None:
        inspected = engine.inspect_image(image_id)
        diff_ids = (inspected.get("RootFS") or {}).get("Layers") or []
    own = pool is None
    pool = pool if pool is not None else HashPool()
    try:
        reading = _Reading(
            engine, image_id, wants_hash, hash_rules, cache, pool, on_bytes
        )
        layers = reading.layers(
            tuple(str(d) for d in diff_ids),
            None if directories is None else tuple(directories),
        )
        if reading.fallback:
            on_note(reading.fallback)
    finally:
        if own:
            pool.close()
    return apply_layers(layers)


@dataclass
class _Pass:
    """What one pass over the saved image found."""

    parsed: dict[str, Layer] = field(default_factory=dict)
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)
    # Legacy layer ids whose layer.tar links to another id's: same content.
    links: dict[str, str] = field(default_factory=dict)
    documents: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class _Chain:
    """The image's layers, bottom first: their keys and their diff ids."""

    keys: tuple[str, ...]
    diff_ids: tuple[str, ...]


class _Reading:
    """One read of an image: what the cache holds of its layers, then a pass
    over its saved stream for the others, and a second pass only if a layer
    was taken for a cached one that it turns out not to be."""

    def __init__(
        self,
        engine: ImageSaver,
        image_id: str,
        wants_hash: WantsHash,
        hash_rules: str,
        cache: LayerCache | None,
        pool: HashPool,
        on_bytes: Callable[[int], None],
    ) -> None:
        self._engine = engine
        self._image_id = image_id
        self._wants_hash = wants_hash
        self._hash_rules = hash_rules
        self._cache = cache
        self._pool = pool
        self._on_bytes = on_bytes
        self._cached: dict[str, CachedLayer] = {}
        self._unclaimed: dict[str, CachedLayer] = {}
        # Why the layer directories were given up for the saved image.
        self.fallback = ""

    def layers(
        self, diff_ids: tuple[str, ...], directories: tuple[Path, ...] | None
    ) -> list[Layer]:
        self._cached = self._from_cache(diff_ids)
        if diff_ids and all(d in self._cached for d in diff_ids):
            for diff_id in diff_ids:
                self._on_bytes(self._cached[diff_id].layer.file_bytes)
            return [self._cached[d].layer for d in diff_ids]
        if directories is not None and len(directories) == len(diff_ids):
            try:
                return self._from_directories(diff_ids, directories)
            except StorageChanged as err:
                self._pool.wait()
                self.fallback = f"{err}; reading the saved image instead"
        return self._from_saved_image(diff_ids)

    def _from_directories(
        self, diff_ids: tuple[str, ...], directories: tuple[Path, ...]
    ) -> list[Layer]:
        walks: dict[str, LayerWalk] = {}
        for diff_id, directory in zip(diff_ids, directories, strict=True):
            if diff_id in self._cached:
                self._on_bytes(self._cached[diff_id].layer.file_bytes)
            elif diff_id not in walks:
                walks[diff_id] = walk_directory(
                    directory, self._wants_hash, self._pool, self._on_bytes
                )
        hash_files(self._pool, walks.values())
        self._pool.wait()
        for diff_id in list(walks):
            # A walk holds a host path and a worker's part for each file: it
            # is let go as soon as its layer is built, before the next one.
            layer = layer_of(walks.pop(diff_id).records())
            if self._cache is not None:
                self._cache.store(diff_id, layer, NO_FINGERPRINT, self._hash_rules)
            self._cached[diff_id] = CachedLayer(diff_id, layer, NO_FINGERPRINT)
        return [self._cached[d].layer for d in diff_ids]

    def _from_saved_image(self, diff_ids: tuple[str, ...]) -> list[Layer]:
        self._unclaimed = dict(self._cached)
        found = self._pass(only=None)
        chain = _chain(found.documents, self._image_id)
        missing = self._missing(found, chain)
        if missing:
            self._unclaimed = {}
            again = self._pass(only=missing)
            found.parsed.update(again.parsed)
            found.fingerprints.update(again.fingerprints)
        return self._chain_layers(found, chain)

    def _from_cache(self, diff_ids: tuple[str, ...]) -> dict[str, CachedLayer]:
        found: dict[str, CachedLayer] = {}
        if self._cache is None:
            return found
        for diff_id in diff_ids:
            cached = self._cache.load(diff_id)
            if cached is None:
                continue
            if self._hash_rules and cached.hash_rules == self._hash_rules:
                # Read under the same rules: already as a fresh read gives it.
                found[diff_id] = cached
                continue
            layer = fit(cached.layer, self._wants_hash)
            if layer is not None:
                found[diff_id] = replace(cached, layer=layer)
        return found

    def _chain_layers(self, found: _Pass, chain: _Chain) -> list[Layer]:
        layers: list[Layer] = []
        for key, diff_id in zip(chain.keys, chain.diff_ids, strict=True):
            layer = self._layer_at(found, key, diff_id)
            if layer is None:
                raise ImageError(
                    f"image {_short(self._image_id)}: layer {_short(key)} is missing"
                    " from what the engine saved"
                )
            if diff_id not in self._cached and self._cache is not None:
                fingerprint = found.fingerprints[_source(found, key)]
                self._cache.store(diff_id, layer, fingerprint, self._hash_rules)
                self._cached[diff_id] = CachedLayer(diff_id, layer, fingerprint)
            layers.append(layer)
        return layers

    def _layer_at(self, found: _Pass, key: str, diff_id: str) -> Layer | None:
        cached = self._cached.get(diff_id)
        if cached is not None:
            return cached.layer
        return found.parsed.get(_source(found, key))

    def _missing(self, found: _Pass, chain: _Chain) -> frozenset[str]:
        return frozenset(
            _source(found, key)
            for key, diff_id in zip(chain.keys, chain.diff_ids, strict=True)
            if self._layer_at(found, key, diff_id) is None
        )

    def _pass(self, only: frozenset[str] | None) -> _Pass:
        found = _Pass()
        pending: dict[str, list[Record]] = {}
        stream = self._engine.save_image(self._image_id)
        try:
            with open_tar(ChunkStream(stream), compressed=False) as tar:
                for member in tar:
                    self._take(tar, member, found, pending, only)
        except tarfile.TarError as err:
            raise ImageError(
                f"cannot read the saved image {_short(self._image_id)}: {err}"
            ) from err
        self._pool.wait()
        found.parsed = {key: layer_of(records) for key, records in pending.items()}
        return found

    def _take(
        self,
        tar: tarfile.TarFile,
        member: tarfile.TarInfo,
        found: _Pass,
        pending: dict[str, list[Record]],
        only: frozenset[str] | None,
    ) -> None:
        name = posixpath.normpath(member.name)
        key = _layer_key(name)
        if key is None:
            if member.isreg() and _is_document_name(name):
                _keep_document(tar, member, name, found)
            return
        if member.issym() or member.islnk():
            _note_link(member, name, key, found)
            return
        if not member.isreg():
            return
        data = PeekedData(tar, member)
        head = data.peek(_FINGERPRINT_HEAD)
        if name.startswith("blobs/") and head.startswith(b"{"):
            _keep_document(tar, member, name, found, data)
            return
        fingerprint = Fingerprint(member.size, hashlib.sha256(head).hexdigest())
        if (only is not None and key not in only) or self._claim(key, fingerprint):
            return
        found.fingerprints[key] = fingerprint
        pending[key] = self._read_layer(key, data)

    def _claim(self, key: str, fingerprint: Fingerprint) -> bool:
        """Whether the member is a cached layer, so that it need not be read.

        A blob named by its digest is one of the image's diff ids or not; any
        other member is taken for the one cached layer of its fingerprint, if
        there is one. The order of the layers, known at the end, confirms it.
        """
        claimed = key if key in self._unclaimed else None
        if claimed is None:
            alike = [
                diff_id
                for diff_id, cached in self._unclaimed.items()
                if cached.fingerprint == fingerprint
            ]
            claimed = alike[0] if len(alike) == 1 else None
        if claimed is None:
            return False
        self._on_bytes(self._unclaimed.pop(claimed).layer.file_bytes)
        return True

    def _read_layer(self, key: str, data: PeekedData) -> list[Record]:
        if data.size == 0:
            return []
        return read_records(
            data,
            self._wants_hash,
            self._pool,
            self._on_bytes,
            layer=True,
            what=f"layer {_short(key)} of image {_short(self._image_id)}",
        )


class PeekedData(MemberData):
    """A member's data whose first bytes can be looked at before it is read."""

    def __init__(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        super().__init__(tar, member)
        self.size = member.size
        self._head = b""

    def peek(self, size: int) -> bytes:
        """The first `size` bytes (fewer if the data is shorter); call it first."""
        if not self._head:
            self._head = super().read(size)
        return self._head

    def read(self, size: int = -1) -> bytes:
        head, self._head = self._head, b""
        if not head:
            return super().read(size)
        if 0 <= size <= len(head):
            self._head = head[size:]
            return head[:size]
        rest = super().read(size - len(head) if size > 0 else -1)
        return head + rest


def _layer_key(name: str) -> str | None:
    """The content-addressed name of the layer a member holds, if it holds one."""
    legacy = _LEGACY_LAYER.match(name)
    if legacy:
        return f"docker-v1:{legacy.group(1)}"
    blob = _BLOB.match(name)
    if blob:
        return f"sha256:{blob.group(1)}"
    return None


def _is_document_name(name: str) -> bool:
    return "/" not in name and name.endswith(".json")


def _keep_document(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    name: str,
    found: _Pass,
    data: MemberData | None = None,
) -> None:
    if member.size <= _DOCUMENT_LIMIT:
        found.documents[name] = (data or MemberData(tar, member)).read()


def _note_link(member: tarfile.TarInfo, name: str, key: str, found: _Pass) -> None:
    if member.issym():
        target = posixpath.normpath(
            posixpath.join(posixpath.dirname(name), member.linkname)
        )
    else:
        target = posixpath.normpath(member.linkname)
    target_key = _layer_key(target)
    if target_key is not None:
        found.links[key] = target_key


def _source(found: _Pass, key: str) -> str:
    """The key whose member holds the layer's tar, following legacy links."""
    seen: set[str] = set()
    while key in found.links and key not in seen:
        seen.add(key)
        key = found.links[key]
    return key


def _chain(documents: Mapping[str, bytes], image_id: str) -> _Chain:
    if "manifest.json" in documents:
        keys, config_name = _docker_manifest(documents, image_id)
    elif "index.json" in documents:
        keys, config_name = _oci_index(documents, image_id)
    else:
        raise ImageError(
            f"image {_short(image_id)}: the engine's saved image has no manifest"
        )
    config = _document(documents, config_name, image_id)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(keys):
        raise ImageError(
            f"image {_short(image_id)}: its config lists {len(diff_ids)} layers,"
            f" its manifest {len(keys)}"
        )
    return _Chain(tuple(keys), tuple(str(d) for d in diff_ids))


def _docker_manifest(
    documents: Mapping[str, bytes], image_id: str
) -> tuple[list[str], str]:
    images = _parse_json(documents["manifest.json"], "manifest.json", image_id)
    if not isinstance(images, list) or not images:
        raise ImageError(f"image {_short(image_id)}: manifest.json lists no image")
    chosen = images[0]
    for image in images:
        if _hex(str(image.get("Config", ""))) == _hex(image_id):
            chosen = image
    keys = []
    for path in chosen.get("Layers") or []:
        key = _layer_key(posixpath.normpath(str(path)))
        if key is None:
            raise ImageError(
                f"image {_short(image_id)}: manifest.json names no layer as {path}"
            )
        keys.append(key)
    return keys, str(chosen.get("Config", ""))


def _oci_index(documents: Mapping[str, bytes], image_id: str) -> tuple[list[str], str]:
    manifests = _manifests(documents, "index.json", image_id, _INDEX_DEPTH)
    if not manifests:
        raise ImageError(f"image {_short(image_id)}: index.json lists no image")
    chosen = manifests[0]
    for manifest in manifests:
        if _hex(str((manifest.get("config") or {}).get("digest", ""))) == _hex(
            image_id
        ):
            chosen = manifest
    keys = [str(layer.get("digest", "")) for layer in chosen.get("layers") or []]
    config = str((chosen.get("config") or {}).get("digest", ""))
    return keys, _blob_name(config)


def _manifests(
    documents: Mapping[str, bytes], name: str, image_id: str, depth: int
) -> list[dict[str, Any]]:
    """The image manifests an OCI index leads to, through nested indexes."""
    document = _document(documents, name, image_id)
    if "layers" in document:
        return [document]
    found: list[dict[str, Any]] = []
    for item in document.get("manifests") or []:
        if depth > 0 and isinstance(item, dict):
            child = _blob_name(str(item.get("digest", "")))
            found += _manifests(documents, child, image_id, depth - 1)
    return found


def _blob_name(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)


def _document(
    documents: Mapping[str, bytes], name: str, image_id: str
) -> dict[str, Any]:
    if name not in documents:
        raise ImageError(
            f"image {_short(image_id)}: {name} is missing from the saved image"
        )
    document = _parse_json(documents[name], name, image_id)
    if not isinstance(document, dict):
        raise ImageError(f"image {_short(image_id)}: {name} is not a JSON object")
    return document


def _parse_json(data: bytes, name: str, image_id: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise ImageError(
            f"image {_short(image_id)}: {name} is not valid JSON ({err})"
        ) from err


def _hex(reference: str) -> str:
    """The hex digest in an image id, a config file name or a blob path."""
    match = re.search(r"[0-9a-f]{64}", reference)
    return match.group(0) if match else reference


def _short(identifier: str) -> str:
    return _hex(identifier)[:12]
