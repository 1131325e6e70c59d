"""`gsc sign-image` and `gsc info-image` end to end, with the real engine and
real RSA keys, on an image built with the stand-in Gramine image."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gsc.sgx.sigstruct import Sigstruct
from tests.conftest import Gsc, error_line, instructions, run_image

pytestmark = pytest.mark.engine

APP = "gsc-test/python-sign"
UNSIGNED = "gsc-gsc-test/python-sign-unsigned:latest"
SIGNED = "gsc-gsc-test/python-sign:latest"
PASSPHRASE = "correct horse battery staple 7"


def read_app_file(client: docker.DockerClient, image: str, name: str) -> bytes:
    container = client.containers.create(image, command=["/none"])
    try:
        chunks, _ = container.get_archive(f"/gramine/app_files/{name}")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile(name)
            assert member is not None
            return member.read()
    finally:
        container.remove(force=True)


def write_key(path: Path, passphrase: bytes | None = None) -> rsa.RSAPrivateKey:
    """A new RSA-3072 key with exponent 3, written as PEM (encrypted if asked)."""
    key = rsa.generate_private_key(public_exponent=3, key_size=3072)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )
    return key


def public_key_of(key: Path, public: Path) -> None:
    """Write the public half of `key`, as an external signer would hand it over."""
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(public)],
        check=True,
    )


def openssl_sign(key: Path, data: Path, signature: Path) -> None:
    """Sign `data` with openssl, the external signer of the README's example."""
    subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-sign",
            str(key),
            "-out",
            str(signature),
            str(data),
        ],
        check=True,
    )


@pytest.fixture(scope="module")
def unsigned(gsc: Gsc, docker_client: docker.DockerClient) -> Iterator[str]:
    docker_client.images.get("gsc-test/python-app").tag(APP, "latest")
    gsc.made += [f"{APP}:latest", UNSIGNED, SIGNED]
    gsc("build", "-c", str(gsc.config), "-L", APP)
    yield UNSIGNED


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "enclave-key.pem"
    write_key(path)
    return path


def test_signed_image_runs_and_reads_back_valid(
    gsc: Gsc, unsigned: str, key_file: Path, docker_client: docker.DockerClient
) -> None:
    expected = json.loads(gsc("info-image", "--json", unsigned).stdout)
    gsc("sign-image", APP, str(key_file), "--date", "2026-01-02")

    info = json.loads(gsc("info-image", "--json", SIGNED).stdout)
    raw = read_app_file(docker_client, SIGNED, "entrypoint.sig")
    sigstruct = Sigstruct.from_bytes(raw)
    run = run_image(SIGNED)

    assert info["signature_valid"] is True
    assert info["mr_enclave"] == expected["mr_enclave"] == sigstruct.mr_enclave.hex()
    assert info["date"] == "2026-01-02"
    public = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(public, rsa.RSAPrivateKey)
    assert sigstruct.modulus == public.public_key().public_numbers().n
    labels = docker_client.images.get(SIGNED).labels
    assert labels["gsc.mrenclave"] == info["mr_enclave"]
    assert labels["gsc.mrsigner"] == info["mr_signer"]
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["argv"][0] == "/app/report.py"


def test_signing_adds_one_layer_and_the_signature_labels(
    gsc: Gsc, unsigned: str, key_file: Path, docker_client: docker.DockerClient
) -> None:
    result = gsc("-v", "sign-image", APP, str(key_file))
    below = docker_client.images.get(unsigned)
    signed = docker_client.images.get(SIGNED)
    sigstruct = Sigstruct.from_bytes(
        read_app_file(docker_client, SIGNED, "entrypoint.sig")
    )

    assert instructions(result) == ["FROM", "COPY", "LABEL"]
    layers = signed.attrs["RootFS"]["Layers"]
    assert layers[:-1] == below.attrs["RootFS"]["Layers"]
    assert len(layers) == len(below.attrs["RootFS"]["Layers"]) + 1
    added = {k: v for k, v in signed.labels.items() if below.labels.get(k) != v}
    assert added == {
        "gsc.mrenclave": sigstruct.mr_enclave.hex(),
        "gsc.mrsigner": sigstruct.mr_signer().hex(),
        "gsc.isvprodid": str(sigstruct.isv_prod_id),
        "gsc.isvsvn": str(sigstruct.isv_svn),
    }
    assert signed.labels["gsc.debug"] == below.labels["gsc.debug"] == "false"
    assert set(below.labels) <= set(signed.labels)


def test_signing_is_reproducible_for_the_same_date(
    gsc: Gsc, unsigned: str, key_file: Path, docker_client: docker.DockerClient
) -> None:
    env_date = {"SOURCE_DATE_EPOCH": "1767312000"}  # 2026-01-02 00:00 UTC
    gsc("sign-image", APP, str(key_file), "--date", "2026-01-02")
    first = read_app_file(docker_client, SIGNED, "entrypoint.sig")
    os.environ.update(env_date)
    try:
        gsc("sign-image", APP, str(key_file))
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    second = read_app_file(docker_client, SIGNED, "entrypoint.sig")

    assert first == second


def test_external_signer_gives_the_same_signature(
    gsc: Gsc, unsigned: str, key_file: Path, docker_client: docker.DockerClient
) -> None:
    gsc("sign-image", APP, str(key_file), "--date", "2026-01-02")
    direct = read_app_file(docker_client, SIGNED, "entrypoint.sig")
    public = gsc.workdir / "public.pem"
    data = gsc.workdir / "to-sign.bin"
    signature = gsc.workdir / "signature.bin"
    public_key_of(key_file, public)

    common = ("--public-key", str(public), "--date", "2026-01-02")
    gsc("sign-image", APP, *common, "--export-signing-data", str(data))
    openssl_sign(key_file, data, signature)
    gsc("sign-image", APP, *common, "--signature", str(signature))
    external = read_app_file(docker_client, SIGNED, "entrypoint.sig")

    assert len(data.read_bytes()) == 256
    assert external == direct


def test_external_signature_over_other_data_is_refused(
    gsc: Gsc, unsigned: str, key_file: Path, docker_client: docker.DockerClient
) -> None:
    public = gsc.workdir / "public-bad.pem"
    signature = gsc.workdir / "wrong.bin"
    other = gsc.workdir / "other.bin"
    other.write_bytes(b"not the SIGSTRUCT")
    public_key_of(key_file, public)
    openssl_sign(key_file, other, signature)
    before = (
        docker_client.images.get(SIGNED).id if _exists(docker_client, SIGNED) else ""
    )

    result = gsc(
        "sign-image",
        APP,
        "--public-key",
        str(public),
        "--signature",
        str(signature),
        check=False,
    )

    assert "--date" in error_line(result)
    after = (
        docker_client.images.get(SIGNED).id if _exists(docker_client, SIGNED) else ""
    )
    assert after == before


def _exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def test_encrypted_key_and_no_secret_in_any_layer(
    gsc: Gsc, unsigned: str, docker_client: docker.DockerClient
) -> None:
    key_path = gsc.workdir / "protected.pem"
    key = write_key(key_path, PASSPHRASE.encode())
    os.environ["GSC_TEST_PASSPHRASE"] = PASSPHRASE
    try:
        result = gsc(
            "sign-image", APP, str(key_path), "--passphrase-env", "GSC_TEST_PASSPHRASE"
        )
    finally:
        del os.environ["GSC_TEST_PASSPHRASE"]

    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    secrets = [
        der,
        der[-64:],
        key_path.read_bytes(),
        key_path.read_bytes().splitlines()[2],
        PASSPHRASE.encode(),
        base64.b64encode(der)[:64],
        key.private_numbers().d.to_bytes(384, "big")[:48],
        key.private_numbers().p.to_bytes(192, "little")[:48],
    ]
    saved = b"".join(docker_client.api.get_image(SIGNED))
    history = json.dumps(docker_client.api.history(SIGNED)).encode()
    inspect = json.dumps(docker_client.api.inspect_image(SIGNED)).encode()
    output = (result.stdout + result.stderr).encode()
    for haystack in (saved, history, inspect, output):
        for secret in secrets:
            assert secret not in haystack
    assert PASSPHRASE not in " ".join(
        Path("/proc/self/cmdline").read_text().split("\0")
    )


def test_wrong_passphrase_is_one_line_and_makes_nothing(
    gsc: Gsc, unsigned: str, docker_client: docker.DockerClient
) -> None:
    key_path = gsc.workdir / "protected-2.pem"
    write_key(key_path, PASSPHRASE.encode())
    passphrase = gsc.workdir / "wrong-passphrase.txt"
    passphrase.write_text("not it\n", encoding="utf-8")
    images = sorted(i.id for i in docker_client.images.list(all=True))

    result = gsc(
        "sign-image",
        APP,
        str(key_path),
        "--passphrase-file",
        str(passphrase),
        check=False,
    )

    assert "passphrase" in error_line(result)
    assert sorted(i.id for i in docker_client.images.list(all=True)) == images


def test_corrupted_signature_is_reported(
    gsc: Gsc, unsigned: str, key_file: Path, docker_client: docker.DockerClient
) -> None:
    gsc("sign-image", APP, str(key_file))
    broken = "gsc-test/python-sign-broken:latest"
    gsc.made.append(broken)
    dockerfile = (
        f'FROM {SIGNED}\nRUN ["python3", "-c", "import sys; '
        "f=open('/gramine/app_files/entrypoint.sig','r+b'); f.seek(0x3C0); "
        "f.write(b'\\\\x00'*4)\"]\n"
    )
    docker_client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=broken, rm=True
    )

    result = gsc("info-image", broken, check=False)

    line = error_line(result)
    assert "signature does not verify" in line or "differs" in line


def test_sign_image_refuses_an_image_that_was_never_built(
    gsc: Gsc, key_file: Path
) -> None:
    result = gsc("sign-image", "gsc-test/debian:12", str(key_file), check=False)

    assert "gsc build" in error_line(result)


def test_sgx_loader_starts_without_its_libraries_in_the_app_image(
    gsc: Gsc, unsigned: str, key_file: Path
) -> None:
    gsc("sign-image", APP, str(key_file))
    loader = "/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine/sgx/loader"

    unbundled = run_image(SIGNED, extra=("--entrypoint", loader))
    launched = run_image(SIGNED)

    assert unbundled.returncode != 0
    assert "libprotobuf-c.so.1" in unbundled.stderr
    assert launched.returncode == 0, launched.stderr
