"""What GSC tells the person at the terminal: step lines, warnings, progress."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Ui:
    """Writes step lines and warnings to stderr; results go to stdout."""

    verbosity: int = 0
    stream: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def colour(self) -> bool:
        return self.stream.isatty() and "NO_COLOR" not in os.environ

    @property
    def interactive(self) -> bool:
        return self.stream.isatty() and self.verbosity >= 0

    def _paint(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def step(self, text: str) -> None:
        """A line saying what GSC is doing now; hidden by -q."""
        if self.verbosity >= 0:
            print(self._paint("1", "==> ") + text, file=self.stream, flush=True)

    def detail(self, text: str) -> None:
        """A line shown only with -v."""
        if self.verbosity > 0:
            print("    " + text, file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        """A warning; shown even with -q."""
        print(self._paint("33", "WARNING ") + text, file=self.stream, flush=True)

    def error(self, text: str) -> None:
        print(self._paint("31", "ERROR ") + text, file=self.stream, flush=True)

    def progress(self, label: str, total: int) -> Progress:
        return Progress(self, label, total)


class Progress:
    """A progress bar on a terminal, redrawn at most ten times a second."""

    def __init__(self, ui: Ui, label: str, total: int) -> None:
        self._ui = ui
        self._label = label
        self._total = max(total, 1)
        self._done = 0
        self._drawn_at = 0.0
        # Asked once: advance runs for every file read, and asking is a
        # system call.
        self._interactive = ui.interactive

    def advance(self, amount: int) -> None:
        self._done += amount
        if not self._interactive:
            return
        now = time.monotonic()
        if now - self._drawn_at > 0.1:
            self._drawn_at = now
            self._draw()

    def close(self) -> None:
        if self._interactive:
            self._done = self._total
            self._draw()
            print(file=self._ui.stream, flush=True)

    def _draw(self) -> None:
        share = min(self._done / self._total, 1.0)
        bar = "#" * int(share * 30)
        line = f"\r    {self._label} [{bar:<30}] {share:4.0%}"
        print(line, end="", file=self._ui.stream, flush=True)
