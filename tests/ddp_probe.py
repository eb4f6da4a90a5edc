"""Run by tests/test_distributed.py under PyTorch's launcher: each process
runs trainers' ``main`` in turn (the same command lines on every process,
as torchrun gives them) and writes ``OUT/<trainer>-rank<R>.json`` with digests
of what it held: the network just after it was wrapped for
DistributedDataParallel, the first batch of crops it drew, and the network
after training.

    python -m torch.distributed.run --nproc_per_node 2 --standalone \\
        tests/ddp_probe.py OUT TRAINER "OPTIONS" [TRAINER "OPTIONS" ...]

(One launch for every trainer: starting the launcher and its processes
costs more than a few training steps.  The probe starts the gloo process
group itself, so the trainers join it rather than each starting one.)
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shlex
import sys
from pathlib import Path

import torch.distributed

import models.data as data
import models.distributed as distributed


def digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def state_digest(state: dict) -> str:
    return digest(v for _, v in sorted(state.items()))


def main() -> None:
    out, runs = Path(sys.argv[1]), sys.argv[2:]
    record: dict = {}

    wrap = distributed.World.wrap

    def recording_wrap(self, net):
        model = wrap(self, net)
        record.setdefault("wrapped", state_digest(net.state_dict()))
        return model

    draw = data.RandomCrops.__call__

    def recording_draw(self):
        batch = draw(self)
        record.setdefault("first_batch", digest([batch]))
        return batch

    distributed.World.wrap = recording_wrap
    data.RandomCrops.__call__ = recording_draw
    torch.distributed.init_process_group("gloo")
    for trainer, options in zip(runs[::2], runs[1::2]):
        record.clear()
        net = importlib.import_module(f"models.{trainer}.train").main(shlex.split(options))
        record["trained"] = state_digest(net.state_dict())
        (out / f"{trainer}-rank{os.environ['RANK']}.json").write_text(json.dumps(record))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    distributed.run_as_command(main)  # no teardown to abort the run (see there)
