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


def snapshot(checkpoint: Path, out: Path) -> None:
    ck = torch.load(checkpoint, weights_only=False, map_location="cpu")
    state = {k: v.contiguous() for k, v in ck["model"].items()}
    save_file(state, str(out), metadata={"spec": json.dumps(ck["spec"]), "step": str(ck["step"])})
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), step {ck['step']}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    snapshot(args.checkpoint, args.out)


if __name__ == "__main__":
    main()
