"""Worker processes that decode the fuzz harness's files, and the judgement
of each decode (``bench/fuzz.py`` drives them).

Decoding runs in child processes so that the models are loaded once per
worker, a hang is killed at its deadline (and the worker replaced), and a
crash of native code (a segfault, an abort, the kernel's OOM killer) is seen
as what it is instead of taking the harness down.  Each worker caps its own
address space, so a file that claims a huge image fails there, not on the
machine.

Only the public API is used: ``info``, ``decode_file``, ``encode``,
``decode`` and ``NcError`` of the API module (``codec`` unless a test
substitutes a stand-in).
"""
from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

# outcomes of one mutated file; every one but the first and "accepted-correct" is a failure
REJECTED = "rejected"                  # an NcError, and no file left behind
TRACEBACK = "traceback"                # any other exception
CRASH = "crash"                        # the worker process died (signal, abort, OOM kill)
HANG = "hang"                          # still decoding at the deadline: killed
ACCEPTED_CORRECT = "accepted-correct"  # decoded to the image of an undamaged file
ACCEPTED_CORRUPTED = "accepted-corrupted"  # decoded without error to any other image
OUTCOMES = (REJECTED, TRACEBACK, CRASH, HANG, ACCEPTED_CORRECT, ACCEPTED_CORRUPTED)
OK_OUTCOMES = (REJECTED, ACCEPTED_CORRECT)
# "partial" is counted beside the outcome: a decode_file that failed but left
# a file (or a temporary file) in the output folder, or succeeded but left more
# than its output.


def _as_pil(image):
    """``decode_file`` returns a Picture, ``decode`` a Pillow image: compare
    both as Pillow images (the fuzz seeds are all modes Pillow holds)."""
    return image.to_pil() if hasattr(image, "to_pil") else image


def image_digest(image) -> str:
    """What makes two decoded images equal: mode, size and pixels."""
    image = _as_pil(image)
    h = hashlib.sha256(f"{image.mode} {image.size[0]}x{image.size[1]}\n".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def image_summary(image) -> str:
    image = _as_pil(image)
    return f"{image.mode} {image.size[0]}x{image.size[1]}"


@dataclass
class Verdict:
    outcome: str
    partial: bool = False
    message: str = ""         # the error's first line, or what the decoded image was
    where: str = ""           # a traceback's innermost frame
    seconds: float = 0.0
    leftovers: list = field(default_factory=list)


def _innermost_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f"{Path(f.filename).name}:{f.lineno} in {f.name}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def judge(api, data: bytes, accept: tuple, workdir: Path) -> Verdict:
    """Run ``api.info`` and ``api.decode_file`` on ``data`` in an empty
    ``workdir`` and classify what happened (``accept``: digests of the images
    a decode may correctly give)."""
    t0 = time.perf_counter()
    try:
        api.info(data)
    except api.NcError:
        pass
    except BaseException as e:  # noqa: BLE001 - the point is to catch anything
        if isinstance(e, KeyboardInterrupt):
            raise
        return Verdict(TRACEBACK, message=f"info: {type(e).__name__}: {_one_line(e)}",
                       where=_innermost_frame(e), seconds=time.perf_counter() - t0)
    workdir.mkdir(parents=True, exist_ok=True)
    src, dst = workdir / "in.nc", workdir / "out.png"
    src.write_bytes(data)
    try:
        image = api.decode_file(src, dst)
    except api.NcError as e:
        v = Verdict(REJECTED, message=_one_line(e))
        expected = {src.name}
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        v = Verdict(TRACEBACK, message=f"{type(e).__name__}: {_one_line(e)}", where=_innermost_frame(e))
        expected = {src.name}
    else:
        correct = image_digest(image) in accept
        v = Verdict(ACCEPTED_CORRECT if correct else ACCEPTED_CORRUPTED, message=image_summary(image))
        expected = {src.name, dst.name}
        if not dst.is_file():
            v.partial, v.leftovers = True, ["(no output file)"]
    present = set(os.listdir(workdir))
    if present - expected:
        v.partial, v.leftovers = True, sorted(present - expected)
    v.seconds = time.perf_counter() - t0
    return v


# -- inside a worker process ------------------------------------------------------
def _limit_memory(gib: float | None) -> None:
    if not gib:
        return
    import resource

    cap = int(gib * (1 << 30))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _worker_main(conn, api_name: str, memory_gib: float | None, workroot: str) -> None:
    _limit_memory(memory_gib)
    # one thread per worker (--jobs sets the parallelism): a decode of a tiny
    # file gains nothing from more, and several threads on busy cores wait on
    # one another for seconds
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    api = importlib.import_module(api_name)
    root = Path(workroot)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        op = message[0]
        if op == "stop":
            return
        if op == "case":
            _, case_id, data, accept = message
            workdir = root / f"case-{case_id}".replace(":", "-")
            verdict = judge(api, data, accept, workdir)
            shutil.rmtree(workdir, ignore_errors=True)
            conn.send(verdict)
        elif op == "decode":                    # warm-up, and the seeds' reference images
            _, data = message
            conn.send(image_digest(api.decode(data)))
        elif op == "encode":                    # a seed: (image bytes as PNG, encode kwargs)
            _, png, kwargs = message
            from io import BytesIO

            from PIL import Image

            image = Image.open(BytesIO(png))
            image.load()
            data = api.encode(image, **kwargs)
            conn.send((data, image_digest(api.decode(data))))


# -- the pool, in the harness's process ---------------------------------------------
class Worker:
    """One child process and the case it is working on."""

    def __init__(self, ctx, api_name: str, memory_gib: float | None, workroot: Path):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, api_name, memory_gib, str(workroot)),
                                   daemon=True)
        self.process.start()
        child.close()
        self.case = None          # (case_id, payload) while busy
        self.deadline = None

    def call(self, message, timeout: float):
        """Send and wait (for set-up work: encoding seeds, warming up)."""
        try:
            self.conn.send(message)
            if self.conn.poll(timeout):
                return self.conn.recv()
        except (EOFError, OSError):
            self.process.join(5)
            raise RuntimeError(f"worker died (exit code {self.process.exitcode}) on {message[0]!r}; "
                               f"see its traceback above") from None
        raise RuntimeError(f"worker did not answer {message[0]!r} within {timeout:g} s")

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(("stop",))
        except (OSError, ValueError):
            pass
        self.process.join(5)
        self.kill()


class DecodePool:
    """``jobs`` workers decoding cases with a deadline each.

    ``run(cases)`` takes ``(case_id, data, accept, payload)`` tuples and yields
    ``(case_id, payload, verdict)`` as decodes finish; a worker past its
    deadline is killed (the case is a hang), one that dies is a crash, and
    either is replaced by a fresh worker, warmed up on ``warmup`` files."""

    def __init__(self, jobs: int = 1, timeout: float = 10.0, memory_gib: float | None = 4.0,
                 api_name: str = "codec", workroot: Path | None = None, warmup: list[bytes] = (),
                 startup_timeout: float = 300.0):
        import tempfile

        self.ctx = multiprocessing.get_context("spawn")   # no fork of a process with torch's threads
        self.timeout, self.memory_gib, self.api_name = timeout, memory_gib, api_name
        self._tmp = None
        if workroot is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="nc-fuzz-")
            workroot = Path(self._tmp.name)
        self.workroot = workroot
        self.warmup, self.startup_timeout = list(warmup), startup_timeout
        self.workers = [self._start() for _ in range(max(1, jobs))]
        self.restarts = 0

    def _start(self) -> Worker:
        w = Worker(self.ctx, self.api_name, self.memory_gib, self.workroot)
        for data in self.warmup:               # load the models before any deadline runs
            w.call(("decode", data), self.startup_timeout)
        return w

    def set_warmup(self, warmup: list[bytes]) -> None:
        self.warmup = list(warmup)
        for w in self.workers:
            for data in self.warmup:
                w.call(("decode", data), self.startup_timeout)

    def call(self, message):
        """One set-up request to the first worker."""
        return self.workers[0].call(message, self.startup_timeout)

    def _replace(self, w: Worker) -> None:
        w.kill()
        self.workers[self.workers.index(w)] = self._start()
        self.restarts += 1

    def run(self, cases):
        cases = iter(cases)
        exhausted = False
        while True:
            for w in self.workers:
                if w.case is None and not exhausted:
                    try:
                        case_id, data, accept, payload = next(cases)
                    except StopIteration:
                        exhausted = True
                        break
                    w.case = (case_id, payload)
                    w.deadline = time.monotonic() + self.timeout
                    w.conn.send(("case", case_id, data, accept))
            busy = [w for w in self.workers if w.case is not None]
            if not busy:
                return
            now = time.monotonic()
            wait_for = max(0.0, min(w.deadline for w in busy) - now)
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], wait_for)
            for w in list(busy):
                case_id, payload = w.case
                if w.conn in ready or w.conn.poll():
                    try:
                        verdict = w.conn.recv()
                    except (EOFError, OSError):
                        verdict = Verdict(CRASH, message=f"worker exit code {w.process.exitcode}")
                        w.case = None
                        self._replace(w)
                        yield case_id, payload, verdict
                        continue
                    w.case = None
                    yield case_id, payload, verdict
                elif w.process.sentinel in ready or not w.process.is_alive():
                    w.process.join(1)
                    verdict = Verdict(CRASH, message=f"worker exit code {w.process.exitcode}")
                    w.case = None
                    self._replace(w)
                    yield case_id, payload, verdict
                elif time.monotonic() >= w.deadline:
                    verdict = Verdict(HANG, message=f"no answer within {self.timeout:g} s; killed",
                                      seconds=self.timeout)
                    w.case = None
                    self._replace(w)
                    yield case_id, payload, verdict

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
