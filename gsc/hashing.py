"""Hash the files of a tar stream on every core, with the memory in flight bounded.

One reader thread walks the tar stream and hands the bytes of each regular
file to a pool of worker threads; `hashlib` lets go of the interpreter lock
while it hashes a large buffer, so the workers hash in parallel. A small
file is hashed by the reader itself: handing it over would cost more than
hashing it, and a worker would then wait for the interpreter lock. A file
larger than a chunk is fed chunk by chunk, in order, to one hash object that
one worker at a time advances, so it is never held whole. The bytes handed
over and not yet hashed never exceed the pool's budget: the reader waits.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import queue
import subprocess
import tarfile
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Literal, NamedTuple, Protocol, cast

from gsc import hashworker
from gsc.errors import GscError, ImageError
from gsc.hashworker import FileChanged, hash_file
from gsc.image import (
    HEAD_SIZE,
    KEPT_FILES,
    Entry,
    FileSystem,
    WantsHash,
    has_bad_name,
    keeps_content,
)

DEFAULT_BUDGET = 64 << 20
DEFAULT_CHUNK = 1 << 20
# Files smaller than this are hashed by the reader itself.
DEFAULT_INLINE_LIMIT = 256 << 10
# Files on the host are read by worker processes (`gsc.hashworker`) once
# this many have been handed over; fewer are not worth starting them for.
DEFAULT_PROCESSES_AFTER = 2000
# tarfile copies what is left of its buffer on every read: keep it small.
_TAR_BUFFER = 16 << 10
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def _ignore(size: int) -> None:
    """Progress that nobody watches."""


class Digest:
    """The SHA-256 of one file, known once its pool has hashed it."""

    __slots__ = ("value",)

    def __init__(self, value: str = "") -> None:
        self.value = value  # set by the worker that hashes the file

    def hexdigest(self) -> str:
        if not self.value:
            raise RuntimeError("digest read before its pool finished hashing")
        return self.value


class _Work(Protocol):
    def run(self, pool: HashPool) -> None: ...


class _Whole:
    """A file given whole, hashed by one worker in one go."""

    def __init__(self, data: bytes) -> None:
        self.digest = Digest()
        self._data = data

    def run(self, pool: HashPool) -> None:
        self.digest.value = hashlib.sha256(self._data).hexdigest()
        pool._finished(len(self._data), 1)


class Strand:
    """One large file, fed in chunks and hashed in order by one worker at a time."""

    def __init__(self, pool: HashPool) -> None:
        self.digest = Digest()
        self._pool = pool
        self._hash = hashlib.sha256()
        self._chunks: deque[bytes | None] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def feed(self, chunk: bytes) -> None:
        """Hand over the next chunk; waits while the pool's budget is spent."""
        self._pool.bytes_hashed += len(chunk)
        self._pool._reserve(len(chunk))
        self._push(chunk)

    def finish(self) -> Digest:
        """Say the file has ended; its digest is known after `HashPool.wait`."""
        self._push(None)
        return self.digest

    def _push(self, chunk: bytes | None) -> None:
        with self._lock:
            self._chunks.append(chunk)
            if self._scheduled:
                return
            self._scheduled = True
        self._pool._submit(self)

    def run(self, pool: HashPool) -> None:
        while True:
            with self._lock:
                if not self._chunks:
                    self._scheduled = False
                    return
                chunk = self._chunks.popleft()
            if chunk is None:
                self.digest.value = self._hash.hexdigest()
                pool._finished(0, 1)
            else:
                self._hash.update(chunk)
                pool._finished(len(chunk), 0)


class DiskFile(Digest):
    """A file on the host for a worker to read and hash, and then its digest
    and the first `head_size` bytes of it.

    Its host path is `root` and `name` joined when it is asked for: a
    layer's files share their root, and each name is the file's path in
    the image, held anyway. A walk keeps one of these for every file of a
    layer until they are hashed, and a host path for each cost about 160
    bytes a file more.
    """

    __slots__ = ("head", "head_size", "name", "root", "size")

    def __init__(
        self, name: str, size: int, head_size: int = 0, root: str = ""
    ) -> None:
        super().__init__()
        self.root = root
        self.name = name
        self.size = size
        self.head_size = head_size
        self.head = b""

    @property
    def path(self) -> str:
        """The file's host path."""
        return self.root + self.name


class _DiskBatch:
    """Files on the host, read and hashed by one worker, one after another.

    Handing over files in batches keeps the cost of each hand-over, which
    is paid under the interpreter lock, small beside the reading.
    """

    def __init__(self, files: list[DiskFile]) -> None:
        self._files = files

    def run(self, pool: HashPool) -> None:
        try:
            process = pool._worker_process()
            if process is not None:
                process.hash(self._files, pool.chunk)
                return
            for file in self._files:
                _hash_disk_file(file, pool.chunk)
        finally:
            pool._finished(0, len(self._files))


def _hash_disk_file(file: DiskFile, chunk: int) -> None:
    try:
        file.value, file.head = hash_file(file.path, file.size, file.head_size, chunk)
    except OSError as err:
        raise _unreadable(file.path, err.strerror or str(err)) from err
    except FileChanged as err:
        raise _changed(file.path) from err


def _unreadable(path: str, reason: str) -> ImageError:
    return ImageError(f"cannot read {path} from the engine's storage ({reason})")


def _changed(path: str) -> ImageError:
    return ImageError(f"{path} in the engine's storage changed while it was read")


class _WorkerProcess:
    """A `gsc.hashworker` process, which one worker thread hands its batches to."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            hashworker.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="ascii",
        )

    def hash(self, files: list[DiskFile], chunk: int) -> None:
        """Hash files in the process: only their paths go, only digests come back."""
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        wanted = [(file.path, file.size, file.head_size) for file in files]
        stdin.write(json.dumps([chunk, wanted]) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"hashing process ended ({self._process.wait()})")
        found = json.loads(line)
        if isinstance(found, dict):
            if "changed" in found:
                raise _changed(found["changed"])
            raise _unreadable(*found["unreadable"])
        for file, (value, head) in zip(files, found, strict=True):
            file.head = bytes.fromhex(head)
            file.value = value

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


class HashPool:
    """Worker threads that hash files handed to them, in any number at once.

    `workers=0` hashes in the calling thread, for comparison. Counters say how
    many files and bytes were handed over, and the most bytes ever in flight.
    Once `processes_after` files on the host have been handed over, each
    thread hands its batches of them to a process of its own
    (`gsc.hashworker`); None keeps them in the threads.
    """

    def __init__(
        self,
        workers: int | None = None,
        budget: int = DEFAULT_BUDGET,
        chunk: int = DEFAULT_CHUNK,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        processes_after: int | None = DEFAULT_PROCESSES_AFTER,
    ) -> None:
        self.chunk = chunk
        self.inline_limit = inline_limit
        self.files_hashed = 0
        self.bytes_hashed = 0
        self.peak_in_flight = 0
        self._budget = max(budget, chunk)
        self._in_flight = 0
        self._unfinished = 0
        self._error: BaseException | None = None
        self._condition = threading.Condition()
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        count = (os.cpu_count() or 1) if workers is None else workers
        self._processes_after = processes_after
        self._disk_files_handed = 0
        self._processes: list[_WorkerProcess] = []
        self._own_process = threading.local()
        self._threads = [
            threading.Thread(target=self._work, name=f"gsc-hash-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> HashPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def whole(self, data: bytes) -> Digest:
        """Hash a file given whole; its digest is known after `wait`."""
        self.files_hashed += 1
        self.bytes_hashed += len(data)
        if len(data) < self.inline_limit or not self._threads:
            # Handing a small file over would cost the reader more than
            # hashing it, and a worker would wait for the interpreter lock.
            return Digest(hashlib.sha256(data).hexdigest())
        work = _Whole(data)
        self._reserve(len(data), files=1)
        self._queue.put(work)
        return work.digest

    def disk_files(self, files: list[DiskFile]) -> None:
        """Read and hash files on the host; their digests are known after `wait`."""
        if not files:
            return
        self.files_hashed += len(files)
        self.bytes_hashed += sum(file.size for file in files)
        # Only paths wait in the queue, and a worker holds one chunk of a
        # file at a time: nothing to count against the budget. Waiting for
        # it would leave a worker idle while another hashes a large file.
        self._reserve(0, files=len(files))
        self._disk_files_handed += len(files)
        self._submit(_DiskBatch(files))

    def strand(self) -> Strand:
        """Start a file too large to be held whole."""
        self.files_hashed += 1
        with self._condition:
            self._unfinished += 1
        return Strand(self)

    def wait(self) -> None:
        """Wait until every file handed over so far is hashed."""
        with self._condition:
            while self._unfinished and self._error is None:
                self._condition.wait()
            self._raise_failure()

    def close(self) -> None:
        """Stop the workers; work not yet started is dropped (after `wait`,
        there is none)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        for process in self._processes:
            process.close()
        self._processes = []

    @property
    def processes_started(self) -> int:
        """How many worker processes read files on the host."""
        return len(self._processes)

    def _worker_process(self) -> _WorkerProcess | None:
        """The calling worker thread's process, once enough files make it worth
        starting; None to hash in the thread."""
        own: _WorkerProcess | None = getattr(self._own_process, "process", None)
        if own is not None or self._processes_after is None:
            return own
        if self._disk_files_handed < self._processes_after:
            return None
        try:
            own = _WorkerProcess()
        except OSError:
            # No interpreter to start here (Python embedded in another
            # program): the threads hash, as for a small image.
            self._processes_after = None
            return None
        self._own_process.process = own
        with self._condition:
            self._processes.append(own)
        return own

    def _reserve(self, size: int, files: int = 0) -> None:
        with self._condition:
            self._unfinished += files
            while (
                self._in_flight
                and self._in_flight + size > self._budget
                and self._error is None
            ):
                self._condition.wait()
            self._raise_failure()
            self._in_flight += size
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def _submit(self, work: _Work) -> None:
        if self._threads:
            self._queue.put(work)
        else:
            work.run(self)

    def _finished(self, size: int, files: int) -> None:
        with self._condition:
            self._in_flight -= size
            self._unfinished -= files
            self._condition.notify_all()

    def _work(self) -> None:
        while (work := self._queue.get()) is not None:
            try:
                work.run(self)
            except BaseException as err:  # the reader re-raises it
                with self._condition:
                    self._error = self._error or err
                    self._condition.notify_all()

    def _raise_failure(self) -> None:
        if isinstance(self._error, GscError):
            raise self._error
        if self._error is not None:
            raise RuntimeError("a hashing thread failed") from self._error


class Record(NamedTuple):
    """A tar member as read; a regular file's digest may still be in the pool.

    A named tuple, as `Entry` is: a layer has a record for each of its files.
    """

    path: str
    kind: str  # an Entry's kind, or "link", "whiteout", "opaque", "skipped"
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    target: str = ""  # a symbolic link's target, or a hard link's absolute path
    digest: Digest | None = None
    head: bytes = b""
    kept: bytes | None = None


class ChunkStream:
    """A readable file over an iterator of byte chunks, as tarfile's stream mode
    reads it: it hands out views of the chunks, never copies."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._view = memoryview(b"")

    def read(self, size: int = -1) -> memoryview:
        while not self._view:
            try:
                self._view = memoryview(next(self._chunks))
            except StopIteration:
                return self._view
        if size < 0:
            size = len(self._view)
        piece, self._view = self._view[:size], self._view[size:]
        return piece


class MemberData:
    """The data of a tar stream's current member, read straight from the stream.

    tarfile's own file objects would copy every byte twice more on the way.
    """

    def __init__(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        source = tar.extractfile(member) if member.issparse() else tar.fileobj
        assert source is not None
        self._source = source
        self._left = member.size

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._left:
            size = self._left
        if not size:
            return b""
        data = self._source.read(size)
        if len(data) != size:
            raise tarfile.ReadError("unexpected end of data")
        self._left -= size
        return data


# A header that fails its checksum, or is cut short; not an end-of-archive mark.
_DAMAGED_HEADER: tuple[type[Exception], ...] = (
    getattr(tarfile, "InvalidHeaderError", tarfile.HeaderError),
    getattr(tarfile, "TruncatedHeaderError", tarfile.HeaderError),
)


class _StrictTarInfo(tarfile.TarInfo):
    """Member headers that fail their checksum are errors.

    tarfile takes a bad header after the first for the end of the archive,
    which would leave the rest of a damaged stream unread, without a word.
    """

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> _StrictTarInfo:
        try:
            return super().fromtarfile(tar)
        except _DAMAGED_HEADER as err:
            raise tarfile.ReadError(f"damaged member header ({err})") from err


def open_tar(source: ChunkStream | MemberData, compressed: bool) -> tarfile.TarFile:
    """A tar stream in stream mode; `compressed` lets it be gzip, bzip2 or xz."""
    # tarfile joins whatever read() gives back, so views of chunks serve.
    fileobj = cast(IO[bytes], source)
    mode: Literal["r|", "r|*"] = "r|*" if compressed else "r|"
    return tarfile.open(
        fileobj=fileobj,
        mode=mode,
        bufsize=_TAR_BUFFER,
        errors="surrogateescape",
        tarinfo=_StrictTarInfo,
    )


def read_records(
    source: ChunkStream | MemberData,
    wants_hash: WantsHash,
    pool: HashPool,
    on_bytes: Callable[[int], None] = _ignore,
    *,
    base: str = "/",
    layer: bool = False,
    what: str = "the image's file system",
) -> list[Record]:
    """Read a tar stream's members in order, handing the files to hash to `pool`.

    A layer may be compressed, and in a layer the names that mark whiteouts
    and opaque directories become records of those kinds. Digests are known
    after `pool.wait()`.
    """
    reader = _MemberReader(wants_hash, pool, on_bytes, base, layer)
    records: list[Record] = []
    try:
        with open_tar(source, compressed=layer) as tar:
            for member in tar:
                record = reader.read(tar, member)
                if record is not None:
                    records.append(record)
    except tarfile.TarError as err:
        raise ImageError(f"cannot read {what}: {err}") from err
    return records


class _MemberReader:
    """Turns tar members into records, the way `gsc.image.read_filesystem` does."""

    def __init__(
        self,
        wants_hash: WantsHash,
        pool: HashPool,
        on_bytes: Callable[[int], None],
        base: str,
        layer: bool,
    ) -> None:
        self._wants_hash = wants_hash
        self._pool = pool
        self._on_bytes = on_bytes
        self._base = base
        self._layer = layer
        # A layer's mode is what the engine applies: permissions and the
        # set-id and sticky bits. The file type bits that some tar writers
        # add (the engine's own export does) are said by the kind already.
        self._mode_mask = 0o7777 if layer else -1

    def read(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> Record | None:
        path = posixpath.normpath(posixpath.join(self._base, member.name))
        if self._layer and posixpath.basename(path).startswith(WHITEOUT):
            return _marker(path)
        if self._layer and "/.wh..wh." in path:
            return None
        if has_bad_name(path):
            return Record(path, "skipped")
        if member.isreg():
            return self._file(tar, member, path)
        kind, target = "other", ""
        if member.islnk():
            kind = "link"
            target = posixpath.normpath(posixpath.join(self._base, member.linkname))
        elif member.issym():
            kind, target = "symlink", member.linkname
        elif member.isdir():
            kind = "dir"
        mode = member.mode & self._mode_mask
        return Record(path, kind, mode, member.uid, member.gid, target=target)

    def _file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> Record:
        keep = keeps_content(path, member.size)
        executable = bool(member.mode & 0o111)
        owner = (member.mode & self._mode_mask, member.uid, member.gid, member.size)
        if not (keep or executable or self._wants_hash(path)):
            return Record(path, "file", *owner)
        source = MemberData(tar, member)
        if member.size <= self._pool.chunk:
            data = source.read()
            self._on_bytes(len(data))
            head = data[:HEAD_SIZE] if executable else b""
            digest = self._pool.whole(data)
            return Record(
                path, "file", *owner, "", digest, head, data if keep else None
            )
        return self._large_file(source, path, owner, keep, executable)

    def _large_file(
        self,
        source: MemberData,
        path: str,
        owner: tuple[int, int, int, int],
        keep: bool,
        executable: bool,
    ) -> Record:
        strand = self._pool.strand()
        head = b""
        kept = bytearray()
        while block := source.read(self._pool.chunk):
            if not head and executable:
                head = block[:HEAD_SIZE]
            if keep:
                kept += block
            strand.feed(block)
            self._on_bytes(len(block))
        digest = strand.finish()
        return Record(
            path, "file", *owner, "", digest, head, bytes(kept) if keep else None
        )


def _marker(path: str) -> Record | None:
    directory, name = posixpath.split(path)
    if name == OPAQUE:
        return Record(directory, "opaque")
    if name.startswith(".wh..wh."):
        # The storage driver's own bookkeeping (aufs), not a file of the image.
        return None
    return Record(posixpath.join(directory, name[len(WHITEOUT) :]), "whiteout")


@dataclass
class Entries:
    """Records turned into entries, in tar order, once their digests are known,
    with the paths of the whiteouts, opaque directories and hard links."""

    entries: dict[str, Entry] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    skipped_names: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # link -> its file


def build_entries(records: Iterable[Record]) -> Entries:
    """Entries of the records after `HashPool.wait`; hard links point back.

    A hard link becomes a copy of the file it names among the records before
    it, as `gsc.image.read_filesystem` makes it; whiteouts are left out.
    """
    built = Entries()
    for record in records:
        kind = record.kind
        if kind == "skipped":
            built.skipped_names.append(record.path)
        elif kind == "link":
            built.entries[record.path] = _linked(record, built)
            built.links[record.path] = record.target
        elif kind == "whiteout":
            built.deleted.append(record.path)
        elif kind == "opaque":
            built.opaque.append(record.path)
        else:
            built.entries[record.path] = _entry(record)
            if record.kept is not None:
                built.contents[record.path] = record.kept
    return built


def _entry(record: Record) -> Entry:
    # Positional: this runs for every file of a layer read.
    return Entry(
        record.path,
        record.kind,
        record.mode,
        record.uid,
        record.gid,
        record.size,
        record.target,
        record.digest.hexdigest() if record.digest is not None else "",
        record.head,
    )


def _linked(record: Record, built: Entries) -> Entry:
    target = built.entries.get(record.target)
    if target is None or target.kind != "file":
        return Entry(record.path, "other", record.mode, record.uid, record.gid)
    if record.path in KEPT_FILES and target.path in built.contents:
        built.contents[record.path] = built.contents[target.path]
    return Entry(
        path=record.path,
        kind="file",
        mode=record.mode,
        uid=record.uid,
        gid=record.gid,
        size=target.size,
        sha256=target.sha256,
        head=target.head,
    )


def read_tree(
    stream: Iterable[bytes],
    wants_hash: WantsHash,
    on_bytes: Callable[[int], None] = _ignore,
    base: str = "/",
    pool: HashPool | None = None,
) -> FileSystem:
    """`gsc.image.read_filesystem`, with the files hashed by a pool of threads."""
    own = pool is None
    pool = pool if pool is not None else HashPool()
    try:
        records = read_records(
            ChunkStream(stream), wants_hash, pool, on_bytes, base=base
        )
        pool.wait()
    finally:
        if own:
            pool.close()
    built = build_entries(records)
    return FileSystem(built.entries, built.contents, built.skipped_names)
