"""The enclave inside a GSC image: its manifest, its PAL, its measurement."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from gsc.engine import Engine
from gsc.errors import ImageError
from gsc.sgx.layout import enclave_config
from gsc.sgx.manifest_sgx import complete_manifest, parse_manifest
from gsc.sgx.measure import measure_enclave
from gsc.trust import APP_FILES

LABEL = "gsc."
MANIFEST = f"{APP_FILES}/entrypoint.manifest"
MANIFEST_SGX = f"{APP_FILES}/entrypoint.manifest.sgx"
SIGSTRUCT = f"{APP_FILES}/entrypoint.sig"


@dataclass(frozen=True)
class Enclave:
    """What a verifier and a signer need to know about a GSC image's enclave."""

    image_name: str
    image_id: str
    labels: dict[str, str]
    manifest_sgx: bytes
    manifest: dict[str, Any]
    mr_enclave: bytes
    sigstruct: bytes | None  # the shipped SIGSTRUCT, if the image is signed

    @property
    def uses_standin(self) -> bool:
        """Whether the image was built with the tests' stand-in for Gramine."""
        return self.labels.get(LABEL + "standin") == "true"


STANDIN_WARNING = (
    "was built with a stand-in for Gramine made for tests: these values are"
    " not the measurement of a real Gramine enclave"
)


def read_enclave(engine: Engine, name: str) -> Enclave:
    """Read a GSC image's manifest and PAL and measure its enclave."""
    attrs = engine.inspect_image(name)
    labels: dict[str, str] = dict((attrs.get("Config") or {}).get("Labels") or {})
    if LABEL + "version" not in labels:
        raise ImageError(f"image '{name}' is not a GSC image (no gsc.version label)")
    pkglibdir = labels.get(LABEL + "pkglibdir", "")
    if not pkglibdir.startswith("/"):
        raise ImageError(f"image '{name}': its gsc.pkglibdir label is missing or bad")
    libpal_path = posixpath.join(pkglibdir, "sgx", "libpal.so")
    image_id = str(attrs["Id"])
    files = engine.read_files(
        image_id, [MANIFEST, MANIFEST_SGX, SIGSTRUCT, libpal_path]
    )
    for needed in (MANIFEST, libpal_path):
        if needed not in files:
            raise ImageError(f"image '{name}': {needed} is missing; rebuild the image")
    manifest_sgx = files.get(MANIFEST_SGX) or _complete(
        engine, image_id, files, pkglibdir
    )
    manifest = parse_manifest(_text(manifest_sgx, name))
    mr_enclave = measure_enclave(
        manifest_sgx, files[libpal_path], enclave_config(manifest)
    )
    return Enclave(
        image_name=name,
        image_id=image_id,
        labels=labels,
        manifest_sgx=manifest_sgx,
        manifest=manifest,
        mr_enclave=mr_enclave,
        sigstruct=files.get(SIGSTRUCT),
    )


def _complete(
    engine: Engine, image_id: str, files: dict[str, bytes], pkglibdir: str
) -> bytes:
    def read_file(path: str) -> bytes:
        data = engine.read_files(image_id, [path]).get(path)
        if data is None:
            raise ImageError(f"image {image_id[:19]}: {path} is missing")
        return data

    return complete_manifest(_text(files[MANIFEST], image_id), pkglibdir, read_file)


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ImageError(f"image '{name}': its manifest is not UTF-8") from err
