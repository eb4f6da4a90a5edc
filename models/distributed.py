"""Training on several processes at once: what the trainers share to run
under PyTorch's launcher (``torchrun --nproc_per_node N -m models.X.train``).

Why one module: every trainer needs the same few steps in the same order
(join the process group the launcher describes in environment variables,
put each process on its own device, wrap the network in
DistributedDataParallel so that gradients are averaged, let one process
alone log and write, give each process its own random crops), and a
mistake in any of them shows up only as slowly diverging weights.

Without the launcher's variables nothing here starts a process group:
``World`` then describes a single process and every call below is what a
plain ``python -m models.X.train`` did before.  The backend follows the
device: NCCL for CUDA, gloo otherwise.  Small host-side decisions that
must agree on every process (when a time-bounded run stops) travel on a
gloo group beside NCCL, so that they never wait for the GPU.
"""
from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

# Rank 0 evaluates alone while the others wait at their next collective; on
# CPUs a held-out pass can take minutes, past gloo's default patience.
TIMEOUT = datetime.timedelta(hours=2)


def launched() -> bool:
    """Whether a launcher (torchrun) started this process as one of several."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass
class World:
    """This process's place among the training processes, and its device."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _control: object = None  # a gloo group for host-side values (None: the default group)
    _owns_group: bool = False  # join() started the process group, so close() ends it

    @property
    def is_main(self) -> bool:
        """The process that logs, evaluates, selects and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self._control)

    def agreed(self, value: float) -> float:
        """Rank 0's ``value`` on every process (a time, a decision)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(t, src=0, group=self._control)
        return float(t)

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes (a training loss to log)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t, group=self._control)
        return float(t) / self.size

    def seed(self, seed: int) -> int:
        """This process's seed for drawing crops: ``seed`` itself on rank 0
        (so a single process draws what it always drew), far-apart offsets
        on the others so that no two processes train on the same crops."""
        return seed + self.rank * 2**32

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        """``net`` as the training step should call it: wrapped in
        DistributedDataParallel (which copies rank 0's weights to every
        process now and averages gradients in every backward pass) when
        there are several processes, else ``net`` itself.  Evaluate, save
        and set attributes on :func:`unwrapped` of it."""
        if not self.distributed:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)

    def close(self) -> None:
        """Wait for every process to finish; end the process group if
        :func:`join` started it (one its caller started is the caller's)."""
        if self.distributed and dist.is_initialized():
            self.barrier()
            if self._owns_group:
                dist.destroy_process_group()


def unwrapped(net: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel wrapper (or ``net``)."""
    return getattr(net, "module", net)


def join(device_name: str) -> World:
    """Join the process group a launcher describes, on ``device_name``'s
    kind of device (``cuda`` becomes ``cuda:LOCAL_RANK``), and seed this
    process's torch generator apart from the others' (noise, qualities);
    without a launcher, the single process on ``device_name`` as given.
    A process group the caller started already is joined as it is (a script
    that runs several trainers in turn: starting a second group in the same
    processes is not reliable)."""
    device = torch.device(device_name)
    if not launched() or int(os.environ["WORLD_SIZE"]) == 1:
        return World(device=device)
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    control = None
    if dist.get_backend() != "gloo":
        control = dist.new_group(backend="gloo", timeout=TIMEOUT)
    torch.manual_seed((torch.initial_seed() + rank) % 2**63)
    return World(rank=rank, size=size, local_rank=local_rank, device=device, _control=control,
                 _owns_group=owns)


def run_as_command(main) -> None:
    """Run a trainer's ``main()`` as its command; under a launcher, end the
    process the moment ``main`` returns instead of through the interpreter's
    teardown.

    Why: after a run had saved its checkpoint, said "done" and closed its
    process group, a worker once aborted during teardown ("terminate called
    without an active exception", SIGABRT; CI, nc 0.28.0), and the launcher
    failed the whole run for it.  Nothing is left to do by then: the log is
    flushed line by line and checkpoints are closed files.  A trainer called
    in-process (``main(argv)``) is unaffected."""
    main()
    if launched():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
