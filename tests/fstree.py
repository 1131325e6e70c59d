"""Real tar streams of small file system trees, for the tests that read images."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from gsc.image import FileSystem, read_filesystem

# A real ELF executable of the host, to stand for any program in an image.
ELF = Path("/bin/true").read_bytes()


class Tree:
    """The members of a tar archive, written the way `docker export` names them."""

    def __init__(self) -> None:
        self._members: list[tuple[tarfile.TarInfo, bytes]] = []

    def _add(self, path: str, kind: bytes, mode: int, data: bytes = b"") -> Tree:
        info = tarfile.TarInfo(path.lstrip("/") or ".")
        info.type = kind
        info.mode = mode
        info.size = len(data)
        info.mtime = 1_700_000_000
        self._members.append((info, data))
        return self

    def dir(self, path: str, mode: int = 0o755) -> Tree:
        return self._add(path, tarfile.DIRTYPE, mode)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> Tree:
        return self._add(path, tarfile.REGTYPE, mode, data)

    def program(self, path: str, data: bytes = ELF) -> Tree:
        return self.file(path, data, 0o755)

    def symlink(self, path: str, target: str) -> Tree:
        self._add(path, tarfile.SYMTYPE, 0o777)
        self._members[-1][0].linkname = target
        return self

    def hardlink(self, path: str, target: str) -> Tree:
        self._add(path, tarfile.LNKTYPE, 0o644)
        self._members[-1][0].linkname = target.lstrip("/")
        return self

    def fifo(self, path: str) -> Tree:
        return self._add(path, tarfile.FIFOTYPE, 0o644)

    def owned(self, uid: int, gid: int) -> Tree:
        """Give the member added last an owner other than root."""
        info = self._members[-1][0]
        info.uid, info.gid = uid, gid
        return self

    def tar(self, fmt: int = tarfile.PAX_FORMAT) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(
            fileobj=buffer, mode="w", format=fmt, errors="surrogateescape"
        ) as archive:
            for info, data in self._members:
                archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
        return buffer.getvalue()

    def read(self, wants_hash: Callable[[str], bool] = lambda path: True) -> FileSystem:
        return read_filesystem(chunks(self.tar(), 1000), wants_hash)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    """`data` cut in pieces of `size` bytes, as an engine's stream delivers it."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
