"""`gsc build-gramine`: compile Gramine from source into an image GSC can use."""

from __future__ import annotations

import io
import re
import shlex
import shutil
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jinja2

from gsc.config import Config
from gsc.distros import LABEL, Distro, base_image, lookup
from gsc.dockerfile import quoted
from gsc.engine import Engine, connect
from gsc.errors import EngineError, ImageError
from gsc.gramine import DEFAULT_PREFIX
from gsc.gramine_source import UNKNOWN_COMMIT, GramineSource, locate, stage
from gsc.interrupts import scratch_directory
from gsc.ui import Ui

SOURCE_DIR = "/gramine/source"
BUILD_DIR = "/gramine/build"
COMMIT_FILE = "/gramine/source-commit"
_HOST = r"(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(
    rf"^(?:(?:{_HOST}|[A-Za-z0-9-]+:[0-9]+)/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
)
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_LOG_LINES = 25


@dataclass(frozen=True)
class BuildGramineOptions:
    """What the user asked `gsc build-gramine` for."""

    image: str
    debug: bool = False
    buildtype: str = "release"
    linux: bool = False
    no_cache: bool = False
    remove_intermediate: bool = False
    build_args: tuple[tuple[str, str], ...] = ()
    file_only: bool = False


@dataclass(frozen=True)
class Recipe:
    """Everything the Dockerfile says, decided before anything is built."""

    distro: Distro
    base_image: str
    source: GramineSource
    buildtype: str
    direct: bool

    @property
    def prefix(self) -> str:
        return DEFAULT_PREFIX


def run(options: BuildGramineOptions, config: Config, ui: Ui) -> int:
    """Build the Gramine image and tag it; print its name on stdout."""
    check_image_name(options.image)
    recipe = make_recipe(options, config)
    if options.file_only:
        print(_write_file_only(options.image, recipe, ui))
        return 0
    print(build_image(connect(), options, recipe, ui))
    return 0


def build_image(
    engine: Engine, options: BuildGramineOptions, recipe: Recipe, ui: Ui
) -> str:
    """Compile Gramine into an image tagged `options.image`; return that name."""
    with scratch_directory("gsc-build-gramine-") as scratch:
        context = Path(scratch) / "context"
        context.mkdir()
        write_context(context, recipe)
        image_id = _build(engine, Path(scratch), recipe, options, ui)
    engine.tag(image_id, options.image)
    ui.step(f"Built {options.image} ({image_id[7:19]})")
    return options.image


def check_image_name(name: str) -> None:
    if not _IMAGE_NAME.match(name):
        raise ImageError(
            f"IMAGE-NAME '{name}': not a valid image name (lowercase letters,"
            " digits, '.', '_', '-' and '/', then an optional ':tag')"
        )


def make_recipe(options: BuildGramineOptions, config: Config) -> Recipe:
    """Check the distro and the source and settle what to build."""
    distro = lookup(config.distro)
    source = locate(config.gramine_repository, config.gramine_branch)
    buildtype = options.buildtype
    if options.debug and buildtype == "release":
        buildtype = "debug"
    return Recipe(
        distro=distro,
        base_image=base_image(distro, config.registry),
        source=source,
        buildtype=buildtype,
        direct=options.linux,
    )


def labels(recipe: Recipe) -> dict[str, str]:
    """The labels that say what the image holds; `commit` once it is known."""
    values = {
        "version": recipe.source.ref,
        "commit": recipe.source.commit,
        "buildtype": recipe.buildtype,
        "distro": recipe.distro.name,
        "direct": "true" if recipe.direct else "false",
        "prefix": recipe.prefix,
        "libdir": recipe.distro.libdir,
        "standin": "false",
        "libc": "glibc",
    }
    return {LABEL + key: value for key, value in values.items() if value}


def render_dockerfile(recipe: Recipe) -> str:
    """The Dockerfile that compiles Gramine and makes the Gramine image."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("gsc", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    environment.filters["sh"] = shlex.quote
    source = recipe.source
    template = environment.get_template(recipe.distro.template)
    return template.render(
        distro=recipe.distro,
        base_image=recipe.base_image,
        source=source,
        build_packages=_build_packages(recipe),
        buildtype=recipe.buildtype,
        direct=recipe.direct,
        prefix=recipe.prefix,
        source_dir=SOURCE_DIR,
        build_from=_build_from(source),
        build_dir=BUILD_DIR,
        commit_file=COMMIT_FILE,
        labels=[f"{k}={quoted(v)}" for k, v in labels(recipe).items()],
    )


def write_context(context: Path, recipe: Recipe) -> None:
    """Write the Dockerfile and copy a source from the host beside it."""
    (context / "Dockerfile").write_text(render_dockerfile(recipe), "utf-8")
    stage(recipe.source, context)


def _build_packages(recipe: Recipe) -> tuple[str, ...]:
    extra = recipe.distro.git_packages if recipe.source.is_git else ()
    return tuple(sorted(recipe.distro.build_packages + extra))


def _build_from(source: GramineSource) -> str:
    if source.kind == "archive":
        return str(Path(SOURCE_DIR, source.root))
    return SOURCE_DIR


def _write_file_only(image: str, recipe: Recipe, ui: Ui) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", image).strip("-.") or "image"
    target = Path(tempfile.mkdtemp(prefix=f"gsc-build-gramine-{slug}-", dir="."))
    try:
        write_context(target, recipe)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    target = target.resolve()
    ui.step(f"Wrote the Dockerfile and its build context to {target}")
    return target


def _build(
    engine: Engine, scratch: Path, recipe: Recipe, options: BuildGramineOptions, ui: Ui
) -> str:
    mode = "SGX and direct" if recipe.direct else "SGX"
    ui.step(
        f"Compiling Gramine {recipe.source.ref} ({recipe.buildtype}, {mode}) on"
        f" {recipe.distro.name} from {recipe.base_image}; this takes a while"
    )
    if not engine.image_exists(recipe.base_image):
        ui.step(f"{recipe.base_image} is not in the local engine; the engine pulls it")
    with _replayed_on_failure(ui) as on_line:
        result = engine.build(
            scratch / "context",
            buildargs=dict(options.build_args),
            labels={},
            nocache=options.no_cache,
            on_line=on_line,
            network_mode="host",
        )
        image_id = result.image_id
        if recipe.source.is_git:
            image_id = _label_commit(engine, scratch, image_id, on_line)
    if options.remove_intermediate:
        engine.discard(list(result.layer_ids), (image_id,))
    return image_id


@contextmanager
def _replayed_on_failure(ui: Ui) -> Iterator[Callable[[str], None]]:
    """Show the build log with -v; without it, its last lines if the build fails."""
    recent: deque[str] = deque(maxlen=_LOG_LINES)

    def on_line(line: str) -> None:
        recent.append(line)
        ui.detail(line)

    try:
        yield on_line
    except EngineError:
        if ui.verbosity <= 0 and recent:
            print("    ...", file=ui.stream)
            for line in recent:
                print(f"    {line}", file=ui.stream)
        raise


def _label_commit(
    engine: Engine, scratch: Path, image_id: str, on_line: Callable[[str], None]
) -> str:
    """Add the label of the commit the build checked out; return the new image."""
    context = scratch / "label"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {image_id}\n", "utf-8")
    result = engine.build(
        context,
        buildargs={},
        labels={LABEL + "commit": _read_commit(engine, image_id)},
        nocache=False,
        on_line=on_line,
    )
    return result.image_id


def _read_commit(engine: Engine, image_id: str) -> str:
    with engine.archive(image_id, COMMIT_FILE) as stream:
        data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = next((m for m in archive.getmembers() if m.isfile()), None)
        file = archive.extractfile(member) if member is not None else None
        text = file.read(200).decode("ascii", "replace").strip() if file else ""
    return text if _COMMIT.match(text) else UNKNOWN_COMMIT
