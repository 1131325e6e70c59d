"""A process that reads and hashes files on the host for `gsc.hashing`.

Opening, reading and closing a small file takes the interpreter lock
several times, so threads that hash many small files take turns with each
other and with the thread that walks the layers. A process of its own per
worker has a lock of its own.

The protocol is one JSON line each way. A request is `[chunk, [[path, size,
head_size], ...]]`; the answer is `[[sha256, head_hex], ...]` in the same
order, or `{"unreadable": [path, reason]}` or `{"changed": path}` for the
first file that could not be read as it was walked. The process ends when
its input does.

It imports nothing of GSC's: it starts quickly, and runs as a script in
Python's isolated mode, which leaves the environment's module search path
and the user's site directory out.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from typing import IO, Any


def command() -> list[str]:
    """The command that starts a worker."""
    return [sys.executable, "-I", os.path.abspath(__file__)]


class FileChanged(Exception):
    """A file's size is not what the walk saw."""


def hash_file(path: str, size: int, head_size: int, chunk: int) -> tuple[str, bytes]:
    """A file's SHA-256 and its first `head_size` bytes.

    Raises OSError if it cannot be read and `FileChanged` if it does not hold
    `size` bytes.
    """
    digest = hashlib.sha256()
    head = b""
    read = 0
    with open(path, "rb", buffering=0) as source:
        while block := source.read(chunk):
            if read == 0 and head_size:
                head = block[:head_size]
            digest.update(block)
            read += len(block)
    if read != size:
        raise FileChanged(path)
    return digest.hexdigest(), head


def answer(request: Any) -> Any:
    """The answer to one request."""
    chunk, files = request
    found = []
    for path, size, head_size in files:
        try:
            value, head = hash_file(path, size, head_size, chunk)
        except OSError as err:
            return {"unreadable": [path, err.strerror or str(err)]}
        except FileChanged:
            return {"changed": path}
        found.append([value, head.hex()])
    return found


def serve(requests: IO[str], answers: IO[str]) -> None:
    """Answer each request line as it comes, until the requests end."""
    for line in requests:
        answers.write(json.dumps(answer(json.loads(line))) + "\n")
        answers.flush()


def main() -> None:
    # Ctrl-C reaches the whole process group: the command stops its workers
    # itself, by closing their input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
