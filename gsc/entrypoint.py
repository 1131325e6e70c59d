"""Find the program an image runs, inside the image's own file system."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from gsc.errors import ImageError
from gsc.image import FileSystem, ImageConfig

_ELF_MAGIC = b"\x7fELF"
# Linux follows at most this many `#!` interpreters in a row.
_MAX_SCRIPT_DEPTH = 4


@dataclass(frozen=True)
class Command:
    """The command line an image runs and the ELF program that starts it."""

    program: str  # the real path of the ELF program Gramine loads
    argv: tuple[str, ...]  # the arguments that program receives, argv[0] included
    scripts: tuple[str, ...]  # scripts passed through on the way, outermost first


def docker_command(config: ImageConfig) -> tuple[str, ...]:
    """ENTRYPOINT and CMD combined the way Docker combines them."""
    argv = config.entrypoint + config.cmd
    if not argv or not argv[0]:
        raise ImageError(
            f"image '{config.name}' has neither ENTRYPOINT nor CMD; GSC needs to know"
            " what it runs"
        )
    return argv


def resolve_command(
    fs: FileSystem, config: ImageConfig, argv: tuple[str, ...]
) -> Command:
    """Resolve argv[0] in the image and unwrap `#!` scripts to their interpreter."""
    path = find_program(fs, argv[0], config.working_dir, config.path_variable)
    return _unwrap(fs, config, path, argv, ())


def find_program(fs: FileSystem, name: str, working_dir: str, search: str) -> str:
    """The path `name` runs as: by PATH when it has no slash, else by working dir."""
    if "/" in name:
        path = posixpath.normpath(posixpath.join(working_dir, name))
        _check_executable(fs, path, name)
        return path
    for directory in search.split(":"):
        candidate = posixpath.join(posixpath.join("/", directory or "."), name)
        entry = fs.get(fs.resolve(candidate))
        if entry is not None and entry.kind == "file" and entry.mode & 0o111:
            return posixpath.normpath(candidate)
    raise ImageError(f"program '{name}' is not in the image's PATH ({search})")


def _check_executable(fs: FileSystem, path: str, name: str) -> None:
    entry = fs.get(fs.resolve(path))
    if entry is None:
        raise ImageError(f"program '{name}' does not exist in the image")
    if entry.kind != "file":
        raise ImageError(f"program '{name}' is not a regular file in the image")
    if not entry.mode & 0o111:
        raise ImageError(f"program '{name}' is not executable in the image")


def _unwrap(
    fs: FileSystem,
    config: ImageConfig,
    path: str,
    argv: tuple[str, ...],
    scripts: tuple[str, ...],
) -> Command:
    real = fs.resolve(path)
    entry = fs.get(real)
    assert entry is not None
    if entry.head.startswith(_ELF_MAGIC):
        return Command(program=real, argv=argv, scripts=scripts)
    if not entry.head.startswith(b"#!"):
        raise ImageError(
            f"program {path} is neither an ELF executable nor a script starting with #!"
        )
    if len(scripts) >= _MAX_SCRIPT_DEPTH:
        raise ImageError(f"program {path}: too many nested #! interpreters")
    interpreter, extra = _shebang(entry.head, path)
    script_argv = (interpreter, *extra, path, *argv[1:])
    if posixpath.basename(interpreter) == "env" and extra:
        return _through_env(fs, config, path, script_argv, (*scripts, path))
    _check_executable(fs, interpreter, interpreter)
    return _unwrap(fs, config, interpreter, script_argv, (*scripts, path))


def _through_env(
    fs: FileSystem,
    config: ImageConfig,
    script: str,
    argv: tuple[str, ...],
    scripts: tuple[str, ...],
) -> Command:
    # `#!/usr/bin/env NAME` runs NAME from PATH: resolve it now, inside the
    # image, so that the enclave starts NAME directly and never needs env.
    name = argv[1]
    if name.startswith("-"):
        raise ImageError(
            f"script {script}: '#!' line passes options to env; not supported"
        )
    program = find_program(fs, name, config.working_dir, config.path_variable)
    return _unwrap(fs, config, program, argv[1:], scripts)


def _shebang(head: bytes, path: str) -> tuple[str, tuple[str, ...]]:
    line = head[2:].split(b"\n", 1)[0]
    if b"\n" not in head[2:] and len(head) >= 256:
        raise ImageError(f"script {path}: the #! line is longer than Linux accepts")
    try:
        text = line.decode("utf-8").strip(" \t\r")
    except UnicodeDecodeError as err:
        raise ImageError(f"script {path}: the #! line is not valid UTF-8") from err
    interpreter, _, rest = text.replace("\t", " ").partition(" ")
    if not interpreter:
        raise ImageError(f"script {path}: the #! line names no interpreter")
    rest = rest.strip()
    return interpreter, (rest,) if rest else ()
