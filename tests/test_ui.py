"""Tests for gsc.ui: step lines, and the progress bar only on a terminal."""

from __future__ import annotations

import io

from gsc.ui import Ui


class Terminal(io.StringIO):
    """A stream that says it is a terminal, and counts how often it is asked."""

    def __init__(self, is_terminal: bool) -> None:
        super().__init__()
        self.is_terminal = is_terminal
        self.asked = 0

    def isatty(self) -> bool:
        self.asked += 1
        return self.is_terminal


def test_progress_is_drawn_on_a_terminal() -> None:
    stream = Terminal(True)
    progress = Ui(stream=stream).progress("hashing", 100)

    progress.advance(50)
    progress.close()

    assert "hashing [" in stream.getvalue()
    assert stream.getvalue().rstrip().endswith("100%")


def test_progress_is_silent_elsewhere_and_asks_the_stream_once() -> None:
    stream = Terminal(False)
    progress = Ui(stream=stream).progress("hashing", 10_000)

    for _ in range(10_000):
        progress.advance(1)
    progress.close()

    assert stream.getvalue() == ""
    assert stream.asked == 1


def test_quiet_draws_no_progress_even_on_a_terminal() -> None:
    stream = Terminal(True)
    progress = Ui(verbosity=-1, stream=stream).progress("hashing", 10)

    progress.advance(10)
    progress.close()

    assert stream.getvalue() == ""
