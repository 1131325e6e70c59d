"""The manifest GSC generates from an image, before the user's is merged in."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gsc.entrypoint import Command
from gsc.errors import ManifestError
from gsc.gramine import GramineRuntime
from gsc.image import FileSystem, ImageConfig
from gsc.manifest import HashedFiles, Manifest
from gsc.trust import RUNTIME_FILES
from gsc.users import User


@dataclass(frozen=True)
class Generated:
    """The inputs of the generated manifest, as the image and the options give them."""

    config: ImageConfig
    command: Command
    user: User
    runtime: GramineRuntime
    library_dirs: tuple[str, ...]
    trusted: Mapping[str, str]
    debug: bool
    insecure_args: bool


def generated_manifest(g: Generated) -> Manifest:
    """The manifest for the image alone: command, environment, files."""
    libsysdb = g.runtime.libsysdb()
    loader: dict[str, Any] = {
        "entrypoint": {"uri": f"file:{libsysdb.path}", "sha256": libsysdb.sha256},
        "log_level": "debug" if g.debug else "error",
    }
    if g.insecure_args:
        loader["insecure__use_cmdline_argv"] = True
    else:
        loader["argv"] = list(g.command.argv)
    if g.user.uid != 0 or g.user.gid != 0:
        loader["uid"] = g.user.uid
        loader["gid"] = g.user.gid
    loader["env"] = _environment(g)
    return {
        "libos": {"entrypoint": g.command.program},
        "loader": loader,
        "fs": {
            "start_dir": g.config.working_dir,
            "root": {"type": "chroot", "uri": "file:/"},
            "mounts": [{"type": "tmpfs", "path": "/tmp"}],
        },
        "sgx": {
            "debug": g.debug,
            "trusted_files": HashedFiles(g.trusted.keys(), g.trusted.values()),
            "allowed_files": [f"file:{path}" for path in RUNTIME_FILES],
        },
    }


def _environment(g: Generated) -> dict[str, str]:
    env = dict(g.config.env)
    env.setdefault("PATH", g.config.path_variable)
    env.setdefault("HOME", g.user.home)
    libraries = [runtime_libc(g.runtime)]
    libraries += [d for d in env.get("LD_LIBRARY_PATH", "").split(":") if d]
    libraries += [d for d in g.library_dirs if d not in libraries]
    env["LD_LIBRARY_PATH"] = ":".join(libraries)
    return env


def runtime_libc(runtime: GramineRuntime) -> str:
    """The directory of Gramine's patched C library, first in LD_LIBRARY_PATH.

    glibc's, unless the Gramine image was built with musl's runtime (its
    `gsc.gramine.libc` label says so, or it has no glibc runtime at all).
    """
    musl = f"{runtime.pkglibdir}/runtime/musl"
    if runtime.files.get(musl) is None:
        return runtime.runtime_glibc
    labelled = runtime.labels.get("gsc.gramine.libc") == "musl"
    if labelled or runtime.files.get(runtime.runtime_glibc) is None:
        return musl
    return runtime.runtime_glibc


def check_program_trusted(manifest: Manifest, command: Command, fs: FileSystem) -> None:
    """Fail unless the enclave may open the program and the scripts it runs.

    A program left out of the trusted files (by --exclude, by lying in a
    directory GSC never trusts, or by being unreadable by the image's user)
    would stop the enclave at start; say so at build time instead.
    """
    sgx = manifest.get("sgx")
    if not isinstance(sgx, dict):
        sgx = {}
    paths = (command.program, *(fs.resolve(s) for s in command.scripts))
    # Only the few URIs asked about are looked for: the list holds one entry
    # for every file of the image.
    wanted = {f"file:{path}" for path in paths}
    trusted = set()
    entries = sgx.get("trusted_files")
    if isinstance(entries, HashedFiles):
        trusted = {f"file:{path}" for path in set(paths).intersection(entries.paths)}
    for item in _list(entries):
        uri = item.get("uri") if isinstance(item, dict) else item
        if isinstance(uri, str) and uri in wanted:
            trusted.add(uri)
    allowed = [
        uri[len("file:") :]
        for uri in _list(sgx.get("allowed_files"))
        if isinstance(uri, str) and uri.startswith("file:")
    ]
    for path in paths:
        if f"file:{path}" in trusted or any(_below(path, a) for a in allowed):
            continue
        raise ManifestError(
            f"program {path} is not a trusted file (left out by --exclude, in a"
            " directory GSC never trusts, or unreadable by the image's user);"
            f" trust it with --trusted {path}"
        )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _below(path: str, allowed: str) -> bool:
    top = allowed.rstrip("/")
    return path == top or path.startswith(top + "/")


def user_trusted_files(user: Manifest, fs: FileSystem) -> Manifest:
    """The user's manifest with its trusted directories expanded and hashes filled.

    A URI ending in `/` stands for every regular file below that directory; a
    URI without a hash gets the hash of the file in the final image.
    """
    sgx = user.get("sgx")
    if not isinstance(sgx, dict) or not isinstance(sgx.get("trusted_files"), list):
        return user
    expanded: list[Any] = []
    for item in sgx["trusted_files"]:
        expanded.extend(_expand(item, fs))
    return {**user, "sgx": {**sgx, "trusted_files": expanded}}


def _expand(item: Any, fs: FileSystem) -> list[Any]:
    uri = item.get("uri") if isinstance(item, dict) else item
    if not isinstance(uri, str) or not uri.startswith("file:"):
        return [item]
    path = posixpath.normpath(uri[len("file:") :]) if uri != "file:" else "/"
    if uri.endswith("/"):
        return _expand_directory(uri, path, fs)
    entry = fs.get(fs.resolve(path))
    if entry is None or entry.kind != "file":
        what = (
            "is a directory; end the URI with '/'" if entry else "is not in the image"
        )
        raise ManifestError(f"manifest key 'sgx.trusted_files': {uri} {what}")
    if isinstance(item, dict):
        return [item]
    return [{"uri": uri, "sha256": entry.sha256}]


def _expand_directory(uri: str, path: str, fs: FileSystem) -> list[Any]:
    directory = fs.get(path)
    if directory is None or directory.kind != "dir":
        raise ManifestError(
            f"manifest key 'sgx.trusted_files': {uri} is not a directory in the image"
        )
    below = path.rstrip("/") + "/"
    found = []
    for entry_path in sorted(p for p in fs.entries if p.startswith(below)):
        entry = fs.entries[entry_path]
        if entry.kind == "symlink":
            entry = fs.get(fs.resolve(entry_path)) or entry
        if entry.kind == "file" and entry.sha256:
            found.append({"uri": f"file:{entry_path}", "sha256": entry.sha256})
    return found
