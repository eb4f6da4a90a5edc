"""Many files at once: which output each input goes to, and a process pool
that codes them side by side.

Why a pool of processes: the codecs spend their time in Python and in
single-threaded numpy/constriction calls, so one file uses about one core;
files in parallel use them all.  The cores are shared sanely: with W files
running at once out of ``jobs`` cores, each gets ``jobs // W`` of them for
its own tiles and BLAS/torch threads, so a single large image gets every
core and a folder of photos gets one core a file.

One failing file is an ``Outcome`` with its one-line error, never an
exception that stops the others.  The command line (``codec/cli.py``) and
``python -m bench batch`` both run files through ``run`` below.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from codec import api, files
from codec.errors import NcError
from codec.options import EncodeOptions

NC_SUFFIX = ".nc"
TICK_S = 0.25         # how often a progress bar is redrawn while a file runs
_THREAD_LIMIT = None  # a pool worker's threadpoolctl limit, held for its lifetime


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not on Linux
        return max(1, os.cpu_count() or 1)


class PlanError(NcError):
    """Inputs and output that do not make a plan (a usage mistake)."""


# -- which output each input goes to --------------------------------------------
@dataclass(frozen=True)
class Task:
    src: str      # a path, or "-" for stdin
    dst: str      # a path, or "-" for stdout


def is_directory_output(output: str) -> bool:
    """``-o`` names a folder when it exists as one or ends in a separator."""
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def plan(inputs: list[str], output: str | None, suffix: str, *, recursive: bool = False,
         accept=None) -> list[Task]:
    """The (input, output) pairs of a run.

    ``output`` None: each input's own path with ``suffix``; a folder: the
    input's name (with ``-r``, its path below the folder walked) with
    ``suffix`` inside it; ``-``: stdout; anything else: that one file.
    ``accept(path)`` says which files a walked folder contributes.
    """
    sources: list[tuple[str, Path | None]] = []     # (source, its name below the output folder)
    for item in inputs:
        if files.is_stdio(item):
            sources.append((item, None))
            continue
        path = Path(item)
        if path.is_dir():
            if not recursive:
                raise PlanError(f"{item} is a folder (use -r to code the files in it)")
            found = [p for p in sorted(path.rglob("*")) if p.is_file()
                     and not any(part.startswith(".") for part in p.relative_to(path).parts)
                     and (accept is None or accept(p))]
            sources += [(str(p), p.relative_to(path)) for p in found]
        else:
            sources.append((item, Path(path.name)))
    if not sources:
        raise PlanError("no input files" + (" found in the folders given" if inputs else ""))
    if sum(files.is_stdio(s) for s, _ in sources) and len(sources) > 1:
        raise PlanError("stdin (-) can only be coded on its own")

    if output is None:
        tasks = [Task(s, files.STDIO if files.is_stdio(s) else str(Path(s).with_suffix(suffix)))
                 for s, _ in sources]
    elif files.is_stdio(output) or not is_directory_output(output):
        if len(sources) > 1:
            raise PlanError(f"-o {output} names one file but there are {len(sources)} inputs; "
                            f"give a folder (ending in /) for several")
        tasks = [Task(sources[0][0], output)]
    else:
        if any(files.is_stdio(s) for s, _ in sources):
            raise PlanError("stdin (-) has no name to keep in a folder: give -o FILE or -o -")
        folder = Path(output)
        tasks = [Task(s, str(folder / rel.with_suffix(suffix))) for s, rel in sources]

    seen: dict[str, str] = {}
    for t in tasks:
        if not files.is_stdio(t.dst) and t.dst in seen:
            raise PlanError(f"{seen[t.dst]} and {t.src} would both be written to {t.dst}")
        seen[t.dst] = t.src
    return tasks


def make_folders(tasks: list[Task]) -> None:
    """Create the output folders a planned run writes into."""
    for parent in sorted({Path(t.dst).parent for t in tasks if not files.is_stdio(t.dst)}):
        parent.mkdir(parents=True, exist_ok=True)


def is_image_file(path: Path) -> bool:
    """A file Pillow can open by its suffix (what ``nc encode -r`` picks up)."""
    fmt = _open_extensions().get(path.suffix.lower())
    return fmt is not None and fmt != "NC"


def is_nc_file(path: Path) -> bool:
    return path.suffix.lower() == NC_SUFFIX


def _open_extensions() -> dict:
    from PIL import Image

    return {ext: fmt for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


# -- coding one file --------------------------------------------------------------
@dataclass
class Outcome:
    """What became of one file: ``error`` is None on success."""

    task: Task
    error: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    nc_bytes: int = 0         # the .nc side's size, for bpp
    pixels: int = 0
    seconds: float = 0.0
    facts: dict = field(default_factory=dict)   # width, height, mode; quality, ideal_bits

    @property
    def ok(self) -> bool:
        return self.error is None


def _error_line(task: Task, e: BaseException) -> str:
    """One line that names the file (messages that already name it are kept)."""
    if isinstance(e, NcError):
        text = str(e)
    elif isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and "alloc" in str(e)):
        text = "out of memory"
    elif isinstance(e, OSError):
        text = f"{e.strerror or e}"
    else:  # a bug, but still one line: the file and what went wrong
        text = f"{type(e).__name__}: {e}"
    text = (text.strip() or type(e).__name__).splitlines()[0]
    name = files.display_name(task.src)
    return text if name in text else f"{name}: {text}"


def _size(path: str) -> int:
    try:
        return 0 if files.is_stdio(path) else os.path.getsize(path)
    except OSError:
        return 0


def encode_one(task: Task, options: EncodeOptions, force: bool, jobs: int) -> Outcome:
    """Encode one image file; every failure becomes the outcome's error."""
    t = time.perf_counter()
    try:
        r = files.encode_file(task.src, task.dst, force=force, jobs=jobs,
                              **options.encode_kwargs())
        facts = {"ideal_bits": r.ideal_bits}
        if options.lossy:
            facts["quality"] = api.info(r.data).get("quality")
        return Outcome(task, None, _size(task.src), len(r.data), len(r.data), r.pixels,
                       time.perf_counter() - t, facts)
    except Exception as e:
        return Outcome(task, _error_line(task, e), seconds=time.perf_counter() - t)


def decode_one(task: Task, format: str | None, force: bool, jobs: int) -> Outcome:
    """Decode one .nc file; every failure becomes the outcome's error."""
    t = time.perf_counter()
    try:
        picture = files.decode_file(task.src, task.dst, force=force, format=format, jobs=jobs)
        facts = {"width": picture.width, "height": picture.height, "mode": picture.mode}
        nc_bytes = _size(task.src)
        return Outcome(task, None, nc_bytes, _size(task.dst), nc_bytes,
                       picture.width * picture.height, time.perf_counter() - t, facts)
    except Exception as e:
        return Outcome(task, _error_line(task, e), seconds=time.perf_counter() - t)


def encoder(options: EncodeOptions, force: bool = False):
    """``work(task, jobs)`` for ``run``: encode with these options."""
    return partial(_call_encode, options, force)


def decoder(format: str | None = None, force: bool = False):
    """``work(task, jobs)`` for ``run``: decode to ``format`` (or by suffix)."""
    return partial(_call_decode, format, force)


def _call_encode(options, force, task, jobs):
    return encode_one(task, options, force, jobs)


def _call_decode(format, force, task, jobs):
    return decode_one(task, format, force, jobs)


# -- running many -------------------------------------------------------------------
@dataclass
class Summary:
    outcomes: list[Outcome]
    seconds: float

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def line(self, verb: str) -> str:
        done = [o for o in self.outcomes if o.ok]
        pixels = sum(o.pixels for o in done)
        bpp = 8 * sum(o.nc_bytes for o in done) / pixels if pixels else 0.0
        failed = f" ({len(self.failed)} failed)" if self.failed else ""
        n = len(self.outcomes)
        return (f"{verb} {n} file{'s' * (n != 1)}{failed}: "
                f"{sum(o.bytes_in for o in done):,} -> {sum(o.bytes_out for o in done):,} bytes, "
                f"{bpp:.4f} bpp, {self.seconds:.2f} s")


def _limit_threads(threads: int) -> None:
    """Pool worker start-up: at most ``threads`` BLAS/OpenMP/torch threads."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from threadpoolctl import threadpool_limits

    global _THREAD_LIMIT
    _THREAD_LIMIT = threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _pool_context():
    """forkserver where there is one: workers start from a clean process (no
    torch thread pools copied mid-flight) with the codec already imported."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["codec.api", "codec.files", "codec.batch"])
        return ctx
    return multiprocessing.get_context("spawn")


def shares(jobs: int, files: int) -> tuple[int, int]:
    """How ``jobs`` cores are shared by ``files`` files: (files at once, cores
    each).  Left-over cores (7 jobs, 2 files) stay idle rather than oversubscribe."""
    jobs = max(1, jobs)
    workers = max(1, min(jobs, files))
    return workers, max(1, jobs // workers)


def run(tasks: list[Task], work, jobs: int | None = None, *, progress=None,
        on_done=None) -> Summary:
    """Run ``work(task, jobs)`` on every task, up to ``jobs`` at once (default:
    every core), and return the outcomes in the tasks' order.

    ``progress``: a tqdm-like bar to advance (or None); ``on_done(outcome)`` is
    called in the calling process as each file finishes.
    """
    workers, per_file = shares(jobs or available_cores(), len(tasks))
    start = time.perf_counter()
    results: dict[int, Outcome] = {}

    def finished(i: int, outcome: Outcome) -> None:
        results[i] = outcome
        if progress is not None:
            progress.update(1)
        if on_done is not None:
            on_done(outcome)

    if workers <= 1:
        for i, task in enumerate(tasks):
            finished(i, _call_with_ticks(work, task, per_file, progress))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(),
                                 initializer=_limit_threads, initargs=(per_file,)) as pool:
            pending = {pool.submit(work, task, per_file): i for i, task in enumerate(tasks)}
            try:
                while pending:
                    done, _ = wait(pending, timeout=TICK_S, return_when=FIRST_COMPLETED)
                    for future in done:
                        i = pending.pop(future)
                        try:
                            outcome = future.result()
                        except BrokenProcessPool:
                            outcome = Outcome(tasks[i], f"{files.display_name(tasks[i].src)}: "
                                                        f"the worker process died (out of memory?)")
                        finished(i, outcome)
                    if progress is not None:
                        _tick(progress)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return Summary([results[i] for i in range(len(tasks))], time.perf_counter() - start)


def _tick(progress) -> None:
    """Redraw the bar so its clock moves, once its start-up delay (tqdm's
    ``delay``: a short single file shows no bar) has passed."""
    if time.time() >= getattr(progress, "start_t", 0) + getattr(progress, "delay", 0):
        progress.refresh()


def _call_with_ticks(work, task: Task, jobs: int, progress) -> Outcome:
    """``work(task, jobs)`` in this process; with a bar, in a thread so that
    the bar's clock keeps moving while one long file runs."""
    if progress is None:
        return work(task, jobs)
    box: list[Outcome] = []
    thread = threading.Thread(target=lambda: box.append(work(task, jobs)), daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(TICK_S)
        _tick(progress)
    return box[0] if box else Outcome(task, f"{files.display_name(task.src)}: failed")
