"""Tiles on all cores: a process pool that maps a function over tiles.

Processes, not threads: the models are NumPy and PyTorch code whose small
batches gain nothing from shared-memory threads, and a process per core
bounds memory by the tiles in flight (each worker holds one tile) rather
than by the image.  On Linux workers are forked, as PyTorch's DataLoader
forks its workers: they start in milliseconds with the weights already
loaded, and a script that calls the codec needs no ``__main__`` guard
(spawned workers re-import the main module); elsewhere they are spawned.
Each runs one PyTorch and one BLAS thread, so ``jobs`` workers use
``jobs`` cores.
One tile, or one job, runs in this process: no start-up cost to pay.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from codec.errors import NcError


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def resolve_jobs(jobs: int | None) -> int:
    """``jobs``, or every core when None or 0."""
    if jobs is None or jobs == 0:
        return available_cores()
    if jobs < 0:
        raise NcError(f"jobs must be at least 1 (got {jobs})")
    return jobs


def _start_worker(weights_dir: str) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    from codec import weights

    weights.WEIGHTS_DIR = type(weights.WEIGHTS_DIR)(weights_dir)
    torch.set_num_threads(1)
    threadpool_limits(1)


def map_tiles(fn, tasks: list[tuple], jobs: int | None) -> list:
    """[fn(*task) for task in tasks], on up to ``jobs`` worker processes."""
    jobs = min(resolve_jobs(jobs), len(tasks))
    if jobs <= 1:
        return [fn(*task) for task in tasks]
    from codec import weights

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    try:
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                                 initargs=(str(weights.WEIGHTS_DIR),)) as pool:
            return list(pool.map(fn, *zip(*tasks)))
    except BrokenProcessPool:
        raise NcError("a worker process died (out of memory?); try fewer --jobs") from None
