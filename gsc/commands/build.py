"""`gsc build`: an application image becomes `gsc-IMAGE-unsigned`."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import posixpath
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from gsc import __version__
from gsc.config import Config
from gsc.distro import distro_name, library_dirs
from gsc.distros import compatibility_problem
from gsc.dockerfile import LabelInstruction, label_instruction
from gsc.engine import Engine, connect
from gsc.entrypoint import docker_command, resolve_command
from gsc.errors import EngineError, GscError, ImageError
from gsc.extras import Extras, extras_manifest, unhandled_volumes
from gsc.generate import (
    Generated,
    check_program_trusted,
    generated_manifest,
    user_trusted_files,
)
from gsc.gramine import GramineRuntime, read_runtime
from gsc.image import FileSystem, ImageConfig, image_config, read_filesystem
from gsc.interrupts import scratch_directory
from gsc.layercache import LayerCache
from gsc.layerdirs import layer_directories
from gsc.layers import read_image
from gsc.manifest import (
    HashedFiles,
    Manifest,
    dump_pieces,
    load_user_manifest,
    merge,
    unsafe_options,
)
from gsc.manifest import validate as validate_manifest
from gsc.naming import unsigned_name
from gsc.trust import APP_FILES, Choices, Reader, select_trusted
from gsc.ui import Ui
from gsc.users import resolve_user

LABEL = "gsc."
MANIFEST_PATH = f"{APP_FILES}/entrypoint.manifest"


@dataclass(frozen=True)
class BuildOptions:
    """What the user asked `gsc build` for."""

    image: str
    manifest: Path | None
    debug: bool = False
    buildtype: str = "release"
    linux: bool = False
    insecure_args: bool = False
    no_cache: bool = False
    remove_intermediate: bool = False
    build_args: tuple[tuple[str, str], ...] = ()
    file_only: Path | None = None
    extras: Extras = field(default_factory=Extras)
    distro: str = "auto"


@dataclass(frozen=True)
class Plan:
    """Everything the image build needs, decided on the host before it starts."""

    config: ImageConfig
    runtime: GramineRuntime
    # The manifest's text in pieces (see gsc.manifest.dump_pieces).
    manifest_pieces: list[str]
    entrypoint: list[str]
    cmd: list[str]


def run(options: BuildOptions, config: Config, ui: Ui) -> int:
    """Build `gsc-IMAGE-unsigned`; print its name on stdout."""
    unsigned_name(options.image)  # a bad name fails before any work
    if options.file_only is not None:
        _check_empty(options.file_only)
    user_manifest = merge(
        load_user_manifest(options.manifest), extras_manifest(options.extras)
    )
    engine = connect()
    app_attrs = engine.inspect_image(options.image)
    app = image_config(options.image, app_attrs)
    _refuse_gsc_image(app)
    runtime = _gramine(
        engine, _with_gramine_image(engine, app, config, options, ui), options, ui
    )
    plan = _plan(engine, app, app_attrs, runtime, user_manifest, options, ui)
    with scratch_directory("gsc-build-") as scratch:
        context = Path(scratch)
        _write_context(context, plan, options)
        if options.file_only is not None:
            _copy_context(context, options.file_only)
            ui.step(f"Wrote the build context to {options.file_only}")
            print(options.file_only)
            return 0
        name = _build(engine, context, plan, options, ui)
    print(name)
    return 0


def _refuse_gsc_image(app: ImageConfig) -> None:
    if LABEL + "version" in app.labels:
        raise ImageError(
            f"image '{app.name}' is already a GSC image; build from the original"
            " application image"
        )


def _with_gramine_image(
    engine: Engine, app: ImageConfig, config: Config, options: BuildOptions, ui: Ui
) -> Config:
    """The config, with a Gramine image compiled first when none is configured."""
    if config.gramine_image:
        return config
    from gsc.commands import build_gramine

    distro = config.distro if config.distro != "auto" else _app_distro(engine, app)
    if not distro:
        raise GscError(
            "no Gramine image configured, and the distro of"
            f" '{app.name}' is unknown: set Gramine.Image in config.yaml (make one"
            " with 'gsc build-gramine NAME'), or set Distro to build one"
        )
    gramine = build_gramine.BuildGramineOptions(
        image=_gramine_image_name(distro, config, options),
        debug=options.debug,
        buildtype=options.buildtype,
        linux=options.linux,
        no_cache=options.no_cache,
        remove_intermediate=options.remove_intermediate,
        build_args=options.build_args,
        file_only=False,
    )
    compiled = dataclasses.replace(config, distro=distro, gramine_image=gramine.image)
    if engine.image_exists(gramine.image):
        ui.step(f"No Gramine.Image set: using {gramine.image}, compiled earlier")
        return compiled
    ui.step(
        f"No Gramine.Image set: compiling Gramine as {gramine.image} first (as"
        " 'gsc build-gramine' does); set Gramine.Image to use a prebuilt one"
    )
    recipe = build_gramine.make_recipe(gramine, compiled)
    try:
        build_gramine.build_image(engine, gramine, recipe, ui)
    except EngineError as err:
        raise EngineError(
            f"no Gramine.Image set, and compiling Gramine failed: {err}; set"
            " Gramine.Image in config.yaml to a prebuilt Gramine image"
        ) from err
    return compiled


def _app_distro(engine: Engine, app: ImageConfig) -> str:
    paths = ["/etc/os-release", "/usr/lib/os-release"]
    return distro_name(FileSystem(contents=engine.read_files(app.id, paths)))


def _gramine_image_name(distro: str, config: Config, options: BuildOptions) -> str:
    buildtype = "debug" if options.debug else options.buildtype
    words = [distro, config.gramine_branch, buildtype] + (
        ["direct"] if options.linux else []
    )
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(words)).strip("-.")[:128]
    return f"gsc-gramine:{tag}"


def _gramine(
    engine: Engine, config: Config, options: BuildOptions, ui: Ui
) -> GramineRuntime:
    if not config.gramine_image:
        raise GscError(
            "no Gramine image configured: set Gramine.Image in config.yaml to an image"
            " that holds a compiled Gramine (make one with 'gsc build-gramine NAME')"
        )
    attrs = engine.inspect_image(config.gramine_image)
    ui.step(f"Reading the Gramine runtime from {config.gramine_image}")
    runtime = read_runtime(engine, config.gramine_image, attrs, lambda n: None)
    if runtime.is_standin:
        ui.warn(
            f"{config.gramine_image} is a stand-in for Gramine made for tests;"
            " the image built from it does not run in an enclave"
        )
    _check_buildtype(runtime, options, ui)
    if options.linux and not runtime.has_direct:
        raise ImageError(
            f"Gramine image '{config.gramine_image}' has no direct mode, so -L/--linux"
            " cannot be honoured; rebuild it with 'gsc build-gramine -L'"
        )
    return runtime


def _check_buildtype(runtime: GramineRuntime, options: BuildOptions, ui: Ui) -> None:
    wanted = (
        "debug"
        if options.debug and options.buildtype == "release"
        else options.buildtype
    )
    recorded = runtime.labels.get("gsc.gramine.buildtype")
    if recorded is None:
        if wanted != "release":
            ui.warn(
                f"Gramine image '{runtime.name}' does not record its build type;"
                f" GSC cannot check that it is a {wanted} build"
            )
        return
    if recorded != wanted:
        hint = " (-d asks for a debug Gramine)" if options.debug else ""
        raise ImageError(
            f"Gramine image '{runtime.name}' is a {recorded} build, not {wanted}{hint};"
            f" use a {wanted} Gramine image ('gsc build-gramine -b {wanted}')"
        )


def _plan(
    engine: Engine,
    app: ImageConfig,
    app_attrs: dict[str, Any],
    runtime: GramineRuntime,
    user_manifest: Manifest,
    options: BuildOptions,
    ui: Ui,
) -> Plan:
    choices = _choices(user_manifest, app, options.extras, ui)
    app_fs = _read_app(engine, app, app_attrs, choices, options, ui)
    _check_compatible(runtime, app_fs, options)
    user = resolve_user(app_fs, app.user)
    app_library_dirs = tuple(library_dirs(app_fs))
    distro = distro_name(app_fs)
    # What follows reads the final image: the application's files with the
    # runtime's laid over them. They are laid over in place, not into a copy
    # of a dict of every file of the image.
    final_fs = app_fs
    final_fs.entries.update(runtime.files.entries)
    del app_fs
    command = resolve_command(final_fs, app, docker_command(app))
    ui.detail(f"the enclave runs {command.program} as {list(command.argv)}")
    selection = select_trusted(final_fs.entries, Reader(user.uid, user.groups), choices)
    if selection.unreadable:
        ui.warn(
            f"{len(selection.unreadable)} files are not trusted because user"
            f" '{app.user}' cannot read them (first: {selection.unreadable[0]})"
        )
    # The generated manifest is no variable: merge copies it, and a large
    # image's file list is too big to hold twice for longer than the merge.
    manifest = merge(
        generated_manifest(
            Generated(
                config=app,
                command=command,
                user=user,
                runtime=runtime,
                library_dirs=app_library_dirs,
                trusted=selection.trusted,
                debug=options.debug,
                insecure_args=options.insecure_args,
            )
        ),
        user_trusted_files(user_manifest, final_fs),
    )
    del selection  # a dict of every trusted file, no longer needed
    validate_manifest(manifest)
    check_program_trusted(manifest, command, final_fs)
    _warn_unsafe(manifest, options, ui)
    _summarize(manifest, final_fs, distro, ui)
    entrypoint, cmd = _docker_entrypoint(app, command.argv, options.insecure_args)
    # The image's entries are freed before the manifest's text is made, and
    # its pieces take their memory instead of more.
    del final_fs
    return Plan(
        config=app,
        runtime=runtime,
        manifest_pieces=dump_pieces(manifest),
        entrypoint=entrypoint,
        cmd=cmd,
    )


def _check_compatible(
    runtime: GramineRuntime, app_fs: FileSystem, options: BuildOptions
) -> None:
    distro = options.distro if options.distro != "auto" else distro_name(app_fs)
    problem = compatibility_problem(
        runtime.labels, distro, options.debug, options.linux
    )
    if problem:
        raise ImageError(f"Gramine image '{runtime.name}': {problem}")


def _read_app(
    engine: Engine,
    app: ImageConfig,
    app_attrs: dict[str, Any],
    choices: Choices,
    options: BuildOptions,
    ui: Ui,
) -> FileSystem:
    ui.step(f"Reading and hashing the files of {app.name}")
    directories = _layer_directories(engine, app_attrs)
    progress = ui.progress("hashing", int(app_attrs.get("Size") or 0))
    if directories is None and options.no_cache:
        # Nothing is reused or written: the merged file system is the fastest
        # thing the engine streams.
        ui.detail("reading the file system that the engine exports")
        with engine.export_filesystem(app.id) as stream:
            app_fs = read_filesystem(stream, choices.wants_hash, progress.advance)
    else:
        source = "the engine's saved image"
        if directories is not None:
            source = "their directories in the engine's storage"
        ui.detail(f"reading the layers from {source}")
        cache = None if options.no_cache else LayerCache()
        app_fs = read_image(
            engine,
            app.id,
            choices.wants_hash,
            cache,
            progress.advance,
            diff_ids=app.layers,
            directories=directories,
            on_note=ui.detail,
            hash_rules=choices.hash_rules,
        )
        for problem in cache.problems[:3] if cache is not None else []:
            ui.warn(problem)
    progress.close()
    for name in app_fs.skipped_names[:5]:
        ui.warn(f"not trusted: the name {name!r} is not valid UTF-8")
    return app_fs


def _layer_directories(engine: Engine, app_attrs: dict[str, Any]) -> list[Path] | None:
    """The application's layer directories, if GSC can read them here."""
    if (app_attrs.get("GraphDriver") or {}).get("Name") != "overlay2":
        return None
    return layer_directories(app_attrs, engine.info())


def _choices(
    user_manifest: Manifest, app: ImageConfig, extras: Extras, ui: Ui
) -> Choices:
    # Read before the manifest is checked: a value of the wrong type counts
    # as none here, and validate() reports it with its key.
    sgx = user_manifest.get("sgx")
    if not isinstance(sgx, dict):
        sgx = {}
    allowed = frozenset(_paths(sgx.get("allowed_files")))
    for path in sorted(allowed):
        ui.warn(f"{path} is allowed: the enclave reads and writes it unchecked")
    for volume in unhandled_volumes(app.volumes, extras):
        ui.warn(
            f"VOLUME {volume} of {app.name}: its files are not trusted; choose"
            f" --allowed {volume}/, --encrypted-volume {volume}[:KEY] or"
            f" --tmpfs-volume {volume}"
        )
    return Choices(
        allowed=allowed,
        trusted=frozenset(_paths(sgx.get("trusted_files"))),
        exclude=extras.exclude,
        run_time_dirs=(*app.volumes, *extras.volume_paths),
    )


def _paths(uris: Any) -> list[str]:
    """The paths of a list's `file:` URIs (a directory keeps its trailing '/')."""
    found: list[str] = []
    if not isinstance(uris, list):
        return found
    for item in uris:
        uri = item.get("uri") if isinstance(item, dict) else item
        if isinstance(uri, str) and uri.startswith("file:/"):
            found.append(uri[len("file:") :])
    return found


def _summarize(manifest: Manifest, fs: FileSystem, distro: str, ui: Ui) -> None:
    trusted = manifest.get("sgx", {}).get("trusted_files", [])
    if isinstance(trusted, HashedFiles):
        paths = trusted.paths
    else:
        paths = [
            item["uri"][len("file:") :] if isinstance(item, dict) else item[5:]
            for item in trusted
        ]
    # Added up by the file's directory first: there are far fewer of them.
    by_parent: dict[str, int] = {}
    for path in paths:
        entry = fs.entries.get(path)
        if entry is not None:
            parent = path[: path.rfind("/") + 1]
            by_parent[parent] = by_parent.get(parent, 0) + entry.size
    by_directory: dict[str, int] = {}
    for parent, size in by_parent.items():
        top = _top_directory(parent)
        by_directory[top] = by_directory.get(top, 0) + size
    total = sum(by_parent.values())
    largest = sorted(by_directory.items(), key=lambda item: (-item[1], item[0]))[:3]
    shown = ", ".join(f"{d} {size / 1e6:.1f} MB" for d, size in largest)
    ui.step(
        f"Trusting {len(trusted)} files, {total / 1e6:.1f} MB (largest: {shown});"
        f" distro {distro or 'unknown'}"
    )


def _top_directory(path: str) -> str:
    """The first two levels of a file's directory: /usr/lib for /usr/lib/x/y."""
    second = path.find("/", 1)
    if second < 0:
        return "/"
    third = path.find("/", second + 1)
    return path[:second] if third < 0 else path[:third]


def _warn_unsafe(manifest: Manifest, options: BuildOptions, ui: Ui) -> None:
    for option in unsafe_options(manifest):
        asked = (option == "sgx.debug" and options.debug) or (
            option == "loader.insecure__use_cmdline_argv" and options.insecure_args
        )
        reason = "as asked" if asked else "set by the manifest"
        ui.warn(f"{option} is on ({reason}): this weakens the enclave's protection")


def _docker_entrypoint(
    app: ImageConfig, argv: tuple[str, ...], insecure_args: bool
) -> tuple[list[str], list[str]]:
    launcher = f"{APP_FILES}/gsc-launch"
    if not insecure_args:
        return [launcher], []
    # Run-time arguments replace CMD, as in Docker; what comes before CMD
    # (interpreters of scripts, the ENTRYPOINT, or CMD's program when there
    # is no ENTRYPOINT) stays fixed, since the enclave's program is fixed.
    # Gramine makes the application's argv[0] its own application path, so
    # the launcher passes only the arguments after argv[0].
    cmd = list(app.cmd) if app.entrypoint else list(app.cmd[1:])
    fixed = list(argv[1 : len(argv) - len(cmd)])
    return [launcher, *fixed], cmd


def render_dockerfile(plan: Plan, options: BuildOptions) -> str:
    """The Dockerfile that assembles the unsigned image."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("gsc", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    template = environment.get_template("Dockerfile.build.j2")
    return template.render(
        version=__version__,
        app_name=plan.config.name,
        app_image=plan.config.id,
        gramine_name=plan.runtime.name,
        gramine_image=plan.runtime.image_id,
        prefix=plan.runtime.prefix,
        pkglibdir=plan.runtime.pkglibdir,
        app_files=APP_FILES,
        direct=options.linux,
        runtime_roots=runtime_roots(plan.runtime.prefix),
        entrypoint=plan.entrypoint,
        cmd=plan.cmd,
        labels=_label_instruction(plan, options).text,
    )


def runtime_roots(prefix: str) -> list[str]:
    """Where the final stage copies the runtime stage to.

    Copying the directory that holds both the Gramine prefix and GSC's files,
    rather than /, leaves the directories the application image already has
    as they were (a copied directory's owner and mode replace theirs).
    """
    common = posixpath.commonpath([prefix, APP_FILES])
    if common == "/" and prefix != "/":
        return [prefix, APP_FILES]
    return [common]


def _write_context(context: Path, plan: Plan, options: BuildOptions) -> None:
    (context / "Dockerfile").write_text(render_dockerfile(plan, options), "utf-8")
    templates = importlib.resources.files("gsc") / "templates"
    for name in ("gsc-launch.c", "gsc-bundle-loader.sh"):
        (context / name).write_bytes((templates / name).read_bytes())
    app_files = context / "app_files"
    app_files.mkdir()
    manifest = app_files / "entrypoint.manifest"
    with manifest.open("wb") as file:
        file.writelines(_utf8_pieces(plan.manifest_pieces))
    # The image keeps the mode the file has here, which the umask must not set.
    manifest.chmod(0o644)


# The manifest of a large image lists 100,000 files or more in tens of MB,
# in four pieces or so for each file: it is joined and encoded this many
# pieces at a time, and never held whole, as text or as bytes.
_PIECES_AT_ONCE = 1 << 16


def _utf8_pieces(pieces: list[str]) -> Iterator[bytes]:
    for start in range(0, len(pieces), _PIECES_AT_ONCE):
        yield "".join(pieces[start : start + _PIECES_AT_ONCE]).encode("utf-8")


def _check_empty(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise GscError(
            f"--file-only: {target} exists and is not empty; choose a new one"
        )


def _copy_context(context: Path, target: Path) -> None:
    _check_empty(target)
    shutil.copytree(context, target, dirs_exist_ok=True)


def labels(plan: Plan, options: BuildOptions) -> dict[str, str]:
    """The labels that record how the unsigned image was made."""
    digest = hashlib.sha256()
    for piece in _utf8_pieces(plan.manifest_pieces):
        digest.update(piece)
    return {
        LABEL + "version": __version__,
        LABEL + "source-image": plan.config.id,
        LABEL + "source-name": plan.config.name,
        LABEL + "gramine-image": plan.runtime.image_id,
        LABEL + "gramine-name": plan.runtime.name,
        LABEL + "manifest-sha256": digest.hexdigest(),
        LABEL + "manifest": MANIFEST_PATH,
        LABEL + "pkglibdir": plan.runtime.pkglibdir,
        LABEL + "direct": json.dumps(options.linux),
        LABEL + "debug": json.dumps(options.debug),
        LABEL + "insecure-args": json.dumps(options.insecure_args),
        LABEL + "standin": json.dumps(plan.runtime.is_standin),
    }


def _label_instruction(plan: Plan, options: BuildOptions) -> LabelInstruction:
    return label_instruction(labels(plan, options))


def _build(
    engine: Engine, context: Path, plan: Plan, options: BuildOptions, ui: Ui
) -> str:
    name = unsigned_name(options.image)
    ui.step(f"Building {name}")
    keep = (plan.config.id, plan.runtime.image_id)
    result = engine.build(
        context,
        buildargs={
            **dict(options.build_args),
            **_label_instruction(plan, options).build_args,
        },
        labels={},
        nocache=options.no_cache,
        on_line=ui.detail,
        keep=keep,
    )
    try:
        engine.tag(result.image_id, name)
    except BaseException:
        engine.discard([*result.layer_ids, result.image_id], keep)
        raise
    if options.remove_intermediate:
        engine.discard(list(result.layer_ids), (*keep, result.image_id))
    ui.step(f"Built {name} ({result.image_id[7:19]})")
    return name
