"""Work that Ctrl-C or SIGTERM must not cut in half.

The command line turns SIGTERM into an exception, as Python does Ctrl-C, so
either can surface between any two steps of the program. Where half of a
step would leave something behind (an engine object, a scratch directory),
the signals are held for its length and arrive as soon as it is done.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for the block; they arrive after it.

    Their handlers are swapped for ones that only take note, rather than the
    signals masked: a mask holds a signal back from one thread, and the
    kernel hands a signal sent to the process to any other thread that does
    not mask it. Python runs the handlers in the main thread whichever
    thread took the signal.
    """
    if threading.current_thread() is not threading.main_thread():
        # Only the main thread can swap handlers, and only it runs them.
        yield
        return
    arrived: list[int] = []

    def take_note(signum: int, frame: FrameType | None) -> None:
        arrived.append(signum)

    previous = {s: signal.signal(s, take_note) for s in _HELD}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if arrived:
            # Handled now, by the handler the signal would have met.
            signal.raise_signal(arrived[0])


@contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    """A new private directory for the block, removed after it however it ends.

    Its making and its removal are not cut short by a signal, which would
    leave it behind: tests/test_interrupt.py once found a signing's scratch
    directory left after a SIGTERM, with `tempfile.TemporaryDirectory`.
    """
    path = None
    try:
        with signals_held():
            path = Path(tempfile.mkdtemp(prefix=prefix))
        yield path
    finally:
        if path is not None:
            with signals_held():
                shutil.rmtree(path, ignore_errors=True)
