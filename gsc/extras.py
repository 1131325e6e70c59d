"""What the user adds from the command line: files, volumes, secrets, environment."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gsc.errors import GscError
from gsc.manifest import Manifest

SECRETS_DIR = "/run/secrets"
# Sealing keys Gramine derives inside the enclave, so no provisioning is needed.
DEFAULT_VOLUME_KEY = "_sgx_mrsigner"
SEALING_KEYS = ("_sgx_mrenclave", "_sgx_mrsigner")
# A key another party provisions names a file under /dev/attestation/keys/.
_KEY_NAME = re.compile(r"[A-Za-z0-9_.-]+")


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

    def __post_init__(self) -> None:
        _check_excludes(self.exclude)
        _check_environment(self.env, self.env_passthrough)
        _check_mounts(self.volume_paths, self.allowed)

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
    # normpath keeps a leading '//' (POSIX leaves its meaning open); a
    # manifest URI must not start with 'file://'.
    path = "/" + posixpath.normpath(value).lstrip("/")
    return path + "/" if value.endswith("/") and path != "/" else path


def encrypted_volume(value: str) -> tuple[str, str]:
    """`PATH[:KEYNAME]` of --encrypted-volume."""
    path, sep, key = value.partition(":")
    path = absolute_path(path, "--encrypted-volume")
    if path == "/":
        raise GscError(f"--encrypted-volume '{value}': cannot mount over /")
    return path, _key_name(key, sep, "--encrypted-volume", value)


def _key_name(key: str, sep: str, option: str, value: str) -> str:
    if not sep:
        return DEFAULT_VOLUME_KEY
    if not _KEY_NAME.fullmatch(key):
        raise GscError(
            f"{option} '{value}': the key name after ':' must be letters, digits,"
            " '_', '.' or '-'; leave out ':' for the default _sgx_mrsigner"
        )
    if key.startswith("_sgx_") and key not in SEALING_KEYS:
        raise GscError(
            f"{option} '{value}': Gramine's sealing keys are"
            f" {' and '.join(SEALING_KEYS)}; other names starting with _sgx_ are"
            " reserved"
        )
    return key


def environment(value: str) -> tuple[str, str]:
    """`NAME=VALUE` of --env."""
    name, sep, given = value.partition("=")
    if not sep or not name:
        raise GscError(f"--env '{value}': give NAME=VALUE")
    _variable_name(name, "--env", value)
    if "\x00" in given:
        raise GscError(f"--env {name}: a value cannot contain a NUL byte")
    return name, given


def _variable_name(name: str, option: str, value: str) -> None:
    if not name or "=" in name or "\x00" in name or name.strip() != name:
        raise GscError(f"{option} '{value}': give a variable name")
    if "*" in name or "?" in name:
        raise GscError(
            f"{option} '{value}': name each variable; GSC never lets the whole"
            " run-time environment into the enclave"
        )


def secrets_choice(value: str) -> tuple[str, str]:
    """`allowed` or `encrypted[:KEYNAME]` of --secrets."""
    kind, sep, key = value.partition(":")
    if kind not in ("allowed", "encrypted") or (sep and kind != "encrypted"):
        raise GscError(
            f"--secrets '{value}': choose 'allowed' or 'encrypted[:KEYNAME]'"
        )
    return kind, _key_name(key, sep, "--secrets", value)


def _check_excludes(globs: tuple[str, ...]) -> None:
    for glob in globs:
        if not glob.startswith(("/", "*")):
            raise GscError(
                f"--exclude '{glob}': image paths are absolute; start the glob"
                " with '/' or '*'"
            )


def _check_environment(
    env: tuple[tuple[str, str], ...], passthrough: tuple[str, ...]
) -> None:
    fixed = {name for name, _ in env}
    for name in passthrough:
        _variable_name(name, "--env-passthrough", name)
        if name in fixed:
            raise GscError(
                f"--env {name}=... and --env-passthrough {name}: a variable is"
                " either fixed at build time or passed at run time; choose one"
            )


def _check_mounts(volumes: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for given in volumes:
        if given == "/":
            raise GscError("a volume cannot be mounted over /; name a directory")
    for given in (*volumes, *allowed):
        path = given.rstrip("/") or "/"
        if path in seen:
            raise GscError(
                f"{path} is given more than once as a volume, an allowed path or"
                " the secrets directory; choose one treatment for it"
            )
        seen.add(path)


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
    """The image's VOLUMEs the user said nothing about, at or above them."""
    chosen = [
        "/" + posixpath.normpath(p).strip("/")
        for p in (*extras.volume_paths, *extras.allowed, *extras.trusted)
    ]
    return [v for v in volumes if not any(_covers(c, v) for c in chosen)]


def _covers(chosen: str, volume: str) -> bool:
    path = "/" + posixpath.normpath(volume).strip("/")
    return chosen == "/" or path == chosen or path.startswith(chosen + "/")
