"""Bad input of every kind: one line naming the input and the problem, exit
status 1, no traceback, and nothing left behind (no image, no container, no
temporary directory). Runs the real command line against the real engine."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import STANDIN_GRAMINE, Gsc, error_line

pytestmark = pytest.mark.engine

BASE = "gsc-test/debian:12"
BROKEN = {
    "no-command": "ENTRYPOINT []\nCMD []\n",
    "missing-program": 'CMD ["/opt/not-there"]\n',
    "missing-interpreter": (
        "RUN printf '#!/usr/bin/not-a-shell\\necho hi\\n' > /run.sh\n"
        "RUN chmod 755 /run.sh\n"
        'ENTRYPOINT ["/run.sh"]\n'
    ),
    "symlink-loop": (
        'RUN ln -s /loop-b /loop-a && ln -s /loop-a /loop-b\nCMD ["/loop-a"]\n'
    ),
    "not-executable": 'RUN echo data > /data.txt\nCMD ["/data.txt"]\n',
    "unknown-user": 'USER nobody-here\nCMD ["/bin/true"]\n',
}


@dataclass(frozen=True)
class Case:
    """A bad input and a word its error line must contain."""

    args: tuple[str, ...]
    expect: str
    env: tuple[tuple[str, str], ...] = ()


@pytest.fixture(scope="module")
def broken_images(docker_client: docker.DockerClient, gsc: Gsc) -> Iterator[None]:
    for name, body in BROKEN.items():
        tag = f"gsc-test/broken-{name}:latest"
        docker_client.images.build(
            fileobj=io.BytesIO(f"FROM {BASE}\n{body}".encode()),
            tag=tag,
            rm=True,
            network_mode="none",
        )
        gsc.made.append(tag)
    yield


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bad manifests, configs and keys, written once."""
    root = tmp_path_factory.mktemp("bad-input")
    write = _writer(root)
    write("bad.toml", "[sgx\nmax_threads = 4\n")
    write("unknown-key.toml", "[sgx]\nno_such_option = true\n")
    write("wrong-type.toml", '[sgx]\nmax_threads = "8"\n')
    write("argv-conflict.toml", '[loader]\nargv = ["a"]\nargv_src_file = "file:/x"\n')
    write("size.toml", '[sgx]\nenclave_size = "3G"\n')
    write("threads-high.toml", "[sgx]\nmax_threads = 5000\n")
    write("threads-zero.toml", "[sgx]\nmax_threads = 0\n")
    write("missing-trusted.toml", '[sgx]\ntrusted_files = ["file:/opt/none.bin"]\n')
    write(
        "wrong-hash.toml",
        '[[sgx.trusted_files]]\nuri = "file:/app/report.py"\nsha256 = "'
        + "0" * 64
        + '"\n',
    )
    write("dir-no-slash.toml", '[sgx]\ntrusted_files = ["file:/app"]\n')
    write("insecure-key.toml", "[loader]\ninsecure__no_such = true\n")
    write("sgx-not-table.toml", "sgx = 1\n")
    write("trusted-not-list.toml", "[sgx]\ntrusted_files = 1\n")
    write("allowed-not-list.toml", '[sgx]\nallowed_files = "file:/tmp/"\n')
    write("trusted-uri-list.toml", '[sgx]\ntrusted_files = [{uri = ["file:/a"]}]\n')
    (root / "latin1.toml").write_bytes(b'[loader.env]\nNAME = "caf\xe9"\n')
    write("config-bad.yaml", "Gramine: [unclosed\n")
    write("config-unknown.yaml", "Gramine:\n  Image: x\nColour: blue\n")
    write("config-unknown-nested.yaml", "Gramine:\n  Imagee: x\n")
    write("config-type.yaml", "Gramine:\n  Image: [a, b]\n")
    write("config-list.yaml", "- Gramine\n")
    write("config-both.yaml", "Gramine:\n  Image: a\nGraphene:\n  Image: b\n")
    write("config-empty.yaml", "Distro: auto\n")
    write("config-not-gramine.yaml", f"Gramine:\n  Image: {BASE}\n")
    write("config-missing-image.yaml", "Gramine:\n  Image: gsc-test/not-an-image\n")
    (root / "config-dir.yaml").mkdir()
    write("not-pem.pem", "just some text, not a key\n")
    _key(root / "ec.pem", ec.generate_private_key(ec.SECP256R1()))
    _key(root / "rsa-2048.pem", rsa.generate_private_key(3, 2048))
    _key(root / "rsa-65537.pem", rsa.generate_private_key(65537, 3072))
    good = rsa.generate_private_key(3, 3072)
    _key(root / "good.pem", good)
    _key(root / "encrypted.pem", good, b"sesame")
    text = (root / "good.pem").read_text().splitlines()
    write("truncated.pem", "\n".join(text[: len(text) // 2]) + "\n")
    (root / "key-dir.pem").mkdir()
    write("garbage.sig", "x" * 100)
    (root / "nonempty").mkdir()
    write("nonempty/file", "x")
    return root


def _writer(root: Path) -> Callable[[str, str], None]:
    def write(name: str, text: str) -> None:
        (root / name).write_text(text, encoding="utf-8")

    return write


def _key(path: Path, key: object, passphrase: bytes | None = None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )


APP = "gsc-test/python-app"
CONFIG = "{config}"
F = "{files}"


def build(*extra: str, manifest: str = "", config: str = CONFIG) -> tuple[str, ...]:
    tail = (f"{F}/{manifest}",) if manifest else ()
    return ("build", "-c", config, "-L", *extra, APP, *tail)


def sign(key: str, *extra: str) -> tuple[str, ...]:
    return ("sign-image", APP, f"{F}/{key}", *extra)


CASES = {
    # configuration files
    "config-bad-yaml": Case(build(config=f"{F}/config-bad.yaml"), "YAML"),
    "config-unknown-key": Case(build(config=f"{F}/config-unknown.yaml"), "Colour"),
    "config-unknown-nested": Case(
        build(config=f"{F}/config-unknown-nested.yaml"), "Gramine.Imagee"
    ),
    "config-wrong-type": Case(build(config=f"{F}/config-type.yaml"), "Gramine.Image"),
    "config-not-mapping": Case(build(config=f"{F}/config-list.yaml"), "mapping"),
    "config-both-names": Case(build(config=f"{F}/config-both.yaml"), "Graphene"),
    "config-missing": Case(build(config=f"{F}/no-such.yaml"), "no-such.yaml"),
    "config-directory": Case(build(config=f"{F}/config-dir.yaml"), "config-dir.yaml"),
    "config-no-gramine-image": Case(
        build(config=f"{F}/config-empty.yaml"), "Gramine.Image"
    ),
    "gramine-image-not-gramine": Case(
        build(config=f"{F}/config-not-gramine.yaml"), "Gramine"
    ),
    "gramine-image-missing": Case(
        build(config=f"{F}/config-missing-image.yaml"), "gsc-test/not-an-image"
    ),
    # manifests
    "manifest-bad-toml": Case(build(manifest="bad.toml"), "bad.toml"),
    "manifest-unknown-key": Case(
        build(manifest="unknown-key.toml"), "sgx.no_such_option"
    ),
    "manifest-wrong-type": Case(build(manifest="wrong-type.toml"), "sgx.max_threads"),
    "manifest-argv-conflict": Case(build(manifest="argv-conflict.toml"), "argv"),
    "manifest-size-not-power": Case(build(manifest="size.toml"), "sgx.enclave_size"),
    "manifest-threads-high": Case(
        build(manifest="threads-high.toml"), "sgx.max_threads"
    ),
    "manifest-threads-zero": Case(
        build(manifest="threads-zero.toml"), "sgx.max_threads"
    ),
    "manifest-trusted-missing": Case(
        build(manifest="missing-trusted.toml"), "/opt/none.bin"
    ),
    "manifest-trusted-wrong-hash": Case(build(manifest="wrong-hash.toml"), "report.py"),
    "manifest-trusted-dir": Case(build(manifest="dir-no-slash.toml"), "file:/app"),
    "manifest-unknown-insecure": Case(
        build(manifest="insecure-key.toml"), "loader.insecure__no_such"
    ),
    "manifest-not-utf8": Case(build(manifest="latin1.toml"), "UTF-8"),
    "manifest-sgx-not-table": Case(
        build(manifest="sgx-not-table.toml"), "manifest key 'sgx'"
    ),
    "manifest-trusted-not-list": Case(
        build(manifest="trusted-not-list.toml"), "'sgx.trusted_files'"
    ),
    "manifest-allowed-not-list": Case(
        build(manifest="allowed-not-list.toml"), "'sgx.allowed_files'"
    ),
    "manifest-trusted-uri-list": Case(
        build(manifest="trusted-uri-list.toml"), "'sgx.trusted_files[0].uri'"
    ),
    "manifest-missing": Case(build(manifest="none.toml"), "none.toml"),
    # images
    "image-unknown": Case(("build", "-c", CONFIG, "gsc-test/no-such-image"), "no-such"),
    "image-no-command": Case(
        ("build", "-c", CONFIG, "gsc-test/broken-no-command"), "ENTRYPOINT"
    ),
    "image-missing-program": Case(
        ("build", "-c", CONFIG, "gsc-test/broken-missing-program"), "/opt/not-there"
    ),
    "image-missing-interpreter": Case(
        ("build", "-c", CONFIG, "gsc-test/broken-missing-interpreter"), "not-a-shell"
    ),
    "image-symlink-loop": Case(
        ("build", "-c", CONFIG, "gsc-test/broken-symlink-loop"), "symbolic links"
    ),
    "image-not-executable": Case(
        ("build", "-c", CONFIG, "gsc-test/broken-not-executable"), "executable"
    ),
    "image-unknown-user": Case(
        ("build", "-c", CONFIG, "gsc-test/broken-unknown-user"), "nobody-here"
    ),
    "image-by-id": Case(("build", "-c", CONFIG, "sha256:" + "ab" * 32), "by name"),
    "image-already-gsc": Case(("build", "-c", CONFIG, STANDIN_GRAMINE + "-gsc"), "GSC"),
    # keys
    "key-not-pem": Case(sign("not-pem.pem"), "PEM"),
    "key-not-rsa": Case(sign("ec.pem"), "RSA"),
    "key-2048": Case(sign("rsa-2048.pem"), "3072"),
    "key-exponent": Case(sign("rsa-65537.pem"), "exponent"),
    "key-truncated": Case(sign("truncated.pem"), "truncated"),
    "key-directory": Case(sign("key-dir.pem"), "key-dir.pem"),
    "key-missing": Case(sign("no-such-key.pem"), "no-such-key.pem"),
    "key-needs-passphrase": Case(sign("encrypted.pem"), "passphrase"),
    "key-passphrase-env-unset": Case(
        sign("encrypted.pem", "--passphrase-env", "GSC_NOT_SET_ANYWHERE"),
        "GSC_NOT_SET_ANYWHERE",
    ),
    "key-and-public-key": Case(
        sign("good.pem", "--public-key", f"{F}/good.pem"), "--public-key"
    ),
    "key-source-date-epoch": Case(
        sign("good.pem"), "SOURCE_DATE_EPOCH", (("SOURCE_DATE_EPOCH", "yesterday"),)
    ),
    # arguments
    "arg-build-arg-empty-key": Case(build("--build-arg", "=x"), "--build-arg"),
    "arg-file-only-not-empty": Case(build("--file-only", f"{F}/nonempty"), "nonempty"),
    "arg-trusted-relative": Case(build("--trusted", "etc/passwd"), "--trusted"),
    "arg-env-without-value": Case(build("--env", "NOEQUALS"), "NOEQUALS"),
    "arg-secrets-unknown": Case(build("--secrets", "bogus"), "--secrets"),
    "arg-encrypted-relative": Case(build("--encrypted-volume", "data"), "data"),
    "info-not-gsc-image": Case(("info-image", BASE), "not a GSC image"),
    "engine-unreachable": Case(
        ("info-image", "whatever"),
        "engine",
        (("DOCKER_HOST", "unix:///nonexistent.sock"),),
    ),
}


@pytest.fixture(scope="module")
def already_gsc(docker_client: docker.DockerClient, gsc: Gsc) -> Iterator[None]:
    name = STANDIN_GRAMINE + "-gsc:latest"
    dockerfile = f'FROM {BASE}\nLABEL gsc.version=0.0.1\nCMD ["/bin/true"]\n'
    docker_client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=name, rm=True
    )
    gsc.made.append(name)
    yield


def engine_state(client: docker.DockerClient) -> tuple[list[str], list[str]]:
    """Every image (with its tags) and every container the engine has."""
    images = sorted(
        f"{i['Id']} {sorted(i.get('RepoTags') or [])}"
        for i in client.api.images(all=True)
    )
    containers = sorted(c["Id"] for c in client.api.containers(all=True))
    return images, containers


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_leaves_nothing(
    name: str,
    gsc: Gsc,
    files: Path,
    broken_images: None,
    already_gsc: None,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    case = CASES[name]
    args = [a.format(config=gsc.config, files=files) for a in case.args]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    before = engine_state(docker_client)

    result = gsc(*args, check=False, env={"TMPDIR": str(scratch), **dict(case.env)})

    line = error_line(result)
    assert case.expect in line
    assert engine_state(docker_client) == before
    assert list(scratch.iterdir()) == []


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_usage_errors_exit_with_status_two(gsc: Gsc) -> None:
    for args in (
        ("build",),
        ("sign-image", APP, "k.pem", "--date", "2026-13-01"),
        ("no-such-command",),
    ):
        result = gsc(*args, check=False)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
