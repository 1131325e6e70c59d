"""A Gramine image: where its runtime lies and what it holds."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gsc.engine import Engine
from gsc.errors import ImageError
from gsc.image import Entry, FileSystem, read_filesystem

DEFAULT_PREFIX = "/gramine/meson_build_output"
_LIBDIRS = ("lib/x86_64-linux-gnu", "lib64", "lib")
LABEL = "gsc.gramine."


@dataclass(frozen=True)
class GramineRuntime:
    """The installed Gramine inside a Gramine image."""

    image_id: str
    name: str
    prefix: str
    pkglibdir: str
    files: FileSystem
    labels: Mapping[str, str]

    @property
    def has_direct(self) -> bool:
        return self.files.get(f"{self.pkglibdir}/direct/libpal.so") is not None

    @property
    def is_standin(self) -> bool:
        return self.labels.get(LABEL + "standin") == "true"

    @property
    def runtime_glibc(self) -> str:
        return f"{self.pkglibdir}/runtime/glibc"

    def libsysdb(self) -> Entry:
        return self._required("libsysdb.so")

    def _required(self, name: str) -> Entry:
        entry = self.files.get(f"{self.pkglibdir}/{name}")
        if entry is None or entry.kind != "file":
            raise ImageError(
                f"Gramine image '{self.name}': no {self.pkglibdir}/{name}; is it a"
                " complete Gramine installation?"
            )
        return entry

    def check(self) -> None:
        """Fail unless the files a graminized image needs are all there."""
        for name in ("libsysdb.so", "sgx/libpal.so", "sgx/loader"):
            self._required(name)


def read_runtime(
    engine: Engine,
    name: str,
    attrs: Mapping[str, Any],
    on_bytes: Callable[[int], None],
) -> GramineRuntime:
    """Read and hash the Gramine installation in image `name`."""
    labels: Mapping[str, str] = (attrs.get("Config") or {}).get("Labels") or {}
    prefix = labels.get(LABEL + "prefix", DEFAULT_PREFIX).rstrip("/") or "/"
    image_id = str(attrs["Id"])
    try:
        with engine.archive(image_id, prefix) as stream:
            files = read_filesystem(
                stream, lambda path: True, on_bytes, base=posixpath.dirname(prefix)
            )
    except ImageError as err:
        raise ImageError(
            f"Gramine image '{name}': no Gramine installation at {prefix}; make one"
            " with 'gsc build-gramine NAME' and set Gramine.Image to it"
        ) from err
    pkglibdir = _pkglibdir(files, prefix, labels.get(LABEL + "libdir"), name)
    runtime = GramineRuntime(image_id, name, prefix, pkglibdir, files, labels)
    runtime.check()
    return runtime


def _pkglibdir(files: FileSystem, prefix: str, libdir: str | None, name: str) -> str:
    candidates = (libdir,) if libdir else _LIBDIRS
    for candidate in candidates:
        pkglibdir = posixpath.join(prefix, candidate, "gramine")
        if files.get(f"{pkglibdir}/sgx/libpal.so") is not None:
            return pkglibdir
    raise ImageError(
        f"Gramine image '{name}': no Gramine installation under {prefix}"
        " (looked for <libdir>/gramine/sgx/libpal.so); build one with"
        " 'gsc build-gramine' or set the image's gsc.gramine.prefix label"
    )
