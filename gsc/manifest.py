"""Gramine manifests: load the user's, merge it into ours, validate, serialize.

A manifest is handled as the plain dict that `tomllib` produces: tables are
dicts, arrays are lists. The one exception is the trusted files that GSC
generates, a `HashedFiles`, which reads as its list of tables. Nothing here
talks to a container engine.
"""

from __future__ import annotations

import copy
import functools
import itertools
import operator
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, overload

import jsonschema
import tomli_w

from gsc.errors import ManifestError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

Manifest = dict[str, Any]
KeyPath = tuple[str | int, ...]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_QUOTE_LIMIT = 80
_COMMAND_LINE_KEYS = ("argv", "argv_src_file", "insecure__use_cmdline_argv")
_SEARCH_LIST_VARIABLES = ("PATH", "LD_LIBRARY_PATH", "LD_PRELOAD")
_SIZE_PATTERN = re.compile(r"([0-9]+)([KMG]?)")
_SIZE_SCALE = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
# The arrays of the sgx table that list files: they can hold an entry for
# every file of the image, so they are checked and written with care for speed.
_FILE_LISTS = ("trusted_files", "allowed_files")


@dataclass(frozen=True)
class TrustedFile:
    """One `sgx.trusted_files` entry: a URI and, when known, its SHA-256."""

    uri: str
    sha256: str | None = None

    def as_entry(self) -> str | dict[str, str]:
        """The manifest form: a `{uri, sha256}` table, or the bare URI if unhashed."""
        return _trusted_entry(self.uri, self.sha256)


def _trusted_entry(uri: str, sha256: str | None) -> str | dict[str, str]:
    if sha256 is None:
        return uri
    return {"uri": uri, "sha256": sha256}


class HashedFiles(Sequence[dict[str, str]]):
    """`sgx.trusted_files` as GSC generates it: a `{uri, sha256}` table for
    each file, kept as a column of paths and a column of hashes.

    There is a table for every file of the image. As dicts, with their
    `file:` URIs, they would take about 300 bytes a file, and each check of
    the list would look at every one of them; the columns share the paths
    and hashes of the image's entries. It reads as the list of tables (each
    a new dict) and equals it, and it is never changed: merging filters it
    into a new one. Writing and checking take the columns directly.
    """

    __slots__ = ("hashes", "paths")

    def __init__(self, paths: Iterable[str], hashes: Iterable[str]) -> None:
        self.paths = list(paths)
        self.hashes = list(hashes)
        if len(self.paths) != len(self.hashes):
            raise ValueError("as many paths as hashes are needed")

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, index: int) -> dict[str, str]: ...

    @overload
    def __getitem__(self, index: slice) -> HashedFiles: ...

    def __getitem__(self, index: int | slice) -> dict[str, str] | HashedFiles:
        if isinstance(index, slice):
            return HashedFiles(self.paths[index], self.hashes[index])
        return _hashed_table(self.paths[index], self.hashes[index])

    def __iter__(self) -> Iterator[dict[str, str]]:
        return map(_hashed_table, self.paths, self.hashes)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HashedFiles):
            return self.paths == other.paths and self.hashes == other.hashes
        if isinstance(other, list):
            return len(other) == len(self) and all(map(operator.eq, self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"HashedFiles({len(self)} files)"

    def without(self, uris: frozenset[str]) -> HashedFiles:
        """The files but those of `uris`."""
        if not uris:
            return self
        kept = [i for i, path in enumerate(self.paths) if "file:" + path not in uris]
        return HashedFiles(
            [self.paths[i] for i in kept], [self.hashes[i] for i in kept]
        )


def _hashed_table(path: str, sha256: str) -> dict[str, str]:
    return {"uri": "file:" + path, "sha256": sha256}


# ---------------------------------------------------------------------------
# Loading and serializing


def load_user_manifest(path: Path | None) -> Manifest:
    """Read the user's TOML manifest; no path, or a file with no keys, gives {}."""
    if path is None:
        return {}
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ManifestError(f"cannot read the user manifest {path}: {reason}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ManifestError(
            f"user manifest {path}: not valid UTF-8 (byte 0x{data[error.start]:02x} "
            f"on line {line}); save the file as UTF-8"
        ) from None
    return _parse(text.removeprefix("\ufeff"), f"user manifest {path}")


def loads(text: str) -> Manifest:
    """Parse manifest text."""
    return _parse(text, "manifest")


def dumps(manifest: Manifest) -> str:
    """Serialize a manifest the way Gramine's own tools write it (tomli-w)."""
    return "".join(dump_pieces(manifest))


def dump_pieces(manifest: Manifest) -> list[str]:
    """The text that `dumps` returns, in pieces to be written one after
    another.

    Most pieces are strings of the manifest itself, a few for each trusted
    file: a large image's manifest text is never held whole.
    """
    _check_values(manifest)
    return _toml_pieces(manifest)


def _parse(text: str, source: str) -> Manifest:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(f"{source}: invalid TOML: {error}") from None


# ---------------------------------------------------------------------------
# Writing the file lists
#
# tomli-w takes several microseconds for each entry of an array, and the file
# lists of the sgx table have one for every file of the image. Those lists
# are written here instead, character for character as tomli-w writes them;
# tomli-w writes everything else, and places the lists. The tests compare the
# two writers on many manifests.

# tomli-w writes an array of tables out of line when one of the tables,
# written inline and indented, is longer than this.
_INLINE_LIMIT = 100
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESCAPED = re.compile(r'[\x00-\x08\x0a-\x1f\x7f"\\]')
_TOML_ESCAPES = {
    "\b": "\\b",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def _toml_pieces(manifest: Manifest) -> list[str]:
    """`tomli_w.dumps(manifest)` in pieces, made faster for long file lists.

    Each file list is swapped for a stand-in that tomli-w writes in the same
    form (inline, or as an array of tables) and so in the same place; then
    the stand-in's text is replaced with the list's.
    """
    sgx = manifest.get("sgx")
    if not isinstance(sgx, dict):
        return [tomli_w.dumps(manifest)]
    stand_ins: dict[str, Any] = {}
    replacements: list[tuple[str, list[str]]] = []
    for key in _FILE_LISTS:
        entries = sgx.get(key)
        written = None
        if type(entries) is list or type(entries) is HashedFiles:
            written = _write_file_list(key, entries)
        if written is not None:
            stand_ins[key], stand_in_text, pieces = written
            replacements.append((stand_in_text, pieces))
    text = tomli_w.dumps({**manifest, "sgx": {**sgx, **stand_ins}})
    located = sorted(
        (text.index(stand_in_text), stand_in_text, pieces)
        for stand_in_text, pieces in replacements
    )
    parts: list[str] = []
    start = 0
    for at, stand_in_text, pieces in located:
        parts.append(text[start:at])
        parts += pieces
        start = at + len(stand_in_text)
    parts.append(text[start:])
    return parts


def _write_file_list(
    key: str, entries: list[Any] | HashedFiles
) -> tuple[Any, str, list[str]] | None:
    """A stand-in for the file list `sgx.<key>`, its text, and the pieces of
    the list's text.

    None when the list holds anything but strings and tables of strings.
    """
    # NUL is escaped as \u0000, and no manifest string can hold it, so the
    # stand-in's text is found nowhere else; twenty of them make a table too
    # long to be written inline.
    marker = "\0" * 20 + key
    header = f"[[sgx.{key}]]\n"
    stand_in: Any = [{"gsc": marker}]
    stand_in_text = f"{header}gsc = {_toml_string(marker)}\n"
    pieces = _write_hashed_files(header, entries)
    if pieces is not None:
        return stand_in, stand_in_text, pieces
    if entries and all(type(entry) is dict for entry in entries):
        tables = _write_tables(entries)
        if tables is None:
            return None
        inline = (f"    {_inline_table(lines)}," for lines in tables)
        if any(len(line) > _INLINE_LIMIT for line in inline):
            text = "\n".join(header + lines for lines in tables)
            return stand_in, stand_in_text, [text]
    items = [_write_inline(entry) for entry in entries]
    if None in items:
        return None
    text = "".join(f"    {item},\n" for item in items)
    return marker, _toml_string(marker), [f"[\n{text}]" if text else "[]"]


def _write_tables(entries: Iterable[Any]) -> list[str] | None:
    """The `key = value` lines of each table; None if one is not all strings."""
    tables = []
    for entry in entries:
        pairs = _write_pairs(entry)
        if pairs is None:
            return None
        tables.append("".join(pairs))
    return tables


def _write_hashed_files(
    header: str, entries: list[Any] | HashedFiles
) -> list[str] | None:
    """The text of a list of hashed files (see _hashed_files) written at once,
    out of line, in pieces to be joined; None if a string in it needs
    escapes, or if tomli-w would write the list inline (never with a SHA-256
    in each table)."""
    if isinstance(entries, HashedFiles):
        # The URIs are written as `file:` and the path.
        scheme, names, hashes = "file:", entries.paths, entries.hashes
    else:
        found = _hashed_files(entries)
        if found is None:
            return None
        scheme, (names, hashes) = "", found
    if not names or any(_TOML_ESCAPED.search("".join(s)) for s in (names, hashes)):
        return None
    # The longest table, written inline, is the longest URI and hash.
    longest = max(map(operator.add, map(len, names), map(len, hashes)))
    if len(_inline_hashed_file(scheme, "")) + longest <= _INLINE_LIMIT:
        return None
    # Each table is `header`uri = "U"\nsha256 = "H"\n, with an empty line
    # between two tables. The pieces are the URIs (or paths) and hashes
    # themselves and the same few strings between them: a few pointers for
    # each file, where a string for each table would take a copy of all of
    # its text.
    pieces = ['"\nsha256 = "'] * (4 * len(names))
    pieces[0::4] = names
    pieces[2::4] = hashes
    pieces[3::4] = ['"\n\n' + header + 'uri = "' + scheme] * len(names)
    pieces[0] = f'{header}uri = "{scheme}{names[0]}'
    pieces[-1] = '"\n'
    return pieces


def _inline_hashed_file(uri: str, sha256: str) -> str:
    """A hashed file's table as tomli-w writes it in an inline array."""
    return f'    {{ uri = "{uri}", sha256 = "{sha256}" }},'


def _hashed_files(entries: Any) -> tuple[list[str], list[str]] | None:
    """The URIs and hashes of a list in which every entry is a table of a
    string `uri` then a string `sha256`; None for any other value.

    That is the form of the trusted files GSC generates, one for each file
    of the image, so writing and checking handle such a list in one go.
    """
    if type(entries) is not list or not all(
        type(entry) is dict and tuple(entry) == _HASHED_FILE_KEYS for entry in entries
    ):
        return None
    uris = [entry["uri"] for entry in entries]
    hashes = [entry["sha256"] for entry in entries]
    if not set(map(type, uris)) <= {str} or not set(map(type, hashes)) <= {str}:
        return None
    return uris, hashes


_HASHED_FILE_KEYS = ("uri", "sha256")


def _write_pairs(table: dict[Any, Any]) -> list[str] | None:
    """The `key = value` lines of a table of strings; None for another table."""
    pairs = []
    for key, value in table.items():
        if type(key) is not str or type(value) is not str:
            return None
        pairs.append(f"{_toml_key(key)} = {_toml_string(value)}\n")
    return pairs


def _write_inline(entry: Any) -> str | None:
    if type(entry) is str:
        return _toml_string(entry)
    pairs = _write_pairs(entry) if type(entry) is dict else None
    return None if pairs is None else _inline_table("".join(pairs))


def _inline_table(lines: str) -> str:
    """The inline form of a table written as `key = value` lines; the
    strings in them hold no newline, which is escaped."""
    if not lines:
        return "{}"
    return "{ " + lines.rstrip("\n").replace("\n", ", ") + " }"


@functools.lru_cache(maxsize=1024)
def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    """A basic string, with the escapes tomli-w uses."""
    if _TOML_ESCAPED.search(text) is None:
        return f'"{text}"'
    return '"' + _TOML_ESCAPED.sub(_toml_escape, text) + '"'


def _toml_escape(match: re.Match[str]) -> str:
    char = match[0]
    return _TOML_ESCAPES.get(char) or f"\\u{ord(char):04x}"


# ---------------------------------------------------------------------------
# Merging


def merge(generated: Manifest, user: Manifest) -> Manifest:
    """Merge the user's manifest into the generated one; neither input is changed.

    The result may hold the inputs' own `{uri, sha256}` tables of trusted
    files (there is one for every file of the image): change them in none.

    1. Tables merge key by key, recursively. Any other value given on both
       sides is taken from the user's manifest: the user is explicit.
    2. `loader.env.PATH`, `LD_LIBRARY_PATH` and `LD_PRELOAD`, when the user
       gives a plain string, are joined with `:`: the generated directories
       first (the image's own order, with Gramine's runtime library directory
       leading), then the user's ones that are not already listed. Empty and
       repeated components are dropped; `LD_PRELOAD` may also be separated by
       whitespace. A table such as `{passthrough = true}` or `{value = "..."}`
       replaces the generated value instead.
    3. `sgx.trusted_files`: the user's entries first, then the generated ones,
       one entry per URI (the first one kept). If one side gives only the URI
       and the other also a hash, the hash is kept; two different hashes for
       one URI are an error. Entries come out as `{uri, sha256}` tables when
       the hash is known, as the bare URI otherwise. A URI that the user lists
       in `sgx.allowed_files` is removed from the trusted files: an allowed
       file is never hashed.
    4. `sgx.allowed_files`: the user's URIs first, then the generated ones not
       already listed.
    5. `fs.mounts`: the user's mounts first, then the generated mounts whose
       `path` the user does not mount: for a given path, the user's mount wins.
    6. `loader.argv`, `loader.argv_src_file` and
       `loader.insecure__use_cmdline_argv = true` are three ways to give the
       command line, and Gramine accepts only one. If the user gives one, the
       generated ones are dropped; giving more than one is an error.
    7. Any other array given on both sides is the user's array, unchanged.
    """
    sources = _command_line_sources(user.get("loader"))
    if len(sources) > 1:
        raise ManifestError(
            f"user manifest key 'loader.{sources[1]}': cannot be used together "
            f"with 'loader.{sources[0]}'; Gramine takes the command line from "
            "one source only, keep one"
        )
    if sources:
        generated = _without_command_line(generated)

    merged = _merge_tables(generated, user, ())
    _finish_trusted_files(merged, _user_allowed_files(user))
    return merged


def env_list(value: str, *, whitespace: bool = False) -> list[str]:
    """Split a `:`-separated search list into its non-empty components."""
    separator = r"[:\s]+" if whitespace else ":"
    return [part for part in re.split(separator, value) if part]


def _merge_tables(generated: Manifest, user: Manifest, path: KeyPath) -> Manifest:
    merged: Manifest = {}
    for key, value in generated.items():
        if key in user:
            merged[key] = _merge_value(value, user[key], (*path, key))
        elif isinstance(value, dict):
            # Walked rather than copied whole, for the trusted files below.
            merged[key] = _merge_tables(value, {}, (*path, key))
        elif (*path, key) == _TRUSTED_FILES and isinstance(value, list | HashedFiles):
            # Not copied: _finish_trusted_files builds each entry anew, and
            # there can be one for every file of the image.
            merged[key] = value
        else:
            merged[key] = copy.deepcopy(value)
    for key, value in user.items():
        if key not in generated:
            merged[key] = _merge_value(None, value, (*path, key))
    return merged


def _merge_value(generated: Any, user: Any, path: KeyPath) -> Any:
    # A user value with no counterpart still goes through the same rules, with
    # an empty generated side, so that merging the result again changes nothing.
    if isinstance(user, dict):
        base = generated if isinstance(generated, dict) else {}
        return _merge_tables(base, user, path)
    list_merger = _LIST_MERGERS.get(path)
    if list_merger is not None and isinstance(user, list):
        listed = generated if isinstance(generated, list | HashedFiles) else []
        return list_merger(listed, user)
    if isinstance(user, str) and _is_search_list(path):
        known = generated if isinstance(generated, str) else ""
        return _join_search_list(str(path[-1]), known, user)
    return copy.deepcopy(user)


def _is_search_list(path: KeyPath) -> bool:
    return (
        len(path) == 3
        and path[:2] == ("loader", "env")
        and path[2] in _SEARCH_LIST_VARIABLES
    )


def _join_search_list(name: str, generated: str, user: str) -> str:
    whitespace = name == "LD_PRELOAD"
    parts = env_list(generated, whitespace=whitespace)
    parts += env_list(user, whitespace=whitespace)
    return ":".join(_unique(parts))


def _merge_trusted_lists(
    generated: list[Any] | HashedFiles, user: list[Any]
) -> list[Any]:
    return _combine_trusted_files([*user, *generated], excluded=frozenset())


def _merge_allowed_files(generated: list[Any], user: list[Any]) -> list[Any]:
    return copy.deepcopy(_unique([*user, *generated]))


def _merge_mounts(generated: list[Any], user: list[Any]) -> list[Any]:
    user_paths = {path for path in map(_mount_path, user) if path is not None}
    kept = [
        mount
        for mount in generated
        if _mount_path(mount) not in user_paths and mount not in user
    ]
    return copy.deepcopy([*user, *kept])


def _mount_path(mount: Any) -> str | None:
    if isinstance(mount, dict) and isinstance(mount.get("path"), str):
        return str(mount["path"])
    return None


_TRUSTED_FILES: KeyPath = ("sgx", "trusted_files")
_ListMerger = Callable[[Any, list[Any]], list[Any]]
_LIST_MERGERS: dict[KeyPath, _ListMerger] = {
    _TRUSTED_FILES: _merge_trusted_lists,
    ("sgx", "allowed_files"): _merge_allowed_files,
    ("fs", "mounts"): _merge_mounts,
}


def _unique(items: Iterable[Any]) -> list[Any]:
    """Items in order with repeats removed; works for unhashable items too."""
    kept: list[Any] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, str):
            if item in seen:
                continue
            seen.add(item)
        elif item in kept:
            continue
        kept.append(item)
    return kept


def _command_line_sources(loader: Any) -> list[str]:
    if not isinstance(loader, dict):
        return []
    return [
        key
        for key in _COMMAND_LINE_KEYS
        if key in loader
        and (key != "insecure__use_cmdline_argv" or loader[key] is True)
    ]


def _without_command_line(manifest: Manifest) -> Manifest:
    loader = manifest.get("loader")
    if not isinstance(loader, dict):
        return manifest
    kept = {k: v for k, v in loader.items() if k not in _COMMAND_LINE_KEYS}
    return {**manifest, "loader": kept}


def _user_allowed_files(user: Manifest) -> frozenset[str]:
    sgx = user.get("sgx")
    allowed = sgx.get("allowed_files") if isinstance(sgx, dict) else None
    if not isinstance(allowed, list):
        return frozenset()
    return frozenset(uri for uri in allowed if isinstance(uri, str))


def _finish_trusted_files(merged: Manifest, excluded: frozenset[str]) -> None:
    # Also runs when only the generated side lists trusted files, so the
    # result is always in normal form and free of allowed files.
    sgx = merged.get("sgx")
    if not isinstance(sgx, dict):
        return
    entries = sgx.get("trusted_files")
    if isinstance(entries, HashedFiles):
        if _each_once(entries.paths):
            # Each file once, with its hash: already in normal form.
            sgx["trusted_files"] = entries.without(excluded)
            return
        entries = list(entries)
    if isinstance(entries, list):
        sgx["trusted_files"] = _combine_trusted_files(entries, excluded)


def _combine_trusted_files(entries: list[Any], excluded: frozenset[str]) -> list[Any]:
    # Plain URIs and hashes rather than TrustedFile objects: this runs for
    # every file of the image, twice when the user lists trusted files too.
    found = _hashed_files(entries)
    if found is not None and _each_once(found[0]):
        # Each URI once, each with a hash: nothing to combine, and each table
        # already in normal form. The tables are taken, not copied: a large
        # image has one for every file, and copies would be held beside them
        # for the rest of the merge.
        if not excluded:
            return list(entries)
        uris = found[0]
        return [e for e, u in zip(entries, uris, strict=True) if u not in excluded]
    hashes: dict[str, str | None] = {}
    slots: list[str | Any] = []
    malformed: list[Any] = []
    for entry in entries:
        parsed = _parse_trusted_file(entry)
        if parsed is None:
            # Left in place for validate() to report with its key path.
            if entry not in malformed:
                malformed.append(entry)
                slots.append(_Malformed(entry))
            continue
        uri, sha256 = parsed
        if uri in excluded:
            continue
        if uri not in hashes:
            slots.append(uri)
            hashes[uri] = sha256
        elif sha256 is not None:
            hashes[uri] = _reconcile(uri, hashes[uri], sha256)
    if not malformed:  # then the URIs are the slots, in order
        return [_trusted_entry(uri, sha256) for uri, sha256 in hashes.items()]
    return [_slot_entry(slot, hashes) for slot in slots]


@dataclass(frozen=True)
class _Malformed:
    entry: Any


def _slot_entry(slot: str | _Malformed, hashes: dict[str, str | None]) -> Any:
    if isinstance(slot, _Malformed):
        return copy.deepcopy(slot.entry)
    return _trusted_entry(slot, hashes[slot])


def _parse_trusted_file(entry: Any) -> tuple[str, str | None] | None:
    """The URI and hash of a well-formed trusted-file entry; None otherwise."""
    if isinstance(entry, str):
        return entry, None
    if not isinstance(entry, dict) or not entry.keys() <= _TRUSTED_FILE_KEYS:
        return None
    uri, sha256 = entry.get("uri"), entry.get("sha256")
    if isinstance(uri, str) and (sha256 is None or isinstance(sha256, str)):
        return uri, sha256
    return None


_TRUSTED_FILE_KEYS = frozenset({"uri", "sha256"})


def _reconcile(uri: str, known: str | None, new: str) -> str:
    """The hash of a URI listed again, with the hash `new` this time."""
    if known is not None and known != new:
        raise ManifestError(
            f"manifest key 'sgx.trusted_files': {_quote(uri)} is listed with "
            f"two different SHA-256 hashes, {known} and {new}; keep one"
        )
    return new


# ---------------------------------------------------------------------------
# The schema that `gramine-manifest-check` enforces in Gramine v1.9


def _table(properties: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def _enum(*choices: str) -> dict[str, Any]:
    return {"enum": list(choices)}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _range(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


def _pattern(regex: str, description: str) -> dict[str, Any]:
    # `\Z`, not `$`: jsonschema matches with Python's re, where `$` also
    # matches before a final newline.
    return {"type": "string", "pattern": regex, "description": description}


_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer"}
_SIZE = _pattern(r"^[0-9]+[KMG]?\Z", "a size: digits with an optional K, M or G")
_SHA256 = _pattern(r"^[0-9a-f]{64}\Z", "a SHA-256 hash of 64 lowercase hex digits")
_FILE_URI = _pattern("^file:", "a 'file:' URI")
_ALLOWED_URI = _pattern("^(file|dev):", "a 'file:' or 'dev:' URI")

_TRUSTED_FILE = {
    "type": ["string", "object"],
    "pattern": "^file:",
    "properties": {"uri": _FILE_URI, "sha256": _SHA256},
    "required": ["uri"],
    "additionalProperties": False,
    "description": "a 'file:' URI, as a string or in a {uri, sha256} table",
}

_ENV_VALUE = {
    "type": ["string", "object"],
    "properties": {"value": _STRING, "passthrough": {"const": True}},
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
    "description": 'a string, {value = "..."} or {passthrough = true}',
}

# Keys of each file system type besides `type` (and `path` for a mount).
_FS_TYPES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "chroot": ({"uri": _STRING}, ("uri",)),
    "encrypted": (
        {"uri": _STRING, "key_name": _STRING, "enable_recovery": _BOOL},
        ("uri",),
    ),
    "tmpfs": ({"uri": _STRING}, ()),
    "untrusted_shm": ({"uri": _STRING}, ("uri",)),
}


def _file_system(is_mount: bool) -> dict[str, Any]:
    """`fs.root` or one `fs.mounts` entry: the keys allowed depend on `type`."""
    branches = []
    for kind, (properties, required) in _FS_TYPES.items():
        keys = {"type": _STRING, **properties}
        needed = list(required)
        if is_mount:
            keys["path"] = _STRING
            needed.append("path")
        # `type` may be left out only for chroot, the default.
        condition: dict[str, Any] = {"properties": {"type": {"const": kind}}}
        if kind != "chroot":
            condition["required"] = ["type"]
        branches.append({"if": condition, "then": _table(keys, needed)})
    return {
        "type": "object",
        "properties": {"type": _enum(*_FS_TYPES)},
        "allOf": branches,
    }


_FS = _table(
    {
        "mounts": _array(_file_system(is_mount=True)),
        "root": _file_system(is_mount=False),
        "start_dir": _STRING,
        "insecure__keys": {"type": "object", "additionalProperties": _STRING},
    },
    required=["mounts"],
)

_LIBOS = _table(
    {"entrypoint": _STRING, "check_invalid_pointers": _BOOL},
    required=["entrypoint"],
)

_LOADER = _table(
    {
        "entrypoint": _table({"uri": _STRING, "sha256": _SHA256}, ["uri"]),
        "argv": _array(_STRING),
        "argv_src_file": _STRING,
        "env": {"type": "object", "additionalProperties": _ENV_VALUE},
        "env_src_file": _STRING,
        "uid": _INT,
        "gid": _INT,
        "insecure__use_cmdline_argv": _BOOL,
        "insecure__use_host_env": _BOOL,
        "insecure__disable_aslr": _BOOL,
        "log_file": _STRING,
        "log_level": _enum("none", "error", "warning", "debug", "trace", "all"),
    },
    required=["entrypoint"],
)

_XFRM_FEATURE = _enum("unspecified", "disabled", "required")
_SECURE_FEATURE = _enum("disabled", "required")

_SGX = _table(
    {
        "allowed_files": _array(_ALLOWED_URI),
        "cpu_features": _table(
            {
                "avx": _XFRM_FEATURE,
                "avx512": _XFRM_FEATURE,
                "amx": _XFRM_FEATURE,
                "mpx": _SECURE_FEATURE,
                "pkru": _SECURE_FEATURE,
            }
        ),
        "debug": _BOOL,
        "edmm_enable": _BOOL,
        "enable_stats": _BOOL,
        "enclave_size": _SIZE,
        "file_check_policy": _enum("strict", "allow_all_but_log"),
        "insecure__allow_memfaults_without_exinfo": _BOOL,
        "insecure__rpc_thread_num": _INT,
        "isvprodid": _range(0, 0xFFFF),
        "isvsvn": _range(0, 0xFFFF),
        "max_threads": _range(1, 4096),
        "preheat_enclave": _BOOL,
        "profile": _table(
            {
                "enable": _enum("none", "main", "all"),
                "mode": _enum("aex", "ocall_inner", "ocall_outer"),
                "with_stack": _BOOL,
                "frequency": _INT,
            }
        ),
        "remote_attestation": _enum("none", "dcap"),
        "seal_key": _table(
            {"flags_mask": _STRING, "xfrm_mask": _STRING, "misc_mask": _STRING}
        ),
        "trusted_files": _array(_TRUSTED_FILE),
        "use_exinfo": _BOOL,
        "vtune_profile": _BOOL,
    }
)

_SYS = _table(
    {
        "allowed_ioctls": _array(
            _table({"request_code": _INT, "struct": _STRING}, ["request_code"])
        ),
        "brk": _table({"max_size": _SIZE}),
        "disallow_subprocesses": _BOOL,
        "enable_extra_runtime_domain_names_conf": _BOOL,
        "enable_sigterm_injection": _BOOL,
        "experimental__enable_flock": _BOOL,
        "insecure__allow_eventfd": _BOOL,
        # Gramine leaves the layout of ioctl structs unchecked too.
        "ioctl_structs": {"type": "object"},
        "debug__mock_syscalls": _array(
            _table({"name": _STRING, "return": _INT}, ["name"])
        ),
        "stack": _table({"size": _SIZE}),
        "fds": _table({"limit": _INT}),
    }
)

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **_table(
        {"fs": _FS, "libos": _LIBOS, "loader": _LOADER, "sgx": _SGX, "sys": _SYS},
        required=["fs", "libos", "loader"],
    ),
}


def _is_toml_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 4.0 and (in Python) True as integers; TOML does not.
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_toml_array(checker: Any, instance: Any) -> bool:
    return isinstance(instance, list)


_BASE_VALIDATOR = jsonschema.Draft202012Validator
_ManifestValidator = jsonschema.validators.extend(
    _BASE_VALIDATOR,
    type_checker=_BASE_VALIDATOR.TYPE_CHECKER.redefine_many(
        {"integer": _is_toml_integer, "array": _is_toml_array}
    ),
)
_VALIDATOR = _ManifestValidator(MANIFEST_SCHEMA)


# ---------------------------------------------------------------------------
# Validation


def validate(manifest: Manifest) -> None:
    """Check a manifest against Gramine v1.9's rules; raise ManifestError if bad."""
    _check_schema(manifest)
    _check_values(manifest)
    _check_command_line(manifest["loader"])
    _check_enclave_size(manifest.get("sgx", {}))
    _check_trusted_files(manifest.get("sgx", {}).get("trusted_files", []))


def unsafe_options(manifest: Manifest) -> list[str]:
    """Dotted names of the options turned on that weaken the enclave's security."""
    found: set[str] = set()
    _find_insecure_keys(manifest, (), found)
    sgx = manifest.get("sgx")
    if isinstance(sgx, dict):
        if sgx.get("debug") is True:
            found.add("sgx.debug")
        if sgx.get("file_check_policy") == "allow_all_but_log":
            found.add("sgx.file_check_policy")
    return sorted(found)


def _is_on(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str | dict | list):
        return len(value) > 0
    return not (isinstance(value, int | float) and value == 0)


def _find_insecure_keys(value: Any, path: KeyPath, found: set[str]) -> None:
    """Add the dotted name of each `insecure__` key below `value` that is on."""
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).startswith("insecure__") and _is_on(item):
                found.add(_dotted((*path, key)))
            if isinstance(item, dict | list):
                _find_insecure_keys(item, (*path, key), found)
    elif isinstance(value, list) and _hashed_files(value) is None:
        for index, item in enumerate(value):
            if isinstance(item, dict | list):
                _find_insecure_keys(item, (*path, index), found)


def _check_schema(manifest: Manifest) -> None:
    """Raise for the schema error that jsonschema's `best_match` picks.

    The file lists hold an entry per file of the image, and jsonschema takes
    tens of microseconds for each. So the entries that plainly pass (see
    _SOUND_FILE_ENTRY) are taken out of the lists before jsonschema runs. They
    give no errors, so the errors found are the same but for the index of an
    entry in its list, which is mapped back. `best_match` ranks errors by
    their paths, and taking entries out keeps the order of the indices, so it
    picks the same error.
    """
    checked, kept = _without_sound_entries(manifest)
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(checked))
    if error is None:
        return
    path, problem = _schema_problem(error)
    if len(path) > 2 and path[0] == "sgx" and path[1] in kept:
        path = ("sgx", path[1], kept[str(path[1])][int(path[2])], *path[3:])
    _raise_at(path, problem)


def _without_sound_entries(manifest: Manifest) -> tuple[Manifest, dict[str, list[int]]]:
    """The manifest with the sound file-list entries taken out, and the indices
    of the entries kept in each list."""
    sgx = manifest.get("sgx") if isinstance(manifest, dict) else None
    if not isinstance(sgx, dict):
        return manifest, {}
    checked_sgx = dict(sgx)
    kept: dict[str, list[int]] = {}
    for key in _FILE_LISTS:
        entries, is_sound = sgx.get(key), _SOUND_FILE_ENTRY[key]
        if key == "trusted_files" and _all_sound_hashed_files(entries):
            kept[key], checked_sgx[key] = [], []
        elif isinstance(entries, list | HashedFiles):
            kept[key] = [i for i, entry in enumerate(entries) if not is_sound(entry)]
            checked_sgx[key] = [entries[i] for i in kept[key]]
    return {**manifest, "sgx": checked_sgx}, kept


_FILE_URI_PATTERN = re.compile(_FILE_URI["pattern"])
_ALLOWED_URI_PATTERN = re.compile(_ALLOWED_URI["pattern"])
_SHA256_PATTERN = re.compile(_SHA256["pattern"])


def _all_sound_hashed_files(entries: Any) -> bool:
    """Whether `entries` are hashed files (see _hashed_files) that each pass
    _is_sound_trusted_file, tested a list at a time."""
    if isinstance(entries, HashedFiles):
        # Each URI is `file:` and a path.
        return all(map(_SHA256_PATTERN.search, entries.hashes))
    found = _hashed_files(entries)
    if found is None:
        return False
    uris, hashes = found
    return all(map(_FILE_URI_PATTERN.search, uris)) and all(
        map(_SHA256_PATTERN.search, hashes)
    )


def _is_sound_trusted_file(entry: Any) -> bool:
    """Whether the schema surely accepts this `sgx.trusted_files` entry: a
    `file:` URI, or a table of such a `uri` and maybe a well-formed `sha256`."""
    if type(entry) is str:
        return _FILE_URI_PATTERN.search(entry) is not None
    if type(entry) is not dict or not 1 <= len(entry) <= 2:
        return False
    uri, sha256 = entry.get("uri"), entry.get("sha256")
    if type(uri) is not str or _FILE_URI_PATTERN.search(uri) is None:
        return False
    if len(entry) == 1:
        return True
    return type(sha256) is str and _SHA256_PATTERN.search(sha256) is not None


def _is_sound_allowed_file(entry: Any) -> bool:
    """Whether the schema surely accepts this `sgx.allowed_files` entry."""
    return type(entry) is str and _ALLOWED_URI_PATTERN.search(entry) is not None


# For each file list, a test that an entry passes the schema. The tests use
# the schema's own patterns, the way jsonschema applies them (`re.search`),
# and accept nothing but these exact types and keys: a str or dict subclass,
# or any other shape, is left to jsonschema.
_SOUND_FILE_ENTRY: dict[str, Callable[[Any], bool]] = {
    "trusted_files": _is_sound_trusted_file,
    "allowed_files": _is_sound_allowed_file,
}


def _schema_problem(error: Any) -> tuple[KeyPath, str]:
    path: KeyPath = tuple(error.absolute_path)
    kind, schema, value = error.validator, error.schema, error.instance
    if kind == "additionalProperties":
        known = schema.get("properties", {})
        return (*path, next(key for key in value if key not in known)), "unknown key"
    if kind == "required":
        missing = next(key for key in error.validator_value if key not in value)
        return (*path, missing), "missing; Gramine requires this key"
    if kind in ("minimum", "maximum"):
        low, high = schema["minimum"], schema["maximum"]
        return path, f"{value} is out of range {low}..{high}"
    if kind == "enum":
        choices = ", ".join(_show(choice) for choice in error.validator_value)
        return path, f"{_show(value)} is not one of {choices}"
    if "description" in schema:
        return path, f"expected {schema['description']}, got {_describe(value)}"
    if kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else expected
        wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
        return path, f"expected {wanted}, got {_describe(value)}"
    if kind == "const":
        return path, f"expected {_show(error.validator_value)}, got {_show(value)}"
    return path, str(error.message).replace("\n", " ")


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "a boolean",
    "object": "a table",
    "array": "an array",
}


def _check_values(manifest: Manifest) -> None:
    """Every key and value must be one that Gramine's TOML reader accepts."""
    if _all_writable(manifest):
        return
    # Walked again, slowly, for the first problem and its key path.
    for path, value in _walk_values(manifest, ()):
        problem = _value_problem(value)
        if problem:
            _raise_at(path, problem)


def _walk_values(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, Any]]:
    """Every key and value below `value`; a key is reported at its own path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), _Key(key)
            yield from _walk_values(item, (*path, key))
    elif isinstance(value, list | HashedFiles):
        for index, item in enumerate(value):
            yield from _walk_values(item, (*path, index))
    else:
        yield path, value


@dataclass(frozen=True)
class _Key:
    name: Any


def _all_writable(manifest: Manifest) -> bool:
    """Whether _walk_values would find no problem, found quickly.

    The strings, keys included, are gathered and tested in one go: a problem
    in a string is a character, which joining them can neither make nor hide.
    """
    strings: list[str] = []
    if not _gather_strings(manifest, strings):
        return False
    # A few thousand at a time, so that a large image's file list is not
    # copied whole into one more string.
    for start in range(0, len(strings), _STRINGS_AT_ONCE):
        try:
            text = "".join(strings[start : start + _STRINGS_AT_ONCE])
        except TypeError:  # a key that is not a string
            return False
        if text.isascii():  # known without reading: it has no surrogate
            if "\0" in text:
                return False
        elif _UNWRITABLE_CHARACTER.search(text) is not None:
            return False
    return True


_STRINGS_AT_ONCE = 4096


def _gather_strings(value: Any, strings: list[str]) -> bool:
    """Add the keys and strings below `value` to `strings`; False if another
    value there is one that TOML cannot hold."""
    items: Iterable[Any]
    if isinstance(value, dict):
        strings.extend(value)
        items = value.values()
    elif type(value) is HashedFiles:
        # Its URIs are `file:` and a path: the paths hold what they hold.
        strings.extend(_HASHED_FILE_KEYS if value else ())
        strings.extend(value.paths)
        strings.extend(value.hashes)
        return True
    elif isinstance(value, list):
        hashed = _hashed_files(value)
        if hashed is not None:
            strings.extend(_HASHED_FILE_KEYS if value else ())
            strings.extend(hashed[0])
            strings.extend(hashed[1])
            return True
        items = value
    elif isinstance(value, str):
        strings.append(value)
        return True
    else:
        return _value_problem(value) is None
    for item in items:
        # Strings are most items, and are taken without a call.
        if isinstance(item, str):
            strings.append(item)
        elif not _gather_strings(item, strings):
            return False
    return True


_UNWRITABLE_CHARACTER = re.compile(r"[\x00\ud800-\udfff]")


def _value_problem(value: Any) -> str | None:
    if isinstance(value, _Key):
        if not isinstance(value.name, str):
            return f"the key {value.name!r} is not a string"
        problem = _string_problem(value.name)
        return f"the key {problem}" if problem else None
    if isinstance(value, str):
        problem = _string_problem(value)
        return f"the string {problem}" if problem else None
    if isinstance(value, bool | float | datetime | date | time):
        return None
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return None
        return f"{value} does not fit in a 64-bit TOML integer"
    return f"a value of type {type(value).__name__} cannot be written to TOML"


def _string_problem(text: str) -> str | None:
    if "\0" in text:
        return "contains a NUL character, which Gramine cannot load"
    surrogate = next((char for char in text if "\ud800" <= char <= "\udfff"), None)
    if surrogate is not None:
        return (
            f"is not valid Unicode (lone surrogate U+{ord(surrogate):04X}): "
            "manifest text must be UTF-8"
        )
    return None


def _check_command_line(loader: Manifest) -> None:
    sources = _command_line_sources(loader)
    if len(sources) > 1:
        _raise_at(
            ("loader", sources[1]),
            f"cannot be used together with 'loader.{sources[0]}'; Gramine takes "
            "the command line from one source only, keep one",
        )


def _check_enclave_size(sgx: Manifest) -> None:
    size = sgx.get("enclave_size")
    if size is not None and not _is_power_of_two(parse_size(size)):
        _raise_at(
            ("sgx", "enclave_size"),
            f'{_quote(size)} is not a power of two; use a size such as "256M" or "4G"',
        )


def parse_size(text: str) -> int:
    """Bytes in a Gramine size string such as "64M" (suffixes are powers of 1024)."""
    match = _SIZE_PATTERN.fullmatch(text)
    if match is None:
        raise ManifestError(
            f"{_quote(text)} is not a size: use digits with an optional K, M or G"
        )
    return int(match[1]) * _SIZE_SCALE[match[2]]


def _is_power_of_two(number: int) -> bool:
    return number > 0 and number & (number - 1) == 0


def _check_trusted_files(entries: list[Any] | HashedFiles) -> None:
    # Run after the schema check: each entry is a URI, or a table of a string
    # `uri` and maybe a string `sha256`.
    if isinstance(entries, HashedFiles):
        if _each_once_and_no_directory(entries.paths):
            return
    else:
        found = _hashed_files(entries)
        if found is not None and _each_once_and_no_directory(found[0]):
            return
    hashes: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "sha256" not in entry:
            continue
        uri, sha256 = entry["uri"], entry["sha256"]
        if uri.endswith("/"):
            _raise_at(
                ("sgx", "trusted_files", index, "sha256"),
                "a directory URI (ending in '/') cannot have a hash",
            )
        known = hashes.setdefault(uri, sha256)
        if known != sha256:
            _raise_at(
                ("sgx", "trusted_files", index),
                f"{_quote(uri)} is listed again with a different "
                "SHA-256 hash; keep one entry",
            )


# ---------------------------------------------------------------------------
# Messages


def _each_once_and_no_directory(uris: list[str]) -> bool:
    return _each_once(uris) and not any(u.endswith("/") for u in uris)


def _each_once(names: list[str]) -> bool:
    """Whether no string is in `names` twice."""
    # The files GSC generates are in order: each name after the one before
    # shows it, without a set of them all.
    if all(map(operator.lt, names, itertools.islice(names, 1, None))):
        return True
    return len(set(names)) == len(names)


def _raise_at(path: KeyPath, problem: str) -> None:
    if not path:
        raise ManifestError(f"manifest: {problem}")
    raise ManifestError(f"manifest key '{_dotted(path)}': {problem}")


def _dotted(path: KeyPath) -> str:
    """A key path as TOML would spell it: `sgx.trusted_files[2].uri`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else _quote(part)
        text += f".{name}" if text else name
    return text


def _quote(text: str) -> str:
    """A string in double quotes, escaped so that it stays on one line."""
    shown = text[:_QUOTE_LIMIT]
    quoted = '"' + "".join(map(_escape, shown)) + '"'
    return quoted + "..." if len(text) > _QUOTE_LIMIT else quoted


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _show(value: Any) -> str:
    """A scalar as it would appear in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int | float):
        return repr(value)
    return _describe(value)


def _describe(value: Any) -> str:
    """A value with its TOML type, for 'expected X, got Y' messages."""
    if isinstance(value, bool):
        return f"boolean {_show(value)}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {_quote(value)}"
    if isinstance(value, dict):
        if not value:
            return "an empty table"
        return "a table with keys " + ", ".join(_dotted((str(k),)) for k in value)
    if isinstance(value, list):
        return "an array"
    return f"a value of type {type(value).__name__}"
