"""Train the ARM on the training photographs (never on Kodak).

    python -m models.arm.train --run runs/arm --steps 16000

Resumes from ``RUN/last.pt`` when it exists, logs to ``RUN/log.txt``,
checkpoints every few minutes and keeps the best model on the held-out
images in ``RUN/best.pt``.  Export with ``python -m models.arm.export``.
"""
from __future__ import annotations

import argparse

import torch

from ..data import RandomCrops, centre_crops, downscaled, load_images, noisy_crops
from ..training import Run, add_run_arguments, fit_bits, resume_or_start
from .network import ARMNetwork
from .spec import ARMSpec


def evaluate(net: ARMNetwork, crops) -> float:
    """Held-out bits per subpixel of the fake-quantized (deployed) network."""
    net.eval()
    fq, net.fake_quant = net.fake_quant, True
    bits = subpixels = 0.0
    with torch.no_grad():
        for c in crops:
            bits += float(net(c).sum())
            subpixels += c.numel()
    net.train()
    net.fake_quant = fq
    return bits / subpixels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, run='runs/arm', steps=16000, batch=8, crop=96, lr=0.002)
    p.add_argument("--head-lr-mult", type=float, default=0.05,
                   help="learning-rate factor of the head and skip: their outputs are scaled to "
                        "pixel units (x64), so the same step moves a mean 64x further")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--mixtures", type=int, default=2)
    p.add_argument("--noise-prob", type=float, default=0.0,
                   help="fraction of training crops given Gaussian noise (grain augmentation)")
    p.add_argument("--noise-max", type=float, default=3.0, help="largest noise sigma, in levels")
    p.add_argument("--scales", default="1",
                   help="comma-separated downscaling factors of the photographs to train on "
                        "(each drawn equally often), e.g. 1,2; held-out selection averages them")
    p.add_argument("--qat-from", type=float, default=0.85,
                   help="fraction of the steps after which hidden layers are fake-quantized")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = Run(args.run, args.ckpt_minutes)
    train, held = load_images(args.data)
    factors = [float(f) for f in args.scales.split(",")]
    train_sets = [downscaled(train, f) for f in factors]
    val_sets = {f"x1/{f:g}": centre_crops(downscaled(held, f), 256) for f in factors}
    # With noise augmentation, select on clean and noisy (sigma 2) held-out crops alike.
    if args.noise_prob > 0:
        val_sets["noisy"] = noisy_crops(next(iter(val_sets.values())), 2.0)

    def held_out(n):
        figures = {name: evaluate(n, v) for name, v in val_sets.items()}
        if len(figures) > 1:
            run.say("held-out " + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()) + " bpsp")
        return sum(figures.values()) / len(figures)

    def make_opt(net):
        head = [net.head.weight, net.head.bias, net.skip.weight]
        body = [p for p in net.parameters() if all(p is not h for h in head)]
        return torch.optim.Adam([{"params": body, "lr_mult": 1.0},
                                 {"params": head, "lr_mult": args.head_lr_mult}], lr=args.lr)

    spec = ARMSpec(hidden=args.hidden, hidden_layers=args.layers, mixtures=args.mixtures)
    spec, net, opt, step, best = resume_or_start(run, spec, ARMSpec, ARMNetwork, make_opt,
                                                 args.init_from)

    def before_step(step):
        net.fake_quant = step >= args.qat_from * args.steps

    fit_bits(run, spec, net, opt, step=step, best=best, steps=args.steps, peak_lr=args.lr,
             batches=RandomCrops(train_sets, args.crop, args.batch, seed=step,
                                 noise_prob=args.noise_prob, noise_max=args.noise_max),
             evaluate=held_out, before_step=before_step)


if __name__ == "__main__":
    main()
