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


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for the block; they arrive after it."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        # Signals are handled by the main thread only.
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
