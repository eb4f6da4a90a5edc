"""Train the IDF on the training photographs (never on Kodak).

    python -m models.idf.train --run runs/idf-2 --partitions 2 --steps 30000
    python -m models.idf.train --run runs/idf-4 --partitions 4 --steps 30000

Resumable (``RUN/last.pt``); keeps the best held-out model in ``RUN/best.pt``.
"""
from __future__ import annotations

import argparse

import torch

from ..data import RandomCrops, centre_crops, load_images
from ..training import Run, add_run_arguments, fit_bits, resume_or_start
from .network import IDF
from .spec import IDFSpec


def evaluate(net: IDF, crops) -> float:
    net.eval()
    with torch.no_grad():
        bits = sum(float(net(c).sum()) for c in crops)
    net.train()
    return bits / sum(c.numel() for c in crops)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, run="runs/idf", steps=30000, batch=8, crop=64, lr=1e-3)
    p.add_argument("--partitions", type=int, choices=(2, 4), default=2)
    p.add_argument("--couplings", type=int, default=4)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--levels", type=int, default=3,
                   help="squeeze/factor-out levels (the last level's prior is unconditional)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = Run(args.run, args.ckpt_minutes)
    train, held = load_images(args.data)
    val = centre_crops(held, 256)
    spec = IDFSpec(partitions=args.partitions, couplings=args.couplings, hidden=args.hidden,
                   levels=args.levels)
    spec, net, opt, step, best = resume_or_start(
        run, spec, IDFSpec, IDF, lambda n: torch.optim.Adam(n.parameters(), lr=args.lr),
        args.init_from)
    fit_bits(run, spec, net, opt, step=step, best=best, steps=args.steps, peak_lr=args.lr,
             batches=RandomCrops(train, args.crop, args.batch, seed=step),
             evaluate=lambda n: evaluate(n, val))


if __name__ == "__main__":
    main()
