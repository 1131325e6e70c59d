"""Labels written into a Dockerfile, read back from the real engine exactly."""

from __future__ import annotations

import random
from pathlib import Path

import docker
import pytest

from gsc.dockerfile import label_instruction
from gsc.engine import Engine

pytestmark = pytest.mark.engine

ODD_VALUES = {
    "all.four": 'say "hi" \\ to $HOME\nand ${PATH} too',
    "quote": 'a "quoted" word',
    "backslash.end": "ends in a backslash\\",
    "backslashes": "\\\\server\\share \\n is not a line break",
    "dollar": "$HOME ${PATH:-x} $$ $",
    "single.quotes": "it's 'single'",
    "spaces": "  leading and trailing  ",
    "empty": "",
    "equals": "a=b=c",
    "hash": "# not a comment",
    "unicode": "café ✓ 雪",
    "tab": "one\ttwo",
    "line.breaks": "\nfirst\r\nsecond\n",
    "continuation": "looks like a continuation \\\nof the line",
}
# Characters a Dockerfile treats specially, mixed with plain ones.
ALPHABET = "\"\\$'{}()= #\n\r\t-:.,aZ9é✓"


def random_values(count: int) -> dict[str, str]:
    rng = random.Random(20_240_601)
    return {
        f"random.{n}": "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24)))
        for n in range(count)
    }


def test_odd_label_values_read_back_exactly(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    labels = {**ODD_VALUES, **random_values(40)}
    instruction = label_instruction(labels)
    (tmp_path / "Dockerfile").write_text(
        f"FROM gsc-test/debian:12\n{instruction.text}\n", encoding="utf-8"
    )
    engine = Engine(docker_client)
    steps: list[str] = []

    result = engine.build(
        tmp_path,
        buildargs=dict(instruction.build_args),
        labels={},
        nocache=True,
        on_line=steps.append,
    )
    try:
        found = engine.inspect_image(result.image_id)["Config"]["Labels"]
    finally:
        engine.discard([*result.layer_ids, result.image_id])

    assert {key: found.get(key) for key in labels} == labels
    assert [s.split(" : ")[1].split()[0] for s in steps if s.startswith("Step ")] == [
        "FROM",
        "ARG",
        "LABEL",
    ]
    assert not engine.image_exists(result.image_id)
