"""Dockerfile text for values that may come from users, such as image names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LABEL_ARG = "GSC_LABEL_"


@dataclass(frozen=True)
class LabelInstruction:
    """A LABEL instruction, without a final line break, and the build
    arguments it takes values from."""

    text: str
    build_args: Mapping[str, str] = field(default_factory=dict)


def quoted(value: str) -> str:
    """`value` as a double-quoted Dockerfile word, with no variable expanded."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def label_instruction(labels: Mapping[str, str]) -> LabelInstruction:
    """A LABEL instruction that sets all of `labels`, one label a line.

    A Dockerfile has no escape for a line break, so a value with a line break
    or another character a line cannot hold is passed as a build argument
    instead, which an ARG line before the LABEL line declares.
    """
    if not labels:
        return LabelInstruction("")
    words = []
    build_args: dict[str, str] = {}
    for key, value in sorted(labels.items()):
        if not _LABEL_KEY.fullmatch(key):
            raise ValueError(f"label key {key!r} is not a plain name")
        if all(c.isprintable() or c == "\t" for c in value):
            words.append(f"{key}={quoted(value)}")
        else:
            name = f"{_LABEL_ARG}{len(build_args)}"
            build_args[name] = value
            words.append(f'{key}="${{{name}}}"')
    text = "LABEL " + " \\\n      ".join(words)
    if build_args:
        text = f"ARG {' '.join(build_args)}\n{text}"
    return LabelInstruction(text, build_args)
