"""Tests for gsc.manifest: loading, merging, validation and serialization."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomli_w
import tomllib

from gsc.errors import GscError, ManifestError
from gsc.manifest import (
    MANIFEST_SCHEMA,
    Manifest,
    TrustedFile,
    dumps,
    env_list,
    load_user_manifest,
    loads,
    merge,
    parse_size,
    unsafe_options,
    validate,
)
from tests.sgx.vectors import VECTORS

# Each case there was accepted, and re-serialized, by Gramine v1.9's signer.
SIGNED_MANIFESTS = sorted(VECTORS.glob("v*-*.manifest.sgx"))
INPUT_MANIFESTS = sorted(VECTORS.glob("v*-*.manifest"))

PKGLIBDIR = "/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def generated() -> Manifest:
    """A manifest shaped like the one `gsc build` generates for a python image."""
    return {
        "libos": {"entrypoint": "/usr/bin/python3"},
        "loader": {
            "entrypoint": {"uri": f"file:{PKGLIBDIR}/libsysdb.so", "sha256": sha("x")},
            "log_level": "error",
            "argv": ["python3", "/app/x.py", "arg"],
            "uid": 1000,
            "gid": 1000,
            "env": {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LD_LIBRARY_PATH": f"{PKGLIBDIR}/runtime/glibc:/usr/lib",
                "HOME": "/root",
            },
        },
        "fs": {
            "start_dir": "/app",
            "root": {"type": "chroot", "uri": "file:/"},
            "mounts": [
                {"type": "tmpfs", "path": "/tmp"},
                {"type": "chroot", "path": "/data", "uri": "file:/data"},
            ],
        },
        "sgx": {
            "debug": False,
            "trusted_files": [
                {"uri": "file:/usr/bin/python3", "sha256": sha("python3")},
                {"uri": "file:/app/x.py", "sha256": sha("x.py")},
            ],
            "allowed_files": [
                "file:/etc/hosts",
                "file:/etc/hostname",
                "file:/etc/resolv.conf",
            ],
        },
    }


def message(error: pytest.ExceptionInfo[ManifestError]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------------------
# load_user_manifest


def test_load_none_is_empty() -> None:
    assert load_user_manifest(None) == {}


@pytest.mark.parametrize("text", ["", "\n\n   \t\n", "# only\n  # comments\n\n"])
def test_load_file_without_keys_is_empty(tmp_path: Path, text: str) -> None:
    path = tmp_path / "app.manifest"
    path.write_text(text)
    assert load_user_manifest(path) == {}


def test_load_reads_dotted_and_table_keys(tmp_path: Path) -> None:
    path = tmp_path / "app.manifest"
    path.write_text(
        'sgx.enclave_size = "1G"\n[loader.env]\nHOME = { passthrough = true }\n'
    )
    assert load_user_manifest(path) == {
        "sgx": {"enclave_size": "1G"},
        "loader": {"env": {"HOME": {"passthrough": True}}},
    }


def test_load_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "app.manifest"
    path.write_bytes(b"\xef\xbb\xbfsgx.max_threads = 8\n")
    assert load_user_manifest(path) == {"sgx": {"max_threads": 8}}


def test_load_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.manifest"
    path.write_text('sgx.debug = false\nloader.argv = ["a",\nfs = 3\n')
    with pytest.raises(ManifestError) as error:
        load_user_manifest(path)
    text = message(error)
    assert str(path) in text
    assert "invalid TOML" in text
    assert "line 3" in text


def test_load_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.manifest"
    path.write_text("sgx.max_threads = 4\nsgx.max_threads = 8\n")
    with pytest.raises(ManifestError, match=r"dup\.manifest: invalid TOML.*line 2"):
        load_user_manifest(path)


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as error:
        load_user_manifest(tmp_path)
    text = message(error)
    assert str(tmp_path) in text
    assert "Is a directory" in text


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.manifest"
    with pytest.raises(ManifestError, match=r"cannot read the user manifest .*nowhere"):
        load_user_manifest(path)


def test_load_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.manifest"
    path.write_bytes(
        'libos.entrypoint = "/app"\nloader.env.NAME = "caf\xe9"\n'.encode("latin-1")
    )
    with pytest.raises(ManifestError) as error:
        load_user_manifest(path)
    text = message(error)
    assert str(path) in text
    assert "not valid UTF-8" in text
    assert "0xe9" in text
    assert "line 2" in text


def test_loads_bad_text() -> None:
    with pytest.raises(ManifestError, match=r"^manifest: invalid TOML: .*line 1"):
        loads("= 1")


def test_manifest_error_is_a_gsc_error() -> None:
    assert issubclass(ManifestError, GscError)


# ---------------------------------------------------------------------------
# merge: general rules


def test_merge_does_not_mutate_inputs() -> None:
    gen, user = (
        generated(),
        {
            "loader": {"env": {"PATH": "/opt/bin"}, "argv": ["x"]},
            "sgx": {
                "trusted_files": ["file:/opt/x"],
                "allowed_files": ["file:/app/x.py"],
            },
            "fs": {"mounts": [{"type": "tmpfs", "path": "/data"}]},
        },
    )
    gen_before, user_before = copy.deepcopy(gen), copy.deepcopy(user)
    merged = merge(gen, user)
    assert gen == gen_before
    assert user == user_before

    merged["fs"]["mounts"][0]["path"] = "/changed"
    merged["loader"]["env"]["HOME"] = "/changed"
    assert gen == gen_before
    assert user == user_before


def test_merge_with_empty_user_keeps_generated() -> None:
    assert merge(generated(), {}) == generated()


def test_merge_tables_recursively_user_scalar_wins() -> None:
    gen = {"sgx": {"debug": False, "max_threads": 4}, "fs": {"start_dir": "/app"}}
    user = {"sgx": {"max_threads": 16, "enclave_size": "4G"}, "sys": {"stack": {}}}
    assert merge(gen, user) == {
        "sgx": {"debug": False, "max_threads": 16, "enclave_size": "4G"},
        "fs": {"start_dir": "/app"},
        "sys": {"stack": {}},
    }


def test_merge_key_order_is_generated_then_new_user_keys() -> None:
    gen = {"b": 1, "a": {"y": 1, "x": 2}}
    user = {"c": 3, "a": {"z": 4, "y": 5}}
    merged = merge(gen, user)
    assert list(merged) == ["b", "a", "c"]
    assert list(merged["a"]) == ["y", "x", "z"]


def test_merge_user_value_of_other_type_replaces_table() -> None:
    merged = merge({"fs": {"root": {"uri": "file:/"}}}, {"fs": {"root": "file:/"}})
    assert merged == {"fs": {"root": "file:/"}}


def test_merge_user_list_replaces_other_lists() -> None:
    gen = {"loader": {"argv": ["a", "b"]}, "sys": {"allowed_ioctls": [{"x": 1}]}}
    user = {"sys": {"allowed_ioctls": [{"request_code": 5}]}}
    merged = merge(gen, user)
    assert merged["sys"]["allowed_ioctls"] == [{"request_code": 5}]
    assert merged["loader"]["argv"] == ["a", "b"]


# ---------------------------------------------------------------------------
# merge: loader.env


def env_of(gen_env: dict[str, Any], user_env: dict[str, Any]) -> dict[str, Any]:
    merged = merge({"loader": {"env": gen_env}}, {"loader": {"env": user_env}})
    return dict(merged["loader"]["env"])


def test_env_path_joined_generated_first() -> None:
    env = env_of({"PATH": "/usr/bin:/bin"}, {"PATH": "/opt/bin:/bin:/usr/local/bin"})
    assert env["PATH"] == "/usr/bin:/bin:/opt/bin:/usr/local/bin"


def test_env_runtime_directory_stays_first() -> None:
    runtime = f"{PKGLIBDIR}/runtime/glibc"
    env = env_of(
        {"LD_LIBRARY_PATH": f"{runtime}:/usr/lib"},
        {"LD_LIBRARY_PATH": f"/opt/lib:{runtime}"},
    )
    assert env["LD_LIBRARY_PATH"] == f"{runtime}:/usr/lib:/opt/lib"


def test_env_join_drops_duplicates_and_empty_components() -> None:
    env = env_of({"PATH": ":/a::/b:/a:"}, {"PATH": "::/c:/b::/c:"})
    assert env["PATH"] == "/a:/b:/c"


def test_env_ld_preload_accepts_whitespace() -> None:
    env = env_of(
        {"LD_PRELOAD": "/lib/a.so  /lib/b.so"}, {"LD_PRELOAD": "/lib/c.so\t/lib/a.so:"}
    )
    assert env["LD_PRELOAD"] == "/lib/a.so:/lib/b.so:/lib/c.so"


def test_env_whitespace_is_kept_in_path() -> None:
    env = env_of({"PATH": "/my dir/bin"}, {"PATH": "/other dir"})
    assert env["PATH"] == "/my dir/bin:/other dir"


def test_env_other_variables_user_wins() -> None:
    env = env_of({"HOME": "/root", "LANG": "C"}, {"HOME": "/home/app"})
    assert env == {"HOME": "/home/app", "LANG": "C"}


def test_env_passthrough_table_replaces_path() -> None:
    env = env_of({"PATH": "/usr/bin"}, {"PATH": {"passthrough": True}})
    assert env["PATH"] == {"passthrough": True}


def test_env_value_table_replaces_path() -> None:
    env = env_of({"PATH": "/usr/bin"}, {"PATH": {"value": "/only/this"}})
    assert env["PATH"] == {"value": "/only/this"}


def test_env_user_string_replaces_generated_table() -> None:
    env = env_of({"PATH": {"passthrough": True}}, {"PATH": "/a::/a"})
    assert env["PATH"] == "/a"


def test_env_user_only_path_is_normalised() -> None:
    env = env_of({}, {"PATH": "/a::/b:/a"})
    assert env["PATH"] == "/a:/b"


def test_env_list() -> None:
    assert env_list("/a::/b:") == ["/a", "/b"]
    assert env_list("") == []
    assert env_list("a.so b.so:c.so", whitespace=True) == ["a.so", "b.so", "c.so"]
    assert env_list("a b") == ["a b"]


# ---------------------------------------------------------------------------
# merge: sgx.trusted_files and sgx.allowed_files


def trusted_of(gen_sgx: dict[str, Any], user_sgx: dict[str, Any]) -> list[Any]:
    return list(merge({"sgx": gen_sgx}, {"sgx": user_sgx})["sgx"]["trusted_files"])


def test_trusted_user_entries_first_one_per_uri() -> None:
    files = trusted_of(
        {"trusted_files": ["file:/g1", "file:/shared", "file:/g2"]},
        {"trusted_files": ["file:/u1", "file:/shared", "file:/u1"]},
    )
    assert files == ["file:/u1", "file:/shared", "file:/g1", "file:/g2"]


def test_trusted_string_and_table_keep_hash() -> None:
    files = trusted_of(
        {"trusted_files": [{"uri": "file:/a", "sha256": sha("a")}, "file:/b"]},
        {"trusted_files": ["file:/a", {"uri": "file:/b", "sha256": sha("b")}]},
    )
    assert files == [
        {"uri": "file:/a", "sha256": sha("a")},
        {"uri": "file:/b", "sha256": sha("b")},
    ]


def test_trusted_same_hash_twice_is_fine() -> None:
    entry = {"uri": "file:/a", "sha256": sha("a")}
    assert trusted_of({"trusted_files": [entry]}, {"trusted_files": [entry]}) == [entry]


def test_trusted_hash_conflict_names_uri() -> None:
    with pytest.raises(ManifestError) as error:
        trusted_of(
            {"trusted_files": [{"uri": "file:/lib/libc.so.6", "sha256": sha("1")}]},
            {"trusted_files": [{"uri": "file:/lib/libc.so.6", "sha256": sha("2")}]},
        )
    text = message(error)
    assert "'sgx.trusted_files'" in text
    assert '"file:/lib/libc.so.6"' in text
    assert sha("1") in text
    assert sha("2") in text


def test_trusted_hash_conflict_within_generated() -> None:
    gen = {
        "trusted_files": [
            {"uri": "file:/a", "sha256": sha("1")},
            {"uri": "file:/a", "sha256": sha("2")},
        ]
    }
    with pytest.raises(ManifestError, match='"file:/a"'):
        trusted_of(gen, {})


def test_trusted_table_without_hash_becomes_string() -> None:
    assert trusted_of({"trusted_files": [{"uri": "file:/a"}]}, {}) == ["file:/a"]


def test_trusted_normalised_even_without_user_list() -> None:
    files = trusted_of(
        {"trusted_files": ["file:/a", {"uri": "file:/a", "sha256": sha("a")}]},
        {"debug": True},
    )
    assert files == [{"uri": "file:/a", "sha256": sha("a")}]


def test_allowed_file_removes_trusted_file() -> None:
    files = trusted_of(
        {
            "trusted_files": [
                {"uri": "file:/etc/hosts", "sha256": sha("h")},
                {"uri": "file:/app/x", "sha256": sha("x")},
            ]
        },
        {
            "trusted_files": ["file:/etc/passwd"],
            "allowed_files": ["file:/etc/hosts", "file:/etc/passwd"],
        },
    )
    assert files == [{"uri": "file:/app/x", "sha256": sha("x")}]


def test_generated_allowed_file_does_not_remove_user_trusted_file() -> None:
    merged = merge(
        {"sgx": {"allowed_files": ["file:/etc/hosts"]}},
        {"sgx": {"trusted_files": ["file:/etc/hosts"]}},
    )
    assert merged["sgx"]["trusted_files"] == ["file:/etc/hosts"]


def test_trusted_malformed_entry_kept_for_validation() -> None:
    files = trusted_of({"trusted_files": ["file:/a"]}, {"trusted_files": [5, 5]})
    assert files == [5, "file:/a"]


def test_allowed_union_user_first() -> None:
    merged = merge(
        {"sgx": {"allowed_files": ["file:/etc/hosts", "file:/etc/hostname"]}},
        {
            "sgx": {
                "allowed_files": [
                    "file:/var/log/",
                    "file:/etc/hosts",
                    "dev:/dev/x",
                    "file:/var/log/",
                ]
            }
        },
    )
    assert merged["sgx"]["allowed_files"] == [
        "file:/var/log/",
        "file:/etc/hosts",
        "dev:/dev/x",
        "file:/etc/hostname",
    ]


# ---------------------------------------------------------------------------
# merge: fs.mounts


def test_user_mount_wins_for_its_path() -> None:
    gen = {
        "fs": {
            "mounts": [
                {"type": "tmpfs", "path": "/tmp"},
                {"type": "chroot", "path": "/data", "uri": "file:/data"},
                {"type": "tmpfs", "path": "/run"},
            ]
        }
    }
    user = {
        "fs": {
            "mounts": [
                {
                    "type": "encrypted",
                    "path": "/data",
                    "uri": "file:/data",
                    "key_name": "k",
                },
                {"type": "tmpfs", "path": "/cache"},
            ]
        }
    }
    assert merge(gen, user)["fs"]["mounts"] == [
        {"type": "encrypted", "path": "/data", "uri": "file:/data", "key_name": "k"},
        {"type": "tmpfs", "path": "/cache"},
        {"type": "tmpfs", "path": "/tmp"},
        {"type": "tmpfs", "path": "/run"},
    ]


def test_user_empty_mounts_keeps_generated() -> None:
    gen = {"fs": {"mounts": [{"type": "tmpfs", "path": "/tmp"}]}}
    assert merge(gen, {"fs": {"mounts": []}}) == gen


# ---------------------------------------------------------------------------
# merge: command line


def loader_of(gen_loader: dict[str, Any], user_loader: dict[str, Any]) -> Any:
    return merge({"loader": gen_loader}, {"loader": user_loader})["loader"]


def test_user_argv_replaces_generated_argv() -> None:
    loader = loader_of({"argv": ["a", "b"], "uid": 1}, {"argv": ["c"]})
    assert loader == {"argv": ["c"], "uid": 1}


def test_user_argv_src_file_drops_generated_argv() -> None:
    loader = loader_of({"argv": ["a", "b"], "uid": 1}, {"argv_src_file": "file:/args"})
    assert loader == {"uid": 1, "argv_src_file": "file:/args"}


def test_user_cmdline_argv_drops_generated_argv() -> None:
    loader = loader_of({"argv": ["a"]}, {"insecure__use_cmdline_argv": True})
    assert loader == {"insecure__use_cmdline_argv": True}


def test_user_argv_drops_generated_cmdline_argv() -> None:
    loader = loader_of({"insecure__use_cmdline_argv": True}, {"argv": ["x"]})
    assert loader == {"argv": ["x"]}


def test_user_cmdline_argv_false_is_not_a_source() -> None:
    loader = loader_of({"argv": ["a"]}, {"insecure__use_cmdline_argv": False})
    assert loader == {"argv": ["a"], "insecure__use_cmdline_argv": False}
    validate({**generated(), "loader": {**generated()["loader"], **loader}})


def test_user_two_command_line_sources_is_an_error() -> None:
    with pytest.raises(ManifestError) as error:
        loader_of({}, {"argv": ["a"], "argv_src_file": "file:/args"})
    assert message(error).startswith("user manifest key 'loader.argv_src_file': ")
    assert "'loader.argv'" in message(error)


def test_merge_is_deterministic() -> None:
    user = {"sgx": {"trusted_files": ["file:/b", "file:/a"]}, "loader": {"argv": []}}
    assert dumps(merge(generated(), user)) == dumps(merge(generated(), user))


# ---------------------------------------------------------------------------
# validate: good manifests


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(MANIFEST_SCHEMA)


def test_vectors_are_present() -> None:
    assert len(SIGNED_MANIFESTS) >= 7
    assert len(INPUT_MANIFESTS) == len(SIGNED_MANIFESTS)


@pytest.mark.parametrize(
    "path", SIGNED_MANIFESTS + INPUT_MANIFESTS, ids=lambda p: p.name
)
def test_manifests_accepted_by_gramine_validate(path: Path) -> None:
    validate(loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", SIGNED_MANIFESTS, ids=lambda p: p.name)
def test_dumps_writes_what_gramine_wrote(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert dumps(loads(text)) == text


def test_generated_manifest_validates() -> None:
    validate(generated())


def test_merged_manifest_validates_and_round_trips() -> None:
    user = loads(
        """
        loader.env.HOME = { passthrough = true }
        loader.env.PATH = "/opt/bin"
        loader.argv_src_file = "file:/app/args"
        sgx.enclave_size = "4G"
        sgx.max_threads = 32
        sgx.allowed_files = ["file:/app/x.py", "dev:/dev/null"]
        sgx.trusted_files = ["file:/opt/bin/tool"]
        fs.mounts = [{ type = "encrypted", path = "/data", uri = "file:/data" }]
        fs.insecure__keys.default = "ffeeddccbbaa99887766554433221100"
        """
    )
    merged = merge(generated(), user)
    validate(merged)
    assert loads(dumps(merged)) == merged
    assert "argv" not in merged["loader"]
    assert [
        f["uri"] if isinstance(f, dict) else f for f in merged["sgx"]["trusted_files"]
    ] == [
        "file:/opt/bin/tool",
        "file:/usr/bin/python3",
    ]


@pytest.mark.parametrize(
    "mount",
    [
        {"path": "/a", "uri": "file:/a"},
        {"type": "tmpfs", "path": "/a", "uri": "ignored"},
        {"type": "untrusted_shm", "path": "/dev/shm", "uri": "dev:/dev/shm"},
        {"type": "encrypted", "path": "/e", "uri": "file:/e", "enable_recovery": True},
    ],
)
def test_mount_kinds_accepted(mount: dict[str, Any]) -> None:
    manifest = generated()
    manifest["fs"]["mounts"].append(mount)
    validate(manifest)


def test_every_documented_key_accepted() -> None:
    manifest = loads(
        """
        libos.entrypoint = "/bin/sh"
        libos.check_invalid_pointers = false
        loader.entrypoint.uri = "file:/l"
        loader.env_src_file = "file:/env"
        loader.insecure__use_host_env = true
        loader.insecure__disable_aslr = true
        loader.log_file = "/tmp/log"
        loader.log_level = "all"
        fs.mounts = []
        fs.root.uri = "file:/"
        sgx.edmm_enable = true
        sgx.enable_stats = true
        sgx.file_check_policy = "allow_all_but_log"
        sgx.insecure__allow_memfaults_without_exinfo = true
        sgx.insecure__rpc_thread_num = 2
        sgx.preheat_enclave = true
        sgx.profile.enable = "main"
        sgx.profile.mode = "aex"
        sgx.profile.with_stack = true
        sgx.profile.frequency = 50
        sgx.remote_attestation = "dcap"
        sgx.seal_key = { flags_mask = "0xff", xfrm_mask = "0x3", misc_mask = "0x0" }
        sgx.vtune_profile = false
        sgx.trusted_files = ["file:/lib/", "file:/bin/sh"]
        sgx.enclave_size = "1024G"
        sgx.max_threads = 4096
        sgx.isvprodid = 65535
        sgx.isvsvn = 0
        sys.allowed_ioctls = [{ request_code = 21505, struct = "termios" }]
        sys.brk.max_size = "1M"
        sys.disallow_subprocesses = true
        sys.enable_sigterm_injection = true
        sys.experimental__enable_flock = true
        sys.insecure__allow_eventfd = true
        sys.ioctl_structs.termios = [{ size = 60, direction = "out" }]
        sys.debug__mock_syscalls = [{ name = "yield", return = 0 }, { name = "x" }]
        sys.fds.limit = 1024
        """
    )
    validate(manifest)


# ---------------------------------------------------------------------------
# validate: bad manifests


def put(*path: str | int, value: Any) -> Callable[[Manifest], None]:
    """A change that sets the value at a key path, creating tables on the way."""

    def change(manifest: Manifest) -> None:
        node: Any = manifest
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
        node[path[-1]] = value

    return change


def drop(*path: str) -> Callable[[Manifest], None]:
    def change(manifest: Manifest) -> None:
        node: Any = manifest
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return change


def add_mount(mount: Any) -> Callable[[Manifest], None]:
    return lambda manifest: manifest["fs"]["mounts"].append(mount)


def add_trusted(entry: Any) -> Callable[[Manifest], None]:
    return lambda manifest: manifest["sgx"]["trusted_files"].append(entry)


BAD_MANIFESTS: list[tuple[str, Callable[[Manifest], None], str, str]] = [
    ("unknown sgx key", put("sgx", "foo", value=1), "sgx.foo", "unknown key"),
    ("unknown table", put("foo", "bar", value=1), "foo", "unknown key"),
    (
        "unknown loader key",
        put("loader", "args", value=[]),
        "loader.args",
        "unknown key",
    ),
    (
        "old protected files",
        put("sgx", "protected_files", value=[]),
        "sgx.protected_files",
        "unknown key",
    ),
    ("no entrypoint", drop("libos", "entrypoint"), "libos.entrypoint", "missing"),
    ("no mounts", drop("fs", "mounts"), "fs.mounts", "missing"),
    (
        "no loader uri",
        drop("loader", "entrypoint", "uri"),
        "loader.entrypoint.uri",
        "missing",
    ),
    ("no loader", drop("loader"), "loader", "missing"),
    (
        "threads too many",
        put("sgx", "max_threads", value=5000),
        "sgx.max_threads",
        "5000 is out of range 1..4096",
    ),
    (
        "threads zero",
        put("sgx", "max_threads", value=0),
        "sgx.max_threads",
        "0 is out of range 1..4096",
    ),
    (
        "threads string",
        put("sgx", "max_threads", value="4"),
        "sgx.max_threads",
        'expected an integer, got string "4"',
    ),
    (
        "threads float",
        put("sgx", "max_threads", value=4.0),
        "sgx.max_threads",
        "expected an integer, got float 4.0",
    ),
    (
        "prodid too big",
        put("sgx", "isvprodid", value=65536),
        "sgx.isvprodid",
        "65536 is out of range 0..65535",
    ),
    (
        "svn negative",
        put("sgx", "isvsvn", value=-1),
        "sgx.isvsvn",
        "-1 is out of range 0..65535",
    ),
    (
        "debug string",
        put("sgx", "debug", value="yes"),
        "sgx.debug",
        'expected a boolean, got string "yes"',
    ),
    (
        "uid bool",
        put("loader", "uid", value=True),
        "loader.uid",
        "expected an integer, got boolean true",
    ),
    (
        "size not power of two",
        put("sgx", "enclave_size", value="3G"),
        "sgx.enclave_size",
        "not a power of two",
    ),
    (
        "size zero",
        put("sgx", "enclave_size", value="0"),
        "sgx.enclave_size",
        "not a power of two",
    ),
    (
        "size bad suffix",
        put("sgx", "enclave_size", value="256MB"),
        "sgx.enclave_size",
        "expected a size",
    ),
    (
        "size trailing newline",
        put("sgx", "enclave_size", value="256M\n"),
        "sgx.enclave_size",
        "expected a size",
    ),
    (
        "size integer",
        put("sgx", "enclave_size", value=268435456),
        "sgx.enclave_size",
        "expected a size",
    ),
    (
        "stack size",
        put("sys", "stack", "size", value="2 M"),
        "sys.stack.size",
        "expected a size",
    ),
    (
        "log level",
        put("loader", "log_level", value="verbose"),
        "loader.log_level",
        '"verbose" is not one of "none", "error"',
    ),
    (
        "epid",
        put("sgx", "remote_attestation", value="epid"),
        "sgx.remote_attestation",
        '"epid" is not one of',
    ),
    (
        "mpx unspecified",
        put("sgx", "cpu_features", "mpx", value="unspecified"),
        "sgx.cpu_features.mpx",
        'is not one of "disabled", "required"',
    ),
    (
        "cpu feature unknown",
        put("sgx", "cpu_features", "avx1024", value="required"),
        "sgx.cpu_features.avx1024",
        "unknown key",
    ),
    (
        "profile mode",
        put("sgx", "profile", "mode", value="fast"),
        "sgx.profile.mode",
        "is not one of",
    ),
    (
        "policy",
        put("sgx", "file_check_policy", value="lax"),
        "sgx.file_check_policy",
        "is not one of",
    ),
    (
        "trusted uppercase hash",
        add_trusted({"uri": "file:/a", "sha256": "A" * 64}),
        "sgx.trusted_files[2].sha256",
        "expected a SHA-256 hash",
    ),
    (
        "trusted short hash",
        add_trusted({"uri": "file:/a", "sha256": "ab"}),
        "sgx.trusted_files[2].sha256",
        "expected a SHA-256 hash",
    ),
    (
        "trusted http uri",
        add_trusted("http://example.org/x"),
        "sgx.trusted_files[2]",
        "expected a 'file:' URI",
    ),
    (
        "trusted table dev uri",
        add_trusted({"uri": "dev:/dev/x"}),
        "sgx.trusted_files[2].uri",
        "expected a 'file:' URI",
    ),
    (
        "trusted extra key",
        add_trusted({"uri": "file:/a", "sha256": sha("a"), "size": 1}),
        "sgx.trusted_files[2].size",
        "unknown key",
    ),
    (
        "trusted no uri",
        add_trusted({"sha256": sha("a")}),
        "sgx.trusted_files[2].uri",
        "missing",
    ),
    ("trusted number", add_trusted(7), "sgx.trusted_files[2]", "got integer 7"),
    (
        "trusted directory hash",
        add_trusted({"uri": "file:/lib/", "sha256": sha("d")}),
        "sgx.trusted_files[2].sha256",
        "directory URI",
    ),
    (
        "trusted two hashes",
        add_trusted({"uri": "file:/app/x.py", "sha256": sha("y")}),
        "sgx.trusted_files[2]",
        "different SHA-256 hash",
    ),
    (
        "allowed http",
        put("sgx", "allowed_files", value=["file:/a", "http:/b"]),
        "sgx.allowed_files[1]",
        "expected a 'file:' or 'dev:' URI",
    ),
    (
        "mount type",
        add_mount({"type": "nfs", "path": "/n"}),
        "fs.mounts[2].type",
        '"nfs" is not one of "chroot"',
    ),
    ("chroot mount no uri", add_mount({"path": "/n"}), "fs.mounts[2].uri", "missing"),
    (
        "tmpfs mount no path",
        add_mount({"type": "tmpfs"}),
        "fs.mounts[2].path",
        "missing",
    ),
    (
        "encrypted mount no type",
        add_mount({"path": "/e", "uri": "file:/e", "key_name": "k"}),
        "fs.mounts[2].key_name",
        "unknown key",
    ),
    (
        "tmpfs key name",
        add_mount({"type": "tmpfs", "path": "/t", "key_name": "k"}),
        "fs.mounts[2].key_name",
        "unknown key",
    ),
    ("mount string", add_mount("/tmp"), "fs.mounts[2]", "expected a table"),
    (
        "root key name",
        put("fs", "root", "key_name", value="k"),
        "fs.root.key_name",
        "unknown key",
    ),
    (
        "insecure key value",
        put("fs", "insecure__keys", "k", value=5),
        "fs.insecure__keys.k",
        "expected a string",
    ),
    (
        "passthrough false",
        put("loader", "env", "HOME", value={"passthrough": False}),
        "loader.env.HOME.passthrough",
        "expected true, got false",
    ),
    (
        "env empty table",
        put("loader", "env", "HOME", value={}),
        "loader.env.HOME",
        "got an empty table",
    ),
    (
        "env both",
        put("loader", "env", "HOME", value={"value": "/", "passthrough": True}),
        "loader.env.HOME",
        "got a table with keys value, passthrough",
    ),
    (
        "env integer",
        put("loader", "env", "my.var", value=5),
        'loader.env."my.var"',
        "got integer 5",
    ),
    (
        "env value integer",
        put("loader", "env", "X", value={"value": 1}),
        "loader.env.X.value",
        "expected a string",
    ),
    (
        "argv item",
        put("loader", "argv", value=["python3", 5]),
        "loader.argv[1]",
        "expected a string, got integer 5",
    ),
    (
        "argv and file",
        put("loader", "argv_src_file", value="file:/args"),
        "loader.argv_src_file",
        "cannot be used together with 'loader.argv'",
    ),
    (
        "argv and cmdline",
        put("loader", "insecure__use_cmdline_argv", value=True),
        "loader.insecure__use_cmdline_argv",
        "cannot be used together with 'loader.argv'",
    ),
    (
        "entrypoint string",
        put("loader", "entrypoint", value="file:/x"),
        "loader.entrypoint",
        "expected a table",
    ),
    (
        "entrypoint hash",
        put("loader", "entrypoint", "sha256", value="0" * 63),
        "loader.entrypoint.sha256",
        "expected a SHA-256 hash",
    ),
    (
        "ioctl without code",
        put("sys", "allowed_ioctls", value=[{"struct": "s"}]),
        "sys.allowed_ioctls[0].request_code",
        "missing",
    ),
    (
        "mock syscall",
        put("sys", "debug__mock_syscalls", value=[{"name": "x", "ret": 1}]),
        "sys.debug__mock_syscalls[0].ret",
        "unknown key",
    ),
    (
        "nul in argv",
        put("loader", "argv", value=["python3", "a\0b"]),
        "loader.argv[1]",
        "contains a NUL character",
    ),
    (
        "nul in key",
        put("loader", "env", "A\0B", value="x"),
        'loader.env."A\\u0000B"',
        "the key contains a NUL character",
    ),
    (
        "surrogate in uri",
        add_trusted("file:/caf\udce9"),
        "sgx.trusted_files[2]",
        "lone surrogate U+DCE9",
    ),
    (
        "surrogate in a hashed file",
        add_trusted({"uri": "file:/caf\udce9", "sha256": "0" * 64}),
        "sgx.trusted_files[2].uri",
        "lone surrogate U+DCE9",
    ),
    (
        "nul in a hashed file",
        add_trusted({"uri": "file:/a\0b", "sha256": "0" * 64}),
        "sgx.trusted_files[2].uri",
        "contains a NUL character",
    ),
    (
        "integer too big",
        put("sys", "fds", "limit", value=2**64),
        "sys.fds.limit",
        "does not fit in a 64-bit TOML integer",
    ),
    (
        "none value",
        put("sys", "ioctl_structs", "s", value=None),
        "sys.ioctl_structs.s",
        "cannot be written to TOML",
    ),
]


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [case[1:] for case in BAD_MANIFESTS],
    ids=[case[0] for case in BAD_MANIFESTS],
)
def test_validate_rejects(
    change: Callable[[Manifest], None], key: str, problem: str
) -> None:
    manifest = generated()
    change(manifest)
    with pytest.raises(ManifestError) as error:
        validate(manifest)
    text = message(error)
    assert text.startswith(f"manifest key '{key}': "), text
    assert problem in text


@pytest.mark.parametrize(
    ("bad_uri", "problem"),
    [("file:/a\0b", "contains a NUL character"), ("file:/\udce9", "lone surrogate")],
)
@pytest.mark.parametrize("at", [0, 4095, 4096, 9999])
def test_a_bad_string_anywhere_in_a_long_file_list_is_found(
    bad_uri: str, problem: str, at: int
) -> None:
    # The strings are checked some thousands at a time: a problem in the
    # first batch, in a later one or in the last one is found.
    manifest = generated()
    manifest["sgx"]["trusted_files"] = [
        {"uri": f"file:/lib/caf\u00e9-{i}", "sha256": sha(str(i))}
        for i in range(10_000)
    ]
    manifest["sgx"]["trusted_files"][at]["uri"] = bad_uri
    with pytest.raises(ManifestError) as error:
        validate(manifest)
    text = message(error)
    assert text.startswith(f"manifest key 'sgx.trusted_files[{at}].uri': "), text
    assert problem in text


def test_a_long_file_list_of_sound_strings_passes() -> None:
    manifest = generated()
    manifest["sgx"]["trusted_files"] = [
        {"uri": f"file:/lib/caf\u00e9-\U0001f600-{i}", "sha256": sha(str(i))}
        for i in range(10_000)
    ]
    validate(manifest)
    assert tomllib.loads(dumps(manifest)) == manifest


def test_bad_manifest_cases_are_distinct() -> None:
    assert len({case[0] for case in BAD_MANIFESTS}) == len(BAD_MANIFESTS) >= 20


def test_validate_root_not_a_table() -> None:
    with pytest.raises(
        ManifestError, match=r"^manifest: expected a table, got an array$"
    ):
        validate([])  # type: ignore[arg-type]


def test_validate_reports_one_error_deterministically() -> None:
    def broken() -> Manifest:
        manifest = generated()
        manifest["sgx"]["max_threads"] = 0
        manifest["sgx"]["debug"] = "no"
        manifest["fs"]["mounts"].append({"type": "nfs"})
        manifest["zzz"] = 1
        return manifest

    messages = set()
    for _ in range(3):
        with pytest.raises(ManifestError) as error:
            validate(broken())
        messages.add(message(error))
    assert len(messages) == 1
    # The shallowest problem is reported first.
    assert messages == {"manifest key 'zzz': unknown key"}


def test_validate_long_values_are_shortened() -> None:
    manifest = generated()
    manifest["loader"]["log_level"] = "x" * 500
    with pytest.raises(ManifestError) as error:
        validate(manifest)
    assert len(message(error)) < 300


# ---------------------------------------------------------------------------
# unsafe_options, parse_size, dumps


def test_unsafe_options_none_for_generated() -> None:
    assert unsafe_options(generated()) == []


def test_unsafe_options_found() -> None:
    manifest = generated()
    manifest["sgx"].update(
        debug=True,
        file_check_policy="allow_all_but_log",
        insecure__rpc_thread_num=0,
        insecure__allow_memfaults_without_exinfo=False,
    )
    manifest["loader"].update(insecure__use_host_env=True, insecure__disable_aslr=False)
    manifest["fs"]["insecure__keys"] = {"default": "00" * 16}
    manifest["sys"] = {"insecure__allow_eventfd": True}
    assert unsafe_options(manifest) == [
        "fs.insecure__keys",
        "loader.insecure__use_host_env",
        "sgx.debug",
        "sgx.file_check_policy",
        "sys.insecure__allow_eventfd",
    ]


def test_unsafe_options_empty_keys_table_and_strict_policy() -> None:
    manifest = generated()
    manifest["fs"]["insecure__keys"] = {}
    manifest["sgx"]["file_check_policy"] = "strict"
    assert unsafe_options(manifest) == []


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("4096", 4096), ("64K", 65536), ("256M", 256 << 20), ("1024G", 1 << 40)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1T", "64m", "1.5G", " 64M", "0x10M", "M"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ManifestError, match="is not a size"):
        parse_size(text)


def test_dumps_rejects_nul_with_key_path() -> None:
    manifest = generated()
    manifest["fs"]["mounts"][1]["uri"] = "file:/da\0ta"
    with pytest.raises(ManifestError, match=r"^manifest key 'fs\.mounts\[1\]\.uri': "):
        dumps(manifest)


def test_dumps_rejects_non_toml_value() -> None:
    with pytest.raises(ManifestError, match=r"'a\.b': a value of type set cannot"):
        dumps({"a": {"b": {1, 2}}})


def test_dumps_rejects_non_string_key() -> None:
    with pytest.raises(ManifestError, match="key 1 is not a string"):
        dumps({"a": {1: "x"}})


def test_dumps_matches_tomli_w() -> None:
    manifest = merge(
        generated(),
        {
            "sgx": {
                "trusted_files": [
                    {"uri": f"file:/lib/{i}.so", "sha256": sha(str(i))}
                    for i in range(5)
                ]
            }
        },
    )
    assert dumps(manifest) == tomli_w.dumps(manifest)
    assert "[[sgx.trusted_files]]" in dumps(manifest)


def test_trusted_file_entry_forms() -> None:
    assert TrustedFile("file:/a").as_entry() == "file:/a"
    assert TrustedFile("file:/a", sha("a")).as_entry() == {
        "uri": "file:/a",
        "sha256": sha("a"),
    }
