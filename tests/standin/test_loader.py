"""The Gramine stand-in loader, compiled and run on the host (no engine).

Manifests are written with tomli_w, the serializer Gramine and GSC use, and
the application is a Python program that reports the argv, environment and
working directory it was started with.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

BANNER = "gramine stand-in (test double, not Gramine)"
EXIT_CHECK = 70
EXIT_PARSE = 78

REPORT_APP = """\
import json
import os
import sys

with open("/proc/self/environ", "rb") as file:
    entries = [entry for entry in file.read().split(b"\\0") if entry]
env = dict(entry.decode("utf-8", "surrogateescape").split("=", 1) for entry in entries)
report = {
    "argv": sys.orig_argv,
    "env": env,
    "cwd": os.getcwd(),
    "uid": os.getuid(),
    "gid": os.getgid(),
}
print(json.dumps(report))
"""

TRICKY_ARGS = [
    'he said "hi"',
    "back\\slash\\",
    "C:\\dir\\file",
    "ünïcødé ✓ 😀",
    "",
    "tab\tand\nnewline",
    "'single'",
    "# not a comment",
    "= [ ] { } ,",
    "\u0001control\u001f",
    "x" * 300,
    "--flag=two words",
    "",
]

Manifest = dict[str, Any]


@dataclass
class AppTree:
    """A directory tree with an application and the files it trusts."""

    root: Path
    python: Path
    report: Path
    sysdb: Path
    work: Path
    app: Path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trusted(*paths: Path) -> list[dict[str, str]]:
    return [{"uri": f"file:{path}", "sha256": sha256_of(path)} for path in paths]


@pytest.fixture
def tree(tmp_path: Path) -> AppTree:
    report = tmp_path / "app" / "report.py"
    report.parent.mkdir()
    report.write_text(REPORT_APP)
    sysdb = tmp_path / "libsysdb.so"
    sysdb.write_bytes(bytes(range(256)) * 3)
    work = tmp_path / "work dir ü"
    work.mkdir()
    return AppTree(
        root=tmp_path,
        python=Path(os.path.realpath(sys.executable)),
        report=report,
        sysdb=sysdb,
        work=work,
        app=tmp_path / "app" / "report",
    )


def base_manifest(tree: AppTree, argv: list[str]) -> Manifest:
    return {
        "libos": {"entrypoint": str(tree.python)},
        "loader": {
            "entrypoint": {
                "uri": f"file:{tree.sysdb}",
                "sha256": sha256_of(tree.sysdb),
            },
            "log_level": "error",
            "argv": argv,
            "env": {"PATH": "/usr/bin:/bin"},
        },
        "fs": {
            "start_dir": str(tree.work),
            "mounts": [{"type": "tmpfs", "path": "/tmp"}],
        },
        "sgx": {"debug": False, "trusted_files": trusted(tree.python, tree.report)},
    }


def write_manifest(tree: AppTree, manifest: Manifest, mode: str) -> str:
    """Serialize with tomli_w where the loader of this mode looks for it."""
    text = tomli_w.dumps(manifest)
    write_manifest_bytes(tree, text.encode(), mode)
    return text


def write_manifest_bytes(tree: AppTree, data: bytes, mode: str) -> None:
    if mode == "sgx":
        Path(f"{tree.app}.manifest.sgx").write_bytes(data)
        Path(f"{tree.app}.sig").write_bytes(bytes(1808))
    else:
        Path(f"{tree.app}.manifest").write_bytes(data)


def run_loader(
    loader_dir: Path,
    app: Path | str,
    mode: str,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [
        str(loader_dir / mode / "loader"),
        str(loader_dir / "libpal.so"),
        "init",
        str(app),
        *(args or []),
    ]
    return subprocess.run(
        command,
        env=env if env is not None else {},
        capture_output=True,
        encoding="utf-8",
        errors="surrogateescape",
        timeout=60,
        check=False,
    )


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [BANNER]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def failure_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The one error line of a failed run, after checking the exit status."""
    assert result.returncode == status, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == BANNER
    assert lines[1].startswith("gramine-standin: ")
    return lines[1]


# ---- the application gets what the manifest says ---------------------------


@pytest.mark.parametrize("mode", ["direct", "sgx"])
def test_app_gets_manifest_argv_env_and_cwd(
    loader_dir: Path, tree: AppTree, mode: str
) -> None:
    argv = ["my python ✓", str(tree.report), *TRICKY_ARGS]
    manifest = base_manifest(tree, argv)
    manifest["loader"]["env"] = {
        "PLAIN": "value with spaces",
        "TRICKY": 'he said "hi" \\ ünï 😀\ttab\nnewline',
        "EMPTY": "",
        "AS_TABLE": {"value": "from a table"},
        "FROM_HOST": {"passthrough": True},
        "NOT_ON_HOST": {"passthrough": True},
        "LD_LIBRARY_PATH": "/gramine/runtime/glibc",
    }
    text = write_manifest(tree, manifest, mode)
    assert "argv = [\n" in text
    assert "[loader.env.AS_TABLE]" in text

    host_env = {"FROM_HOST": "host value = with equals", "SECRET": "must not leak"}
    report = report_of(run_loader(loader_dir, tree.app, mode, ["ignored"], host_env))

    assert report["argv"] == argv
    assert report["env"] == {
        "PLAIN": "value with spaces",
        "TRICKY": 'he said "hi" \\ ünï 😀\ttab\nnewline',
        "EMPTY": "",
        "AS_TABLE": "from a table",
        "FROM_HOST": "host value = with equals",
        "LD_LIBRARY_PATH": "/gramine/runtime/glibc",
    }
    assert report["cwd"] == str(tree.work)


def test_command_line_argv_when_manifest_allows_it(
    loader_dir: Path, tree: AppTree
) -> None:
    manifest = base_manifest(tree, [])
    del manifest["loader"]["argv"]
    manifest["loader"]["insecure__use_cmdline_argv"] = True
    write_manifest(tree, manifest, "direct")

    args = [str(tree.report), "one", "", "two words"]
    report = report_of(run_loader(loader_dir, tree.app, "direct", args))

    assert report["argv"] == [str(tree.app), *args]


def test_host_environment_when_manifest_allows_it(
    loader_dir: Path, tree: AppTree
) -> None:
    manifest = base_manifest(tree, ["python", str(tree.report)])
    manifest["loader"]["insecure__use_host_env"] = True
    manifest["loader"]["env"] = {"OVERRIDDEN": "by manifest", "ADDED": "too"}
    write_manifest(tree, manifest, "direct")

    host_env = {"OVERRIDDEN": "by host", "KEPT": "host value"}
    report = report_of(run_loader(loader_dir, tree.app, "direct", env=host_env))

    assert report["env"] == {
        "OVERRIDDEN": "by manifest",
        "KEPT": "host value",
        "ADDED": "too",
    }


def test_script_entrypoint_runs_through_its_interpreter(
    loader_dir: Path, tree: AppTree
) -> None:
    script = tree.root / "app" / "run"
    script.write_text(f"#!{tree.python}\n{REPORT_APP}")
    script.chmod(0o755)
    manifest = base_manifest(tree, ["run", "a", ""])
    manifest["libos"]["entrypoint"] = str(script)
    manifest["sgx"]["trusted_files"] = trusted(script)
    write_manifest(tree, manifest, "sgx")

    report = report_of(run_loader(loader_dir, tree.app, "sgx"))

    assert report["argv"] == [str(tree.python), str(script), "a", ""]


def test_entrypoint_and_trusted_files_compare_by_real_path(
    loader_dir: Path, tree: AppTree
) -> None:
    link = tree.root / "python-link"
    link.symlink_to(tree.python)
    directory = tree.root / "trusted-dir"
    directory.mkdir()
    (directory / "file").write_text("inside a trusted directory\n")
    manifest = base_manifest(tree, ["python", str(tree.report)])
    manifest["libos"]["entrypoint"] = str(link)
    manifest["sgx"]["trusted_files"] = [
        f"file:{directory}/",
        f"file:{tree.report}",
        *trusted(link),
    ]
    write_manifest(tree, manifest, "direct")

    report = report_of(run_loader(loader_dir, tree.app, "direct"))

    assert report["argv"] == ["python", str(tree.report)]


def test_hashes_agree_with_hashlib_at_block_boundaries(
    loader_dir: Path, tree: AppTree
) -> None:
    sizes = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 65535, 65536, 65537, 200_003]
    files = []
    for size in sizes:
        path = tree.root / f"data-{size}.bin"
        path.write_bytes(bytes((i * 7 + size) % 251 for i in range(size)))
        files.append(path)
    manifest = base_manifest(tree, ["python", str(tree.report)])
    manifest["sgx"]["trusted_files"] += trusted(*files)
    write_manifest(tree, manifest, "sgx")

    report = report_of(run_loader(loader_dir, tree.app, "sgx"))

    assert report["argv"] == ["python", str(tree.report)]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching ids needs root")
def test_switches_to_manifest_uid_and_gid_as_root(
    loader_dir: Path, tree: AppTree
) -> None:
    shell = Path(os.path.realpath("/bin/sh"))
    manifest = base_manifest(tree, ["sh", "-c", 'echo "$(id -u) $(id -g) $(id -G)"'])
    manifest["libos"]["entrypoint"] = str(shell)
    manifest["sgx"]["trusted_files"] = trusted(shell)
    manifest["fs"]["start_dir"] = "/"
    manifest["loader"].update(uid=1234, gid=4321)
    write_manifest(tree, manifest, "direct")

    result = run_loader(loader_dir, tree.app, "direct")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1234", "4321", "4321"]


def test_different_uid_without_root_fails(loader_dir: Path) -> None:
    runner = 65534 if os.geteuid() == 0 else os.geteuid()
    shell = Path(os.path.realpath("/bin/sh"))
    with tempfile.TemporaryDirectory() as name:
        # World-readable, so that an unprivileged runner can get this far.
        root = Path(name)
        root.chmod(0o755)
        loader = root / "loader"
        shutil.copy2(loader_dir / "direct" / "loader", loader)
        sysdb = root / "libsysdb.so"
        sysdb.write_bytes(b"sysdb")
        manifest = {
            "libos": {"entrypoint": str(shell)},
            "loader": {
                "entrypoint": {"uri": f"file:{sysdb}", "sha256": sha256_of(sysdb)},
                "argv": ["sh", "-c", "echo started"],
                "uid": runner + 1,
            },
            "sgx": {"trusted_files": trusted(shell)},
        }
        (root / "app.manifest").write_text(tomli_w.dumps(manifest))
        result = subprocess.run(
            [str(loader), str(loader), "init", str(root / "app")],
            env={},
            capture_output=True,
            encoding="utf-8",
            check=False,
            user=runner,
            timeout=60,
        )

    line = failure_line(result, EXIT_CHECK)
    assert f"switching to uid {runner + 1}" in line
    assert "needs root" in line
    assert result.stdout == ""


# ---- checks that fail ------------------------------------------------------

Mutation = Callable[[Manifest, AppTree], list[str]]


def wrong_trusted_hash(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["sgx"]["trusted_files"][1]["sha256"] = "0" * 64
    return ["sgx.trusted_files[1]", "SHA-256 mismatch", str(tree.report), "0" * 64]


def missing_trusted_file(manifest: Manifest, tree: AppTree) -> list[str]:
    missing = tree.root / "no such file"
    manifest["sgx"]["trusted_files"].append(
        {"uri": f"file:{missing}", "sha256": "1" * 64}
    )
    return ["sgx.trusted_files[2]", str(missing), "No such file"]


def trusted_directory_without_slash(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["sgx"]["trusted_files"].append(f"file:{tree.work}")
    return ["sgx.trusted_files[2]", str(tree.work), "not a regular file"]


def wrong_entrypoint_hash(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["loader"]["entrypoint"]["sha256"] = sha256_of(tree.report)
    return ["loader.entrypoint", "SHA-256 mismatch", str(tree.sysdb)]


def missing_entrypoint_hash(manifest: Manifest, tree: AppTree) -> list[str]:
    del manifest["loader"]["entrypoint"]["sha256"]
    return ["loader.entrypoint.sha256: missing"]


def missing_loader_entrypoint(manifest: Manifest, tree: AppTree) -> list[str]:
    del manifest["loader"]["entrypoint"]
    return ["loader.entrypoint: missing"]


def missing_libsysdb(manifest: Manifest, tree: AppTree) -> list[str]:
    tree.sysdb.unlink()
    return ["loader.entrypoint", str(tree.sysdb), "No such file"]


def untrusted_entrypoint(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["sgx"]["trusted_files"] = trusted(tree.report)
    return ["libos.entrypoint", str(tree.python), "is not in sgx.trusted_files"]


def missing_app(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["libos"]["entrypoint"] = str(tree.root / "gone")
    return ["libos.entrypoint", str(tree.root / "gone"), "cannot resolve"]


def no_argv_source(manifest: Manifest, tree: AppTree) -> list[str]:
    del manifest["loader"]["argv"]
    return ["no argv source", "loader.argv", "loader.insecure__use_cmdline_argv"]


def two_argv_sources(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["loader"]["insecure__use_cmdline_argv"] = True
    return ["mutually exclusive"]


def bad_env_entry(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["loader"]["env"]["BAD"] = {"value": 5}
    return ["loader.env.BAD", "{passthrough = true}"]


def missing_start_dir(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["fs"]["start_dir"] = str(tree.root / "nowhere")
    return ["fs.start_dir", str(tree.root / "nowhere")]


def wrong_argv_type(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["loader"]["argv"] = ["python", 3]
    return ["loader.argv[1]: expected a string"]


def wrong_table_type(manifest: Manifest, tree: AppTree) -> list[str]:
    manifest["sgx"]["trusted_files"] = "file:/bin/sh"
    return ["sgx.trusted_files: expected an array, found string"]


FAILURES: list[Mutation] = [
    wrong_trusted_hash,
    missing_trusted_file,
    trusted_directory_without_slash,
    wrong_entrypoint_hash,
    missing_entrypoint_hash,
    missing_loader_entrypoint,
    missing_libsysdb,
    untrusted_entrypoint,
    missing_app,
    no_argv_source,
    two_argv_sources,
    bad_env_entry,
    missing_start_dir,
    wrong_argv_type,
    wrong_table_type,
]


@pytest.mark.parametrize("mutate", FAILURES, ids=lambda mutate: mutate.__name__)
def test_failed_check_exits_70_naming_the_problem(
    loader_dir: Path, tree: AppTree, mutate: Mutation
) -> None:
    manifest = base_manifest(tree, ["python", str(tree.report)])
    expected = mutate(manifest, tree)
    write_manifest(tree, manifest, "direct")

    line = failure_line(run_loader(loader_dir, tree.app, "direct"), EXIT_CHECK)

    for fragment in expected:
        assert fragment in line


def test_sgx_mode_needs_the_signature_file(loader_dir: Path, tree: AppTree) -> None:
    write_manifest(tree, base_manifest(tree, ["python", str(tree.report)]), "sgx")
    Path(f"{tree.app}.sig").unlink()

    line = failure_line(run_loader(loader_dir, tree.app, "sgx"), EXIT_CHECK)

    assert f"{tree.app}.sig: missing" in line


def test_sgx_mode_needs_a_hash_for_every_trusted_file(
    loader_dir: Path, tree: AppTree
) -> None:
    manifest = base_manifest(tree, ["python", str(tree.report)])
    manifest["sgx"]["trusted_files"].append(f"file:{tree.sysdb}")
    write_manifest(tree, manifest, "sgx")

    line = failure_line(run_loader(loader_dir, tree.app, "sgx"), EXIT_CHECK)

    assert f"sgx.trusted_files[2]: file:{tree.sysdb} has no sha256" in line


def test_direct_mode_reads_the_unsigned_manifest(
    loader_dir: Path, tree: AppTree
) -> None:
    write_manifest(tree, base_manifest(tree, ["python", str(tree.report)]), "sgx")

    line = failure_line(run_loader(loader_dir, tree.app, "direct"), EXIT_CHECK)

    assert f"cannot read manifest {tree.app}.manifest:" in line


@pytest.mark.parametrize(
    "args", [["pal", "init"], ["pal", "start", "app"]], ids=["short", "no-init"]
)
def test_wrong_command_line_is_a_usage_error(loader_dir: Path, args: list[str]) -> None:
    result = subprocess.run(
        [str(loader_dir / "direct" / "loader"), *args],
        capture_output=True,
        encoding="utf-8",
        check=False,
    )

    assert failure_line(result, 64).endswith("LIBPAL init APP [ARGS...]")


# ---- parsing ---------------------------------------------------------------

PARSE_ERRORS: list[tuple[str, bytes, int]] = [
    ("missing value", b"a = 1\nb = \n", 2),
    ("open header", b"# comment\n[table\n", 2),
    ("open string", b'a = "open\n', 1),
    ("float", b"x = 1\n\ny = 1.5\n", 3),
    ("date", b"when = 2024-01-02\n", 1),
    ("duplicate key", b"a = 1\na = 2\n", 2),
    ("bad escape", b's = "bad \\q escape"\n', 1),
    ("surrogate escape", b's = "\\ud800"\n', 1),
    ("table twice", b"[t]\nx = 1\n[t]\n", 3),
    ("open array", b"arr = [\n  1,\n  2\n", 4),
    ("trailing comma inline", b"t = {a = 1,}\n", 1),
    ("invalid utf-8", b'ok = 1\nk = "\xff"\n', 2),
    ("too large", b"k = 99999999999999999999\n", 1),
    ("bare word", b"\n\n\nk = tru\n", 4),
    ("two values", b"k = 1 2\n", 1),
    ("nul escape", b'k = "a\\u0000b"\n', 1),
    ("extend inline table", b"t = {a = 1}\n[t.b]\n", 2),
]


@pytest.mark.parametrize(
    ("text", "line"),
    [(text, line) for _, text, line in PARSE_ERRORS],
    ids=[name for name, _, _ in PARSE_ERRORS],
)
def test_unparsable_manifest_exits_78_naming_the_line(
    loader_dir: Path, tree: AppTree, text: bytes, line: int
) -> None:
    write_manifest_bytes(tree, text, "direct")

    message = failure_line(run_loader(loader_dir, tree.app, "direct"), EXIT_PARSE)

    assert message.startswith(f"gramine-standin: {tree.app}.manifest: line {line}: ")


HAND_WRITTEN = r"""# a comment before anything
title = "x"  # trailing comment
"quoted key" = 'literal \n has no escapes'
'literal key' = "esc: \b\t\n\f\r\"\\ \u00e9 \U0001F600 end"
"" = "empty key"
dotted.key.here = 1
dotted . key . other = -42
hex = 0xdead_BEEF
oct = 0o755
bin = 0b1010
under = 1_000_000
min = -9223372036854775808
max = 9223372036854775807
pos = +17
zero = 0
flags = [true, false]
nested = [[1, 2], ["a", 'b'], [], [{x = 1}]]
multi = [
    "one",  # comment inside an array

    "two",
    # a comment line
    "three",
]
inline = { a = 1, b.c = "d", e = { f = [1] } }
empty_inline = {}
ml = <3DQ>
first line
  second \
    continued "quoted" ""twice"" <3DQ>
ml_lit = '''
raw \n text with 'quotes' '''
ends_in_quotes = <3DQ>a"<3DQ>
env = { A = "x", B = { passthrough = true }, C = { value = "y" } }

[table]
key = "v"

[table.sub]
x = 1

[a.b.c]
deep = true

[a]
shallow = true

[[arr]]
n = 1

[[arr]]
n = 2

[arr.sub]
m = 3

[[arr.list]]
z = 1

[ "spaced header" . 'part' ]
ok = true
""".replace("<3DQ>", '"' * 3)


@pytest.mark.parametrize(
    "text",
    [
        HAND_WRITTEN,
        HAND_WRITTEN.replace("\n", "\r\n"),
        "",
        "# only a comment",
        "k = 'no newline at the end'",
    ],
    ids=["hand-written", "crlf", "empty", "comment", "no-final-newline"],
)
def test_parser_agrees_with_tomllib(loader_dir: Path, tree: AppTree, text: str) -> None:
    write_manifest_bytes(tree, text.encode(), "direct")

    dumped = dump(loader_dir, tree.app, "direct")

    assert dumped["manifest"] == tomllib.loads(text)


def dump(
    loader_dir: Path, app: Path | str, mode: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    result = run_loader(
        loader_dir, app, mode, env={"GSC_STANDIN_DUMP": "1", **(env or {})}
    )
    assert result.returncode == 0, result.stderr
    dumped: dict[str, Any] = json.loads(result.stdout)
    return dumped


def test_dump_of_a_gsc_like_manifest_agrees_with_tomllib(
    loader_dir: Path, sgx_vectors: Path
) -> None:
    app = sgx_vectors / "v6-gsc-like"
    manifest_path = Path(f"{app}.manifest.sgx")
    expected = tomllib.loads(manifest_path.read_text(encoding="utf-8"))

    dumped = dump(loader_dir, app, "sgx", env={"HOME": "/home/tester"})

    assert dumped["mode"] == "sgx"
    assert dumped["manifest_path"] == str(manifest_path)
    assert dumped["manifest"] == expected
    assert dumped["argv"] == expected["loader"]["argv"]
    assert "" in dumped["argv"]
    assert dumped["env"] == {
        **{k: v for k, v in expected["loader"]["env"].items() if isinstance(v, str)},
        "HOME": "/home/tester",
    }
    assert dumped["entrypoint"] == expected["libos"]["entrypoint"]
    assert dumped["start_dir"] == expected["fs"]["start_dir"]


@pytest.fixture(scope="session")
def sgx_vectors() -> Path:
    """The shared SGX test vectors: beside the repository, or /work/shared."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [
        Path(os.environ.get("GSC_SHARED_DIR", repo.parent / "shared")),
        Path("/work/shared"),
    ]
    for shared in candidates:
        vectors = shared / "testdata" / "sgx-vectors"
        if vectors.is_dir():
            return vectors
    raise FileNotFoundError(f"no testdata/sgx-vectors in {candidates}")


# Any Unicode scalar value but NUL, which the stand-in does not accept.
CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")
SCALARS = st.one_of(
    st.text(alphabet=CHARACTERS, max_size=24),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
)
KEYS = st.text(alphabet=CHARACTERS, max_size=8).map(lambda text: "k" + text)
DOCUMENTS = st.dictionaries(
    KEYS,
    st.recursive(
        SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)
        ),
        max_leaves=16,
    ),
    max_size=6,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(document=DOCUMENTS)
def test_any_tomli_w_document_parses_back(
    loader_dir: Path, tree: AppTree, document: dict[str, Any]
) -> None:
    write_manifest(tree, document, "direct")

    assert dump(loader_dir, tree.app, "direct")["manifest"] == document
