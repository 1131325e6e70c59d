"""The `gsc` command line: parse, dispatch, turn failures into exit statuses."""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn

from gsc import __version__
from gsc.config import Config, load_config
from gsc.engine import LOST_ENGINE
from gsc.errors import GscError
from gsc.extras import (
    DEFAULT_VOLUME_KEY,
    Extras,
    absolute_path,
    encrypted_volume,
    environment,
    secrets_choice,
)
from gsc.ui import Ui

EXIT_USER = 1
EXIT_USAGE = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130


class Terminated(BaseException):
    """SIGTERM arrived; unwinds like Ctrl-C so that cleanup runs."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gsc",
        description="Run the application of a container image in an SGX enclave"
        " under Gramine.",
    )
    parser.add_argument("--version", action="version", version=f"gsc {__version__}")
    _output_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_build(commands)
    _add_build_gramine(commands)
    _add_sign_image(commands)
    _add_info_image(commands)
    _add_generate_key(commands)
    return parser


def _output_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the command; a command's own -v/-q must not
    # reset what was given before it.
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else argparse.SUPPRESS,
        help="say more (the engine's build log)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="only warnings and errors",
    )


def _engine_build_options(parser: argparse.ArgumentParser) -> None:
    """Options that both build commands pass on to the engine's build."""
    parser.add_argument(
        "-nc",
        "--no-cache",
        action="store_true",
        help="do not use the engine's build cache (nor, for build, GSC's hash cache)",
    )
    parser.add_argument(
        "--rm",
        action="store_true",
        help="remove intermediate images after a successful build",
    )
    parser.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="build argument for the engine; a bare KEY takes the host's value",
    )


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="configuration file (default: config.yaml in the current directory)",
    )


def _add_build(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    build = commands.add_parser(
        "build",
        help="make gsc-IMAGE-unsigned from IMAGE",
        description="Make gsc-IMAGE-unsigned: IMAGE with the Gramine runtime and a"
        " generated manifest that lists every file the enclave may open.",
    )
    _output_options(build, top=False)
    build.add_argument("image", metavar="IMAGE", help="the application image")
    build.add_argument(
        "manifest",
        metavar="MANIFEST",
        nargs="?",
        type=Path,
        help="the application's manifest (TOML) to merge into the generated one",
    )
    build.add_argument(
        "-d",
        "--debug",
        action="store_true",
        help="debug enclave, debug Gramine runtime, verbose Gramine log",
    )
    build.add_argument(
        "-b",
        "--buildtype",
        choices=("release", "debug", "debugoptimized"),
        default="release",
        help="build type of the Gramine runtime",
    )
    build.add_argument(
        "-L",
        "--linux",
        action="store_true",
        help="also allow running in Gramine's direct mode (no SGX)",
    )
    build.add_argument(
        "--insecure-args",
        action="store_true",
        help="let 'docker run IMAGE ARGS' arguments into the enclave",
    )
    _engine_build_options(build)
    build.add_argument(
        "--file-only",
        "--dry-run",
        type=Path,
        metavar="DIR",
        dest="file_only",
        help="write the Dockerfile, manifest and launcher to DIR; build nothing",
    )
    _scope_options(build)
    _config_option(build)
    build.set_defaults(handler=_run_build)


def _scope_options(build: argparse.ArgumentParser) -> None:
    add = build.add_argument
    add(
        "--trusted",
        action="append",
        default=[],
        metavar="PATH",
        help="also trust PATH (a file, or a directory ending in /), even under"
        " excluded paths",
    )
    add(
        "--allowed",
        action="append",
        default=[],
        metavar="PATH",
        help="let the enclave read and write PATH unchecked (a directory ends in /)",
    )
    add(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="never trust files matching GLOB ('*' matches '/' too)",
    )
    add(
        "--encrypted-volume",
        action="append",
        default=[],
        metavar="PATH[:KEYNAME]",
        help="mount PATH as a Gramine encrypted mount (key default _sgx_mrsigner)",
    )
    add(
        "--tmpfs-volume",
        action="append",
        default=[],
        metavar="PATH",
        help="mount an in-enclave tmpfs at PATH",
    )
    add(
        "--secrets",
        metavar="allowed|encrypted[:KEYNAME]",
        help="make Docker secrets (/run/secrets) readable in the enclave",
    )
    add(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an environment variable inside the enclave",
    )
    add(
        "--env-passthrough",
        action="append",
        default=[],
        metavar="NAME",
        help="let the run-time value of NAME into the enclave",
    )


def _add_build_gramine(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    build = commands.add_parser(
        "build-gramine",
        aliases=["build-graphene"],
        help="make an image holding Gramine compiled from source",
        description="Compile Gramine from Gramine.Repository at Gramine.Branch in"
        " an image of the configured Distro, and tag it IMAGE-NAME.",
    )
    _output_options(build, top=False)
    build.add_argument("image", metavar="IMAGE-NAME", help="the name to give the image")
    build.add_argument("-d", "--debug", action="store_true", help="a debug build")
    build.add_argument(
        "-b",
        "--buildtype",
        choices=("release", "debug", "debugoptimized"),
        default="release",
        help="meson build type",
    )
    build.add_argument(
        "-L",
        "--linux",
        action="store_true",
        help="include the direct-mode PAL (no SGX)",
    )
    _engine_build_options(build)
    build.add_argument(
        "-f",
        "--file-only",
        action="store_true",
        help="write the Dockerfile and its build context; build nothing",
    )
    _config_option(build)
    build.set_defaults(handler=_run_build_gramine)


def _add_sign_image(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    sign = commands.add_parser(
        "sign-image",
        help="measure and sign gsc-IMAGE-unsigned, making gsc-IMAGE",
        description="Measure the enclave of gsc-IMAGE-unsigned, sign it, and make"
        " gsc-IMAGE. The key is read on the host and never reaches the engine.",
    )
    _output_options(sign, top=False)
    sign.add_argument("image", metavar="IMAGE", help="the application image name")
    sign.add_argument(
        "key",
        metavar="KEY",
        nargs="?",
        type=Path,
        help="PEM RSA-3072 private key with exponent 3",
    )
    secret = sign.add_mutually_exclusive_group()
    secret.add_argument(
        "-p",
        "--passphrase",
        help="the key's passphrase (visible to other users: avoid)",
    )
    secret.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help="read the key's passphrase from the first line of FILE",
    )
    secret.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help="read the key's passphrase from environment variable VAR",
    )
    sign.add_argument(
        "--date",
        type=_date,
        metavar="YYYY-MM-DD",
        help="the signing date (default: SOURCE_DATE_EPOCH's day, or today)",
    )
    sign.add_argument(
        "--public-key",
        type=Path,
        metavar="PUB.pem",
        help="sign elsewhere: the public half of the signing key",
    )
    sign.add_argument(
        "--export-signing-data",
        type=Path,
        metavar="FILE",
        help="with --public-key: write the bytes to sign to FILE and stop",
    )
    sign.add_argument(
        "--signature",
        type=Path,
        metavar="FILE",
        help="with --public-key: the raw RSA signature made elsewhere",
    )
    _config_option(sign)
    sign.set_defaults(handler=_run_sign_image)


def _add_info_image(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    info = commands.add_parser(
        "info-image",
        help="print the measurements of a GSC image",
        description="Print MRENCLAVE, MRSIGNER, ISV ids and attributes of a GSC"
        " image and check its signature; for an unsigned image, the values that"
        " signing will give.",
    )
    _output_options(info, top=False)
    info.add_argument(
        "image", metavar="IMAGE", help="a gsc-IMAGE or gsc-IMAGE-unsigned"
    )
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=_run_info_image)


def _add_generate_key(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    key = commands.add_parser(
        "generate-key",
        help="make a new enclave signing key",
        description="Write a new RSA-3072 key with exponent 3, readable only by you.",
    )
    _output_options(key, top=False)
    key.add_argument(
        "path", metavar="KEY", type=Path, help="where to write it (new file)"
    )
    secret = key.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help="encrypt the key with the first line of FILE",
    )
    secret.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help="encrypt the key with the value of environment variable VAR",
    )
    key.set_defaults(handler=_run_generate_key)


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a date like 2026-01-31"
        ) from None


def build_args(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`KEY=VALUE` pairs; a bare `KEY` takes the host's value, as docker does."""
    pairs = []
    for value in values:
        key, sep, given = value.partition("=")
        if not key:
            raise GscError(f"--build-arg '{value}': the key is empty")
        if sep:
            pairs.append((key, given))
        elif key in os.environ:
            pairs.append((key, os.environ[key]))
    return tuple(pairs)


def _config(args: argparse.Namespace, ui: Ui) -> Config:
    given = args.config_file
    config = load_config(given or Path("config.yaml"), required=given is not None)
    for warning in config.warnings:
        ui.warn(warning)
    return config


def _run_build(args: argparse.Namespace, ui: Ui) -> int:
    from gsc.commands import build

    config = _config(args, ui)
    options = build.BuildOptions(
        image=args.image,
        manifest=args.manifest,
        debug=args.debug,
        buildtype=args.buildtype,
        linux=args.linux,
        insecure_args=args.insecure_args,
        no_cache=args.no_cache,
        remove_intermediate=args.rm,
        build_args=build_args(args.build_arg),
        file_only=args.file_only,
        extras=_extras(args, config),
        distro=config.distro,
    )
    return build.run(options, config, ui)


def _extras(args: argparse.Namespace, config: Config) -> Extras:
    """The build's extra choices: `config.yaml`'s `Build:` lists, then the options."""

    def given(key: str, option: list[str]) -> list[str]:
        return [*config.build_list(key), *option]

    secrets = args.secrets or config.secrets
    kind, key = secrets_choice(secrets) if secrets else ("", DEFAULT_VOLUME_KEY)
    return Extras(
        trusted=tuple(
            absolute_path(p, "--trusted") for p in given("Trusted", args.trusted)
        ),
        allowed=tuple(
            absolute_path(p, "--allowed") for p in given("Allowed", args.allowed)
        ),
        exclude=tuple(given("Exclude", args.exclude)),
        encrypted_volumes=tuple(
            encrypted_volume(v)
            for v in given("EncryptedVolumes", args.encrypted_volume)
        ),
        tmpfs_volumes=tuple(
            absolute_path(p, "--tmpfs-volume")
            for p in given("TmpfsVolumes", args.tmpfs_volume)
        ),
        secrets=kind,
        secrets_key=key,
        env=tuple(environment(v) for v in given("Env", args.env)),
        env_passthrough=tuple(given("EnvPassthrough", args.env_passthrough)),
    )


def _run_build_gramine(args: argparse.Namespace, ui: Ui) -> int:
    from gsc.commands import build_gramine

    options = build_gramine.BuildGramineOptions(
        image=args.image,
        debug=args.debug,
        buildtype=args.buildtype,
        linux=args.linux,
        no_cache=args.no_cache,
        remove_intermediate=args.rm,
        build_args=build_args(args.build_arg),
        file_only=args.file_only,
    )
    return build_gramine.run(options, _config(args, ui), ui)


def _run_sign_image(args: argparse.Namespace, ui: Ui) -> int:
    from gsc.commands import sign_image

    _config(args, ui)
    options = sign_image.SignOptions(
        image=args.image,
        key=args.key,
        passphrase=args.passphrase,
        passphrase_file=args.passphrase_file,
        passphrase_env=args.passphrase_env,
        date=args.date,
        public_key=args.public_key,
        export_signing_data=args.export_signing_data,
        signature=args.signature,
    )
    return sign_image.run(options, ui)


def _run_info_image(args: argparse.Namespace, ui: Ui) -> int:
    from gsc.commands import info_image

    return info_image.run(info_image.InfoOptions(args.image, args.json), ui)


def _run_generate_key(args: argparse.Namespace, ui: Ui) -> int:
    from gsc.commands import generate_key, sign_image

    probe = sign_image.SignOptions(
        image="",
        passphrase_file=args.passphrase_file,
        passphrase_env=args.passphrase_env,
    )
    passphrase = sign_image.read_passphrase(probe, ui)
    return generate_key.run(generate_key.KeyOptions(args.path, passphrase), ui)


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated()


@contextmanager
def _signals() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _bug_log(error: BaseException) -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    directory = state / "gsc"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        directory = Path(tempfile.gettempdir())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    handle, name = tempfile.mkstemp(
        prefix=f"gsc-crash-{stamp}-", suffix=".log", dir=directory
    )
    with os.fdopen(handle, "w", encoding="utf-8") as log:
        log.write(f"gsc {__version__}, Python {sys.version.split()[0]}\n")
        log.write(f"arguments: {_safe_argv(sys.argv)}\n\n")
        log.write("".join(traceback.format_exception(error)))
    return Path(name)


def _safe_argv(argv: Sequence[str]) -> list[str]:
    """The arguments with any passphrase given on the command line hidden."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif arg in ("-p", "--passphrase"):
            shown.append(arg)
            hide_next = True
        elif arg.startswith("--passphrase="):
            shown.append("--passphrase=***")
        elif arg.startswith("-p") and not arg.startswith("--") and len(arg) > 2:
            shown.append("-p***")
        else:
            shown.append(arg)
    return shown


def main(argv: Sequence[str] | None = None) -> int:
    """Run gsc with `argv` (default: the process's) and return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    ui = Ui(verbosity=-1 if args.quiet else args.verbose)
    handler: Callable[[argparse.Namespace, Ui], int] = args.handler
    try:
        with _signals():
            return handler(args, ui)
    except GscError as error:
        ui.error(str(error))
        return EXIT_USER
    except LOST_ENGINE as error:
        ui.error(
            "the container engine stopped answering; is it still running?"
            f" ({error.__class__.__name__})"
        )
        return EXIT_USER
    except KeyboardInterrupt:
        ui.error("interrupted")
        return EXIT_INTERRUPTED
    except Terminated:
        ui.error("terminated")
        return 128 + signal.SIGTERM
    except Exception as error:
        log = _bug_log(error)
        ui.error(
            f"internal error ({error.__class__.__name__}); this is a bug in GSC."
            f" The details are in {log}"
        )
        return EXIT_BUG
