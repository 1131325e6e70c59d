"""The last stage of a build, tagging, interrupted or failing: the image just
built is removed again and nothing else is touched. The engine here is a
recording double with canned answers (the other stages are tested against
the real engine in test_interrupt.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsc.commands import build
from gsc.engine import BuildResult
from gsc.errors import EngineError
from gsc.gramine import GramineRuntime
from gsc.image import FileSystem, ImageConfig
from gsc.ui import Ui

APP_ID = "sha256:" + "a" * 64
GRAMINE_ID = "sha256:" + "b" * 64
BUILT_ID = "sha256:" + "c" * 64


class RecordingEngine:
    """Answers like an engine whose build succeeded; `tag` fails as told."""

    def __init__(self, failure: BaseException) -> None:
        self.failure = failure
        self.removed: list[str] = []

    def build(self, context: Path, **kwargs: object) -> BuildResult:
        return BuildResult(BUILT_ID, ("1111aaaa2222", "3333bbbb4444"))

    def tag(self, image_id: str, name: str) -> None:
        raise self.failure

    def image_tags(self, image_id: str) -> list[str]:
        return []

    def discard(self, image_ids: list[str], keep: tuple[str, ...] = ()) -> None:
        self.removed += [i for i in image_ids if i not in keep]


def plan() -> build.Plan:
    config = ImageConfig(
        id=APP_ID,
        name="app",
        entrypoint=(),
        cmd=("/app",),
        env=(),
        working_dir="/",
        user="",
        volumes=(),
        layers=(),
        labels={},
    )
    runtime = GramineRuntime(
        image_id=GRAMINE_ID,
        name="gramine",
        prefix="/gramine/meson_build_output",
        pkglibdir="/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine",
        files=FileSystem(),
        labels={},
    )
    return build.Plan(config, runtime, ["[libos]\n"], ["/launch"], [])


@pytest.mark.parametrize(
    "failure",
    [KeyboardInterrupt(), EngineError("tagging failed")],
    ids=["INT", "error"],
)
def test_interrupted_tagging_removes_the_new_image(
    failure: BaseException, tmp_path: Path
) -> None:
    engine = RecordingEngine(failure)
    options = build.BuildOptions(image="app", manifest=None)

    with pytest.raises(type(failure)):
        build._build(engine, tmp_path, plan(), options, Ui(verbosity=-1))  # type: ignore[arg-type]

    assert BUILT_ID in engine.removed
    assert set(engine.removed) == {BUILT_ID, "1111aaaa2222", "3333bbbb4444"}
