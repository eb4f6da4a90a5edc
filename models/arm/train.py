"""Train the ARM on the training photographs (never on Kodak).

    python -m models.arm.train --run-dir runs/arm --steps 16000
    torchrun --nproc_per_node 2 -m models.arm.train --run-dir runs/arm --steps 16000 --threads 1

Resumes from ``RUN/last.pt`` when it exists, logs to ``RUN/log.txt``,
checkpoints every few minutes and keeps the best model on the held-out
images in ``RUN/best.pt``.  Export with ``python -m models.arm.export``.
"""
from __future__ import annotations

import argparse

import torch

from ..distributed import join, run_as_command
from ..training import (Run, add_fit_arguments, add_photo_arguments, add_run_arguments, fit_bits,
                        photo_data, photo_split, resume_or_start, training_device)
from .network import ARMNetwork, widened_state
from .spec import NEIGHBOURHOODS, ARMSpec


def evaluate(net: ARMNetwork, crops) -> float:
    """Held-out bits per subpixel of the fake-quantized (deployed) network."""
    device = next(net.parameters()).device
    net.eval()
    fq, net.fake_quant = net.fake_quant, True
    bits = subpixels = 0.0
    with torch.no_grad():
        for c in crops:
            bits += float(net(c.to(device)).sum())
            subpixels += c.numel()
    net.train()
    net.fake_quant = fq
    return bits / subpixels


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, run='runs/arm', steps=16000, batch=8, crop=96, lr=0.002)
    p.add_argument("--head-lr-mult", type=float, default=0.05,
                   help="learning-rate factor of the head and skip: their outputs are scaled to "
                        "pixel units (x64), so the same step moves a mean 64x further")
    p.add_argument("--hidden", type=int,
                   help="hidden width (default: the --init-from model's, else 128); a model "
                        "widened from a narrower one starts at its old code length")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--mixtures", type=int,
                   help="logistics per subpixel (default: the --init-from model's, else 2); "
                        "new components start as copies of the old ones")
    p.add_argument("--neighbourhood", choices=sorted(NEIGHBOURHOODS),
                   help="the causal context (default: the --init-from model's, else 'default'); "
                        "a model widened to a larger one starts at its old code length")
    p.add_argument("--true-bounds", action="store_true",
                   help="no gradient through an output clamped at its grid's bound (as the "
                        "per-image fit, codec/arm/adaptation.py) instead of the identity's")
    add_photo_arguments(p)
    add_fit_arguments(p)
    p.add_argument("--qat-from", type=float, default=0.85,
                   help="fraction of the run (steps or --max-minutes) after which hidden layers "
                        "are fake-quantized")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    world = join(args.device)
    device = training_device(world.device)
    split = photo_split(args)  # before the run folder: a missing folder leaves nothing behind
    run = Run(args.run, args.ckpt_minutes, world)

    def make_opt(net):
        head = [net.head.weight, net.head.bias, net.skip.weight]
        body = [p for p in net.parameters() if all(p is not h for h in head)]
        return torch.optim.Adam([{"params": body, "lr_mult": 1.0},
                                 {"params": head, "lr_mult": args.head_lr_mult}], lr=args.lr)

    nb = NEIGHBOURHOODS[args.neighbourhood or "default"]
    spec = ARMSpec(neighbourhood=nb, hidden=args.hidden or 128, hidden_layers=args.layers,
                   mixtures=args.mixtures or 2)
    widened = {**({"neighbourhood": [list(o) for o in nb]} if args.neighbourhood else {}),
               **({"hidden": args.hidden} if args.hidden else {}),
               **({"mixtures": args.mixtures} if args.mixtures else {})}
    spec, net, opt, step, best = resume_or_start(run, spec, ARMSpec, lambda sp: ARMNetwork(sp).to(device),
                                                 make_opt, args.init_from,
                                                 overrides=(lambda old: widened) if widened else None,
                                                 adapt_state=widened_state, split=split)

    if args.true_bounds:
        net.output_bound = torch.clamp

    def before_step(step, progress):
        # by progress, not steps: a run bounded by --max-minutes ends quantized too
        net.fake_quant = progress >= args.qat_from

    batches, held_out = photo_data(args, run, evaluate, split, step)
    fit_bits(run, spec, net, opt, step=step, best=best, steps=args.steps, peak_lr=args.lr,
             batches=batches, evaluate=held_out, before_step=before_step,
             max_minutes=args.max_minutes, eval_every=args.eval_every,
             schedule=args.schedule, ema=args.ema)
    world.close()
    return net


if __name__ == "__main__":
    run_as_command(main)
