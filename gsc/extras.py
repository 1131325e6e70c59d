"""What the user adds from the command line: files, volumes, secrets, environment."""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gsc.errors import GscError
from gsc.manifest import Manifest

SECRETS_DIR = "/run/secrets"
# Sealing keys Gramine derives inside the enclave, so no provisioning is needed.
DEFAULT_VOLUME_KEY = "_sgx_mrsigner"


@dataclass(frozen=True)
class Extras:
    """Files, volumes, secrets and environment chosen on the command line."""

    trusted: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    encrypted_volumes: tuple[tuple[str, str], ...] = ()
    tmpfs_volumes: tuple[str, ...] = ()
    secrets: str = ""  # "", "allowed" or "encrypted"
    secrets_key: str = DEFAULT_VOLUME_KEY
    env: tuple[tuple[str, str], ...] = ()
    env_passthrough: tuple[str, ...] = ()

    @property
    def volume_paths(self) -> tuple[str, ...]:
        """Paths whose content comes at run time and is not in the image."""
        mounted = [path for path, _ in self.encrypted_volumes] + list(
            self.tmpfs_volumes
        )
        if self.secrets:
            mounted.append(SECRETS_DIR)
        return tuple(mounted)


def absolute_path(value: str, option: str) -> str:
    """A normalized absolute path, or a one-line error naming the option.

    A trailing `/` (which marks a directory) is kept.
    """
    if not value.startswith("/"):
        raise GscError(f"{option} '{value}': give an absolute path inside the image")
    if "\x00" in value:
        raise GscError(f"{option}: a path cannot contain a NUL byte")
    path = posixpath.normpath(value)
    return path + "/" if value.endswith("/") and path != "/" else path


def encrypted_volume(value: str) -> tuple[str, str]:
    """`PATH[:KEYNAME]` of --encrypted-volume."""
    path, _, key = value.partition(":")
    return absolute_path(path, "--encrypted-volume"), key or DEFAULT_VOLUME_KEY


def environment(value: str) -> tuple[str, str]:
    """`NAME=VALUE` of --env."""
    name, sep, given = value.partition("=")
    if not sep or not name:
        raise GscError(f"--env '{value}': give NAME=VALUE")
    return name, given


def secrets_choice(value: str) -> tuple[str, str]:
    """`allowed` or `encrypted[:KEYNAME]` of --secrets."""
    kind, _, key = value.partition(":")
    if kind not in ("allowed", "encrypted") or (key and kind != "encrypted"):
        raise GscError(
            f"--secrets '{value}': choose 'allowed' or 'encrypted[:KEYNAME]'"
        )
    return kind, key or DEFAULT_VOLUME_KEY


def extras_manifest(extras: Extras) -> Manifest:
    """The manifest keys the command-line choices stand for."""
    mounts: list[dict[str, Any]] = [
        {"type": "encrypted", "path": path, "uri": f"file:{path}", "key_name": key}
        for path, key in extras.encrypted_volumes
    ]
    mounts += [{"type": "tmpfs", "path": path} for path in extras.tmpfs_volumes]
    allowed = [f"file:{path}" for path in extras.allowed]
    if extras.secrets == "allowed":
        allowed.append(f"file:{SECRETS_DIR}/")
    elif extras.secrets == "encrypted":
        mounts.append(
            {
                "type": "encrypted",
                "path": SECRETS_DIR,
                "uri": f"file:{SECRETS_DIR}",
                "key_name": extras.secrets_key,
            }
        )
    env: dict[str, Any] = dict(extras.env)
    env.update({name: {"passthrough": True} for name in extras.env_passthrough})
    manifest: Manifest = {}
    if extras.trusted:
        manifest["sgx"] = {"trusted_files": [f"file:{p}" for p in extras.trusted]}
    if env:
        manifest["loader"] = {"env": env}
    if mounts:
        manifest["fs"] = {"mounts": mounts}
    if allowed:
        manifest.setdefault("sgx", {})["allowed_files"] = allowed
    return manifest


def is_excluded_by(path: str, patterns: Iterable[str]) -> bool:
    """Whether a path matches one of the --exclude globs (`*` also matches `/`)."""
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def unhandled_volumes(volumes: Iterable[str], extras: Extras) -> list[str]:
    """The image's VOLUMEs the user said nothing about."""
    chosen = {
        posixpath.normpath(p)
        for p in (*extras.volume_paths, *extras.allowed, *extras.trusted)
    }
    return [v for v in volumes if posixpath.normpath(v) not in chosen]
