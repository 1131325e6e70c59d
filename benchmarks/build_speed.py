"""How fast does GSC read and hash an image? Compare it with the floor and others.

Run by hand from the repository root, with the engine and gsc-test/debian:12:

    python benchmarks/build_speed.py [--size 2G] [--files 100000] [--repeat 3]
                                     [--keep]

It builds a large image offline (gsc-test/debian:12 plus generated files, made
with a fixed seed by python3 inside a RUN step), and a second one on top of it
that changes one small file. Then, each in a fresh process whose peak RSS it
records, it times:

- the floor: SHA-256 over the same number of bytes in memory, and reading
  every regular file in the image's layer directories in the engine's
  storage while hashing it: on one core, on a thread per core, and on a
  process per core fed as the walk goes (this needs root and Docker's
  overlay2 driver, as GSC's own reading of those directories does);
- the engine alone: reading its export and save streams, hashing nothing;
- the readers GSC has: the export stream with the hash pool, the saved
  layers (what it reads on engines whose storage it cannot read), and the
  layer directories with an empty cache (cold), then on the second image
  with the first one's layers cached (warm), and the first image again;
- the original tool's way: a RUN step in the image that walks the file system
  and hashes every file with python3;
- whole `gsc build -L` runs (hashing plus the engine assembling the image),
  cold and warm, each with its peak RSS, with the stand-in Gramine image of the tests
  (gsc-test/standin-gramine, made by scripts/make-test-images; it is not
  Gramine, so its runtime's size is the stand-in's, not Gramine's 21 MB),
  beside the engine's own time to commit a layer of what GSC adds, and
  the image size GSC adds.

Each measurement runs --repeat times (each cold one from an empty cache,
each `gsc build` round with the images of the round before removed) and the
median is shown, since these machines are shared and noisy. The images it
made are removed at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import functools
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gsc.engine import Engine, connect
from gsc.hashing import HashPool, read_tree
from gsc.image import read_filesystem
from gsc.layercache import LayerCache
from gsc.layerdirs import layer_directories
from gsc.layers import read_image
from gsc.naming import unsigned_name
from gsc.trust import APP_FILES, Choices

BASE_IMAGE = "gsc-test/debian:12"
# What `gsc build` hashes when the user chose nothing about files, and the
# name under which it keeps and finds those layers in its cache.
WANTS_HASH = Choices().wants_hash
HASH_RULES = Choices().hash_rules
SEED = 20_240_601
ROOT = Path(__file__).resolve().parents[1]
# Images this run made, oldest first, to be removed at the end.
MADE: list[str] = []

# Runs inside the image: a fixed set of files of mixed sizes under /bench,
# a quarter of the bytes in four large files, the rest spread log-uniformly
# from 64 bytes to 1 MiB, one file in twenty executable.
GENERATOR = """
import math, os, random, sys
size, count, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
big = [size // 16] * 4
weights = [math.exp(rng.uniform(math.log(64), math.log(1 << 20)))
           for _ in range(count - len(big))]
scale = (size - sum(big)) / sum(weights)
sizes = big + [max(0, int(w * scale)) for w in weights]
for n, length in enumerate(sizes):
    directory = f"/bench/d{n // 200:04d}"
    os.makedirs(directory, exist_ok=True)
    path = f"{directory}/f{n:06d}"
    with open(path, "wb") as out:
        left = length
        while left:
            piece = min(left, 16 << 20)
            out.write(rng.randbytes(piece))
            left -= piece
    os.chmod(path, 0o755 if n % 20 == 0 else 0o644)
"""

# The original tool's way: walk the image's root inside a RUN step and hash
# every regular file with python3.
WALKER = """
import hashlib, os
count = 0
for top, dirs, files in os.walk("/"):
    if top == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for name in files:
        path = os.path.join(top, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as source:
            while block := source.read(1 << 20):
                digest.update(block)
        count += 1
print("hashed", count, "files")
"""


@dataclass(frozen=True)
class Result:
    """One measurement."""

    name: str
    seconds: float
    peak_rss_mb: float = 0.0
    files_hashed: int = -1
    note: str = ""
    spread: tuple[float, float] | None = None  # fastest and slowest of the runs
    workers_rss_mb: float = 0.0  # the hash worker processes' peaks, added up


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _python_step(script: str, *arguments: str) -> str:
    encoded = base64.b64encode(script.encode()).decode()
    program = f"import base64; exec(base64.b64decode('{encoded}'))"
    return f'RUN python3 -c "{program}" {" ".join(arguments)}'


def docker_build(dockerfile: str, tag: str | None) -> tuple[str, float]:
    """Build from a Dockerfile with no context; the image id and the seconds."""
    with tempfile.TemporaryDirectory(prefix="gsc-bench-") as context:
        (Path(context) / "Dockerfile").write_text(dockerfile, encoding="utf-8")
        command = ["docker", "build", "-q", "--network", "none", "--no-cache"]
        command += ["--tag", tag] if tag else []
        start = time.perf_counter()
        done = subprocess.run(
            [*command, context], capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"docker build failed:\n{done.stderr}")
    image = done.stdout.strip().splitlines()[-1]
    MADE.append(image)
    return image, seconds


def build_images(size: int, files: int) -> tuple[str, str, float]:
    """The large image, the one with one small file changed, and build seconds."""
    big = "\n".join(
        [
            f"FROM {BASE_IMAGE}",
            _python_step(GENERATOR, str(size), str(files), str(SEED)),
        ]
    )
    big_id, seconds = docker_build(big + "\n", None)
    changed = f"FROM {big_id}\nRUN echo changed > /bench/d0000/f000010\n"
    changed_id, _ = docker_build(changed, None)
    return big_id, changed_id, seconds


def run_child(kind: str, image: str, cache: Path | None = None) -> Result:
    """Measure in a fresh process, so that its peak RSS is its own."""
    command = [sys.executable, __file__, "--child", kind, "--image", image]
    command += ["--cache", str(cache)] if cache else []
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode != 0:
        raise SystemExit(f"measurement {kind} failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(
        kind,
        report["seconds"],
        report["rss_kb"] / 1024,
        report["files"],
        workers_rss_mb=report["workers_kb"] / 1024,
    )


def child(kind: str, image: str, cache: str | None) -> None:
    engine = connect()
    start = time.perf_counter()
    files = CHILD_MEASURES[kind](engine, image, cache)
    seconds = time.perf_counter() - start
    rss_kb = peak_rss_kb()
    workers_kb = sum(WORKER_PEAKS_KB)
    report = {"seconds": seconds, "rss_kb": rss_kb, "files": files}
    print(json.dumps({**report, "workers_kb": workers_kb}))


def peak_rss_kb(process: str = "self") -> int:
    """A process's peak resident set size (VmHWM), in KB.

    Not getrusage's ru_maxrss: Linux keeps a process's peak across exec, so
    a child of this benchmark would report at least the benchmark's own size.
    """
    with open(f"/proc/{process}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmHWM in /proc/{process}/status")


# The peaks of the hash worker processes (gsc.hashworker) of the last
# measurement, read before its pool ended them.
WORKER_PEAKS_KB: list[int] = []


def hash_worker_peaks_kb() -> list[int]:
    """The peak RSS of each hash worker process this process runs."""
    peaks = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
            parent = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1]
            if int(parent.split()[1]) == os.getpid() and b"hashworker" in command:
                peaks.append(peak_rss_kb(entry))
        except OSError:
            continue
    return peaks


def _storage_files(engine: Engine, image: str) -> list[str]:
    """The regular files in the image's layer directories in the engine's storage."""
    return [path for batch in _storage_batches(engine, image) for path in batch]


def _storage_batches(engine: Engine, image: str) -> Iterator[list[str]]:
    """The same files, 64 at a time, as the walk finds them."""
    directories = layer_directories(engine.inspect_image(image), engine.info())
    if directories is None:
        raise SystemExit("the engine's layer directories cannot be read here")
    batch = []
    for directory in directories:
        for top, _, names in os.walk(directory):
            for name in names:
                path = os.path.join(top, name)
                if stat.S_ISREG(os.lstat(path).st_mode):
                    batch.append(path)
                if len(batch) == 64:
                    yield batch
                    batch = []
    yield batch


def _hash_files(paths: list[str]) -> int:
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as source:
            while block := source.read(1 << 20):
                digest.update(block)
    return len(paths)


def _storage_one_core(engine: Engine, image: str, cache: str | None) -> int:
    return _hash_files(_storage_files(engine, image))


def _storage_threads(engine: Engine, image: str, cache: str | None) -> int:
    files = _storage_files(engine, image)
    batches = [files[n : n + 64] for n in range(0, len(files), 64)]
    with ThreadPoolExecutor(os.cpu_count()) as workers:
        return sum(workers.map(_hash_files, batches))


def _storage_all_cores(engine: Engine, image: str, cache: str | None) -> int:
    # A process per core, each with an interpreter lock of its own, reads
    # the batches while the walk goes on: as gsc build reads a large image.
    with ProcessPoolExecutor(os.cpu_count()) as workers:
        return sum(workers.map(_hash_files, _storage_batches(engine, image)))


def _export_stream(engine: Engine, image: str, cache: str | None) -> int:
    with engine.export_filesystem(image) as stream:
        for _ in stream:
            pass
    return -1


def _save_stream(engine: Engine, image: str, cache: str | None) -> int:
    for _ in engine.save_image(image):
        pass
    return -1


def _export_pool(engine: Engine, image: str, cache: str | None) -> int:
    with HashPool() as pool, engine.export_filesystem(image) as stream:
        read_tree(stream, WANTS_HASH, pool=pool)
    return pool.files_hashed


def _saved_layers(engine: Engine, image: str, cache: str | None) -> int:
    with HashPool() as pool:
        read_image(engine, image, WANTS_HASH, None, pool=pool)
    return pool.files_hashed


def _layers(engine: Engine, image: str, cache: str | None) -> int:
    layer_cache = LayerCache(Path(cache)) if cache else None
    inspected = engine.inspect_image(image)
    directories = layer_directories(inspected, engine.info())
    with HashPool() as pool:
        read_image(
            engine,
            image,
            WANTS_HASH,
            layer_cache,
            directories=directories,
            pool=pool,
            hash_rules=HASH_RULES,
        )
        WORKER_PEAKS_KB[:] = hash_worker_peaks_kb()
    return pool.files_hashed


FLOOR_ONE = "floor: storage files + SHA-256, 1 core"
FLOOR_THREADS = "floor: storage files + SHA-256, threads"
FLOOR = "floor: storage files + SHA-256, all cores"
COLD = "layer directories, cold (empty cache)"
WARM = "layer directories, warm (top layer changed)"
SAME = "layer directories, warm (same image)"
ORIGINAL = "original: RUN step walking and hashing"
CHILD_MEASURES: dict[str, Callable[[Engine, str, str | None], int]] = {
    FLOOR_ONE: _storage_one_core,
    FLOOR_THREADS: _storage_threads,
    FLOOR: _storage_all_cores,
    "engine alone: export stream, read only": _export_stream,
    "engine alone: save stream, read only": _save_stream,
    "export stream, parallel reader": _export_pool,
    "saved layers, cold (other engines)": _saved_layers,
    COLD: _layers,
    WARM: _layers,
    SAME: _layers,
}


def memory_floor(length: int, threads: int) -> float:
    """Seconds SHA-256 takes over `length` bytes in memory, on `threads` threads."""
    buffer = bytes(4 << 20)
    share = length // threads

    def hash_share() -> None:
        digest = hashlib.sha256()
        for _ in range(share // len(buffer)):
            digest.update(buffer)
        digest.update(buffer[: share % len(buffer)])

    workers = [threading.Thread(target=hash_share) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def original_way(image: str) -> Result:
    _, seconds = docker_build(f"FROM {image}\n{_python_step(WALKER)}\n", None)
    return Result(ORIGINAL, seconds)


def image_bytes(engine: Engine, image: str) -> tuple[int, int]:
    """Bytes and count of the regular files in an image."""
    with engine.export_filesystem(image) as stream:
        fs = read_filesystem(stream, lambda path: False)
    files = list(fs.files())
    return sum(entry.size for entry in files), len(files)


def median(results: list[Result]) -> Result:
    """The result of the median time (the lower of the two middle ones)."""
    ordered = sorted(results, key=lambda result: result.seconds)
    spread = (ordered[0].seconds, ordered[-1].seconds)
    return dataclasses.replace(ordered[(len(ordered) - 1) // 2], spread=spread)


def repeated(measurement: Callable[[], Result], repeat: int) -> Result:
    return median([measurement() for _ in range(repeat)])


def measure(big: str, changed: str, total: int, repeat: int) -> list[Result]:
    cores = os.cpu_count() or 1
    results = [
        Result("floor: SHA-256 in memory, 1 core", memory_floor(total, 1)),
        Result("floor: SHA-256 in memory, all cores", memory_floor(total, cores)),
    ]
    for kind in CHILD_MEASURES:
        if kind not in (COLD, WARM, SAME):
            results.append(repeated(functools.partial(run_child, kind, big), repeat))
    layer_reads: dict[str, list[Result]] = {COLD: [], WARM: [], SAME: []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="gsc-bench-cache-") as scratch:
            cache = Path(scratch)
            layer_reads[COLD].append(run_child(COLD, big, cache))
            layer_reads[WARM].append(run_child(WARM, changed, cache))
            layer_reads[SAME].append(run_child(SAME, big, cache))
            entries = sorted(cache.iterdir())
            cache_size = sum(p.stat().st_size for p in entries)
    results += [median(reads) for reads in layer_reads.values()]
    results.append(repeated(functools.partial(original_way, big), repeat))
    note = f"{len(entries)} cache files, {cache_size / 1e6:.1f} MB"
    results.append(Result("cache after the runs", 0.0, note=note))
    return results


STANDIN = "gsc-test/standin-gramine"
PREFIX = "/gramine/meson_build_output"


# `python -c` with this runs gsc in that process, as `python -m gsc` does,
# and writes the process's peak RSS to the file named first when it exits.
_GSC_WITH_PEAK = """
import atexit, runpy, sys
report = sys.argv.pop(1)
def write_peak():
    with open("/proc/self/status", encoding="ascii") as status:
        peak = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    with open(report, "w", encoding="ascii") as out:
        out.write(peak[0])
atexit.register(write_peak)
sys.argv[0] = "gsc"
runpy.run_module("gsc", run_name="__main__", alter_sys=True)
"""


def gsc_build(image: str, cache: Path, config: Path) -> Result:
    """Time one whole `gsc build -L` of `image` (a name, not an ID), and take
    the peak RSS of its process."""
    report = cache.parent / "peak-rss-kb"
    command = [sys.executable, "-c", _GSC_WITH_PEAK, str(report)]
    command += ["-q", "build", "-c", str(config), "-L", image]
    start = time.perf_counter()
    subprocess.run(
        command,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        stdout=subprocess.DEVNULL,
        check=True,
    )
    seconds = time.perf_counter() - start
    if unsigned_name(image) not in MADE:
        MADE.append(unsigned_name(image))
    peak_kb = int(report.read_text(encoding="ascii"))
    return Result("", seconds, peak_rss_mb=peak_kb / 1024)


def named(image_id: str, name: str) -> str:
    subprocess.run(["docker", "tag", image_id, name], check=True)
    MADE.append(name)
    return name


def whole_builds(big: str, changed: str, repeat: int) -> list[Result]:
    """`gsc build` cold and warm, the engine's commit time, and sizes."""
    big = named(big, "gsc-bench/big:latest")
    changed = named(changed, "gsc-bench/changed:latest")
    colds, warms = [], []
    with tempfile.TemporaryDirectory(prefix="gsc-bench-build-") as scratch:
        config = Path(scratch) / "config.yaml"
        config.write_text(f"Gramine:\n  Image: {STANDIN}\n", encoding="utf-8")
        for round_ in range(repeat):
            if round_:
                # Each round starts from nothing: no hash cache, and no image
                # of an earlier round for the engine's build cache to reuse.
                remove_images([unsigned_name(big), unsigned_name(changed)])
            cache = Path(scratch) / f"cache-{round_}"
            colds.append(gsc_build(big, cache, config))
            warms.append(gsc_build(changed, cache, config))
    cold = dataclasses.replace(median(colds), name=BUILD_COLD)
    warm = dataclasses.replace(median(warms), name=BUILD_WARM)
    # The engine's own time to commit what GSC adds to the image: the same
    # tree, copied from the image GSC made onto the application image.
    added_tree = (
        f"FROM {unsigned_name(big)} AS g\nFROM {big}\nCOPY --from=g /gramine /gramine\n"
    )
    _, commit = docker_build(added_tree, None)
    engine = connect()
    added = _image_size(engine, unsigned_name(big)) - _image_size(engine, big)
    runtime = _tree_size(engine, STANDIN, PREFIX)
    generated = _tree_size(engine, unsigned_name(big), APP_FILES)
    sizes = (
        f"{added / 1e6:.1f} MB added; the stand-in runtime is {runtime / 1e6:.1f} MB"
        f" and the generated files {generated / 1e6:.1f} MB"
    )
    return [
        cold,
        warm,
        Result(COMMIT, commit),
        Result("image size added by gsc build", 0.0, note=sizes),
    ]


def _image_size(engine: Engine, image: str) -> int:
    return int(engine.inspect_image(image).get("Size") or 0)


def _tree_size(engine: Engine, image: str, path: str) -> int:
    with engine.archive(image, path) as stream:
        fs = read_filesystem(stream, lambda name: False, base="/gramine")
    return sum(entry.size for entry in fs.files())


BUILD_COLD = "gsc build -L, cold (empty hash cache)"
COMMIT = "engine: commit a layer of what gsc build adds"
BUILD_WARM = "gsc build -L, warm (top layer changed)"


def print_table(results: list[Result], total: int, files: int) -> None:
    by_name = {result.name: result for result in results}
    # The fastest way: more cores do not always win, when the engine needs
    # them too or the interpreter lock is what they wait for.
    floor_name = min(
        (FLOOR_ONE, FLOOR_THREADS, FLOOR), key=lambda name: by_name[name].seconds
    )
    floor = by_name[floor_name].seconds
    header = (
        f"{'measurement':<44} {'s':>7} {'MB/s':>7} {'x floor':>8}"
        f" {'RSS MB':>7} {'hashed':>7}  {'runs from-to s':<14}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        if not result.seconds:
            print(f"{result.name:<44} {result.note}")
            continue
        rate = total / result.seconds / 1e6
        rss = f"{result.peak_rss_mb:.0f}" if result.peak_rss_mb else "-"
        hashed = str(result.files_hashed) if result.files_hashed >= 0 else "-"
        spread = "{:.2f}-{:.2f}".format(*result.spread) if result.spread else "-"
        print(
            f"{result.name:<44} {result.seconds:>7.2f} {rate:>7.0f}"
            f" {result.seconds / floor:>8.2f} {rss:>7} {hashed:>7}  {spread}"
        )
    original = by_name[ORIGINAL].seconds
    print(f"\nimage: {total / 1e6:.0f} MB in {files} regular files")
    workers = by_name[COLD].workers_rss_mb
    print(f"hash worker processes of '{COLD}': peak RSS {workers:.0f} MB added up")
    print(f"x floor: against '{floor_name}' ({floor:.2f} s)")
    for name in (COLD, WARM, SAME):
        print(f"original way / {name}: {original / by_name[name].seconds:.1f}x")
    if BUILD_COLD in by_name:
        cold = by_name[BUILD_COLD].seconds
        ratio = by_name[BUILD_WARM].seconds / cold
        print(f"gsc build warm / cold: {ratio:.2f} (target below 0.10)")
        all_cores = min(by_name[FLOOR].seconds, by_name[FLOOR_THREADS].seconds)
        target = 1.5 * all_cores + by_name[COMMIT].seconds
        print(
            f"gsc build cold: {cold:.2f} s; target 1.5 x all-cores floor + commit"
            f" = {target:.2f} s ({cold / target:.2f} of it)"
        )


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {model}, Python {sys.version.split()[0]}"


def remove_images(images: list[str]) -> None:
    """Remove images, each after those built on it."""
    for image in reversed(images):
        subprocess.run(["docker", "image", "rm", image], capture_output=True)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    if arguments.child:
        child(arguments.child, arguments.image, arguments.cache)
        return 0
    repeat = arguments.repeat
    size, count = parse_size(arguments.size), arguments.files
    print(f"machine: {machine()}", flush=True)
    print(f"building the test image ({size / 1e9:.1f} GB, {count} files)", flush=True)
    big, changed, seconds = build_images(size, count)
    print(f"built in {seconds:.0f} s", flush=True)
    try:
        total, files = image_bytes(connect(), big)
        results = measure(big, changed, total, repeat)
        results += whole_builds(big, changed, repeat)
        print_table(results, total, files)
    finally:
        if arguments.keep:
            print(f"kept images {' '.join(MADE)}")
        else:
            remove_images(MADE)
    return 0


def positive_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return count


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="bytes of generated files")
    parser.add_argument("--files", type=int, default=100_000, help="generated files")
    parser.add_argument("--keep", action="store_true", help="keep the images")
    parser.add_argument(
        "--repeat",
        type=positive_count,
        default=3,
        help="runs of each measurement; the median is shown (default 3)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
