"""Write a training checkpoint's weights and spec as a model-only safetensors
file, the form committed in ``models/checkpoints`` as a resume point:

    python -m models.snapshot runs/idf-l4/best.pt models/checkpoints/idf-l4-bipartite.safetensors

Any trainer continues from it with ``--init-from`` (weights and spec; the
optimizer and schedule start anew).  Not shipped weights: the codec never
reads these files.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def snapshot(checkpoint: Path, out: Path, float16: bool = False) -> None:
    """``float16``: floating-point tensors in half precision, half the size
    (the form a GPU run's results come back in; resuming trains in float32)."""
    ck = torch.load(checkpoint, weights_only=False, map_location="cpu")
    state = {k: (v.half() if float16 and v.is_floating_point() else v).contiguous()
             for k, v in ck["model"].items()}
    save_file(state, str(out), metadata={"spec": json.dumps(ck["spec"]), "step": str(ck["step"])})
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), step {ck['step']}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--float16", action="store_true", help="store floating-point tensors as float16")
    args = p.parse_args(argv)
    snapshot(args.checkpoint, args.out, args.float16)


if __name__ == "__main__":
    main()
