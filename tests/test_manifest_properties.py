"""Property tests for gsc.manifest: merge laws and the TOML round trip."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import jsonschema
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from gsc import manifest as manifest_module
from gsc.manifest import (
    HashedFiles,
    Manifest,
    ManifestError,
    dumps,
    loads,
    merge,
    unsafe_options,
    validate,
)

# Any Unicode but NUL and lone surrogates: quotes, backslashes, newlines,
# control and non-BMP characters included.
toml_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
    max_size=12,
)

# A small pool of names, so that both sides often mention the same URI,
# mount path or search-list directory.
URIS = [f"file:/f{i}" for i in range(6)] + ["file:/lib/", "dev:/dev/null"]
MOUNT_PATHS = ["/tmp", "/data", "/run", "/srv"]
DIRECTORIES = ["", "/a", "/b", "/c", "/usr/bin", "/opt/x"]


def sha(uri: str) -> str:
    """One fixed hash per URI, so that no two entries ever disagree."""
    return hashlib.sha256(uri.encode()).hexdigest()


def trusted_entry(uri: str, form: int) -> Any:
    if form == 0:
        return uri
    if form == 1:
        return {"uri": uri}
    return {"uri": uri, "sha256": sha(uri)}


trusted_files = st.lists(
    st.builds(trusted_entry, st.sampled_from(URIS[:-1]), st.integers(0, 2)),
    max_size=8,
)
allowed_files = st.lists(st.sampled_from(URIS), max_size=4)
mounts = st.lists(
    st.one_of(
        st.builds(lambda p: {"type": "tmpfs", "path": p}, st.sampled_from(MOUNT_PATHS)),
        st.builds(
            lambda p, u: {"path": p, "uri": u},
            st.sampled_from(MOUNT_PATHS),
            st.sampled_from(URIS),
        ),
    ),
    max_size=4,
)
search_list = st.lists(st.sampled_from(DIRECTORIES), max_size=5).map(":".join)
env_value = st.one_of(
    search_list,
    st.just({"passthrough": True}),
    st.builds(lambda v: {"value": v}, search_list),
)
env = st.dictionaries(
    st.sampled_from(["PATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "HOME", "LANG"]),
    env_value,
    max_size=4,
)
command_line = st.one_of(
    st.just({}),
    st.builds(lambda a: {"argv": a}, st.lists(toml_text, max_size=3)),
    st.just({"argv_src_file": "file:/args"}),
    st.just({"insecure__use_cmdline_argv": True}),
    st.just({"insecure__use_cmdline_argv": False}),
)
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    toml_text,
)
extra_tables = st.dictionaries(
    st.sampled_from(["x", "y", "z"]),
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=3),
        ),
        max_leaves=8,
    ),
    max_size=3,
)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    """Manifests with the keys merge() treats specially, each part optional."""
    loader = {**draw(command_line), "uid": draw(st.integers(0, 5))}
    if draw(st.booleans()):
        loader["env"] = draw(env)
    sgx: dict[str, Any] = {"debug": draw(st.booleans())}
    if draw(st.booleans()):
        sgx["trusted_files"] = draw(trusted_files)
    if draw(st.booleans()):
        sgx["allowed_files"] = draw(allowed_files)
    manifest: Manifest = {"loader": loader, "sgx": sgx, "extra": draw(extra_tables)}
    if draw(st.booleans()):
        manifest["fs"] = {"mounts": draw(mounts)}
    return manifest


def trusted_uris(manifest: Manifest) -> list[str]:
    entries = manifest.get("sgx", {}).get("trusted_files", [])
    return [entry if isinstance(entry, str) else entry["uri"] for entry in entries]


def without_trusted_files(manifest: Manifest) -> Manifest:
    copied = copy.deepcopy(manifest)
    copied["sgx"].pop("trusted_files", None)
    return copied


@given(manifests())
def test_merge_with_empty_user_keeps_everything(manifest: Manifest) -> None:
    merged = merge(manifest, {})
    assert without_trusted_files(merged) == without_trusted_files(manifest)

    # Trusted files: the same URIs in first-seen order, each with its hash if
    # any entry gave one, and a table exactly when the hash is known.
    original = manifest["sgx"].get("trusted_files")
    if original is None:
        assert "trusted_files" not in merged["sgx"]
        return
    assert trusted_uris(merged) == list(dict.fromkeys(trusted_uris(manifest)))
    hashed = {e["uri"] for e in original if isinstance(e, dict) and "sha256" in e}
    for entry in merged["sgx"]["trusted_files"]:
        if isinstance(entry, str):
            assert entry not in hashed
        else:
            assert entry == {"uri": entry["uri"], "sha256": sha(entry["uri"])}
            assert entry["uri"] in hashed


@given(manifests(), manifests())
def test_merge_is_idempotent_for_the_user_side(
    generated: Manifest, user: Manifest
) -> None:
    once = merge(generated, user)
    assert merge(once, user) == once
    assert dumps(merge(once, user)) == dumps(once)


@given(manifests(), manifests())
def test_merge_lists_each_trusted_uri_once(generated: Manifest, user: Manifest) -> None:
    merged = merge(generated, user)
    uris = trusted_uris(merged)
    assert len(uris) == len(set(uris))

    # Nothing is lost but what the user allows, and the user's come first.
    allowed = set(user["sgx"].get("allowed_files", []))
    listed = trusted_uris(user) + trusted_uris(generated)
    wanted = [uri for uri in listed if uri not in allowed]
    assert uris == list(dict.fromkeys(wanted))


@given(manifests(), manifests())
def test_merge_leaves_inputs_unchanged(generated: Manifest, user: Manifest) -> None:
    generated_before, user_before = copy.deepcopy(generated), copy.deepcopy(user)
    merge(generated, user)
    assert generated == generated_before
    assert user == user_before


toml_scalars = st.one_of(
    toml_text,
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
)


def toml_tables(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(toml_text, values, max_size=4)


toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        toml_tables(inner),
        st.lists(toml_tables(inner), min_size=1, max_size=3),
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(toml_tables(toml_values))
def test_dumps_loads_round_trip(manifest: Manifest) -> None:
    text = dumps(manifest)
    assert "\0" not in text
    assert loads(text) == manifest
    assert dumps(loads(text)) == text


# ---------------------------------------------------------------------------
# The fast paths for long file lists against the slow ones they stand for:
# tomli-w for writing, jsonschema over the whole manifest for the schema, and
# the walk over every value for what TOML can hold.

# Short URIs keep a table inline; long ones push the list out of line.
file_list_strings = st.one_of(
    st.sampled_from(URIS),
    toml_text.map(lambda text: "file:" + text),
    st.integers(40, 120).map(lambda n: "file:/" + "d" * n),
    toml_text,
)
file_list_entries = st.one_of(
    file_list_strings,
    st.builds(lambda uri: {"uri": uri}, file_list_strings),
    st.builds(trusted_entry, file_list_strings, st.just(2)),
    st.builds(lambda key, uri: {key: uri}, toml_text, file_list_strings),
    st.builds(lambda n: {"uri": "file:/n", "sha256": n}, st.integers(0, 9)),
    st.integers(0, 9),
    st.just([]),
)
# A list of one shape, so that arrays of tables come up often, or of mixed ones.
file_lists = st.one_of(
    st.lists(
        st.builds(lambda uri: {"uri": uri, "sha256": sha(uri)}, file_list_strings)
    ),
    st.lists(
        st.builds(lambda uri: {"sha256": sha(uri), "uri": uri}, file_list_strings)
    ),
    st.lists(file_list_strings),
    st.lists(file_list_entries, max_size=6),
)


@st.composite
def manifests_with_file_lists(draw: st.DrawFn) -> Manifest:
    sgx: dict[str, Any] = {}
    for key in draw(st.permutations(["debug", "trusted_files", "allowed_files", "x"])):
        if key == "debug":
            sgx[key] = draw(st.booleans())
        elif key == "x":
            sgx[key] = draw(toml_tables(toml_scalars))
        elif draw(st.booleans()):
            sgx[key] = draw(file_lists)
    # Valid but for the file lists, so that their errors are the ones picked.
    return {
        "loader": {"entrypoint": {"uri": "file:/gramine/libsysdb.so"}},
        "libos": {"entrypoint": "/app"},
        "fs": {"mounts": []},
        "sgx": sgx,
    }


@settings(max_examples=300)
@given(manifests_with_file_lists())
def test_dumps_writes_file_lists_as_tomli_w_does(manifest: Manifest) -> None:
    assert dumps(manifest) == tomli_w.dumps(manifest)


def slow_schema_message(manifest: Manifest) -> str | None:
    error = jsonschema.exceptions.best_match(
        manifest_module._VALIDATOR.iter_errors(manifest)
    )
    if error is None:
        return None
    try:
        manifest_module._raise_at(*manifest_module._schema_problem(error))
    except ManifestError as raised:
        return str(raised)
    raise AssertionError("_raise_at returned")


@settings(max_examples=300)
@given(manifests_with_file_lists())
def test_schema_check_reports_what_jsonschema_picks(manifest: Manifest) -> None:
    del manifest["sgx"]["x"]  # an unknown key, which the schema would pick
    try:
        manifest_module._check_schema(manifest)
        message = None
    except ManifestError as raised:
        message = str(raised)
    assert message == slow_schema_message(manifest)


writable_values = st.recursive(
    st.one_of(
        st.text(max_size=4),
        st.integers(-(2**64), 2**64),
        st.booleans(),
        st.floats(),
        st.just(()),
        st.just(None),
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.one_of(st.text(max_size=3), st.integers(0, 2)), inner, max_size=3
        )
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=3), writable_values, max_size=4))
def test_values_check_agrees_with_the_walk(manifest: Manifest) -> None:
    slow = next(
        (
            (path, problem)
            for path, value in manifest_module._walk_values(manifest, ())
            if (problem := manifest_module._value_problem(value))
        ),
        None,
    )
    assert manifest_module._all_writable(manifest) == (slow is None)


# ---------------------------------------------------------------------------
# HashedFiles, the columns GSC generates its trusted files in, against the
# list of tables they stand for: each function must treat both alike.

hashed_paths = st.one_of(
    # A NUL is a character no manifest can hold.
    st.sampled_from(["/f0", "/f1", "/lib/", "/usr/lib/x.so", "/nul\0"]),
    toml_text.map(lambda text: "/" + text),
    st.integers(40, 120).map(lambda n: "/" + "d" * n),
)
hashed_columns = st.lists(
    st.tuples(
        hashed_paths,
        st.one_of(hashed_paths.map(sha), st.sampled_from(["", "ABC", "0" * 63 + "g"])),
    ),
    max_size=6,
)


def valid_with(trusted: Any, allowed: list[str]) -> Manifest:
    """A manifest that validate() accepts but for its file lists."""
    return {
        "loader": {"entrypoint": {"uri": "file:/gramine/libsysdb.so"}, "argv": []},
        "libos": {"entrypoint": "/app"},
        "fs": {"mounts": []},
        "sgx": {"trusted_files": trusted, "allowed_files": allowed},
    }


def outcome(function: Any, *args: Any) -> Any:
    """What `function` returns, or the message of the ManifestError it raises."""
    try:
        return function(*args)
    except ManifestError as raised:
        return ("raised", str(raised))


@settings(max_examples=300)
@given(hashed_columns, allowed_files, manifests())
def test_hashed_files_act_as_their_list_of_tables(
    columns: list[tuple[str, str]], allowed: list[str], user: Manifest
) -> None:
    hashed = HashedFiles([p for p, _ in columns], [h for _, h in columns])
    tables = [{"uri": "file:" + p, "sha256": h} for p, h in columns]
    assert hashed == tables and list(hashed) == tables and len(hashed) == len(tables)
    generated, listed = valid_with(hashed, allowed), valid_with(tables, allowed)

    assert outcome(dumps, generated) == outcome(dumps, listed)
    assert outcome(validate, generated) == outcome(validate, listed)
    assert unsafe_options(generated) == unsafe_options(listed)
    for other in (user, {"sgx": {"allowed_files": allowed}}):
        merged = outcome(merge, generated, other)
        assert merged == outcome(merge, listed, other)
        if not isinstance(merged, tuple):
            expected = merge(listed, other)
            assert outcome(dumps, merged) == outcome(dumps, expected)
            assert outcome(validate, merged) == outcome(validate, expected)
    # Merging takes the columns whole or filters them, never changing them.
    assert hashed == tables


def test_hashed_files_are_written_without_a_table_for_each_file() -> None:
    paths = [f"/usr/lib/python3/module{n:05}.py" for n in range(20_000)]
    hashed = HashedFiles(paths, [sha(p) for p in paths])
    manifest: Manifest = {"sgx": {"trusted_files": hashed}}

    merged = merge(manifest, {"sgx": {"allowed_files": ["file:" + paths[7]]}})

    kept = merged["sgx"]["trusted_files"]
    assert type(kept) is HashedFiles
    assert kept.paths == paths[:7] + paths[8:]
    assert kept.paths[0] is paths[0]  # the same strings, not copies
    text = dumps(merged)
    assert text == tomli_w.dumps(
        {"sgx": {"trusted_files": list(kept), "allowed_files": ["file:" + paths[7]]}}
    )
    assert loads(text)["sgx"]["trusted_files"] == kept
    assert hashed[3] == {"uri": "file:" + paths[3], "sha256": sha(paths[3])}
    assert hashed[2:4] == [hashed[2], hashed[3]]
