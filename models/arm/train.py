"""Train the ARM on the training photographs (never on Kodak).

    python -m models.arm.train --run runs/arm --steps 16000

Resumes from ``RUN/last.pt`` when it exists, logs to ``RUN/log.txt``,
checkpoints every few minutes and keeps the best model on the held-out
images in ``RUN/best.pt``.  Export with ``python -m models.arm.export``.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from ..data import RandomCrops, centre_crops, load_images
from ..training import Run, add_run_arguments, cosine_lr, optimizer_step
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
    p.add_argument("--init-from", type=Path, help="start a new run from this checkpoint's weights")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--mixtures", type=int, default=2)
    p.add_argument("--qat-from", type=float, default=0.85,
                   help="fraction of the steps after which hidden layers are fake-quantized")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = Run(args.run, args.ckpt_minutes)
    train, held = load_images(args.data)
    val = centre_crops(held, 256)
    spec = ARMSpec(hidden=args.hidden, hidden_layers=args.layers, mixtures=args.mixtures)
    step, best = 0, math.inf
    ck = run.resume()
    if ck:
        spec = ARMSpec.from_dict(ck["spec"])
    net = ARMNetwork(spec)
    if not ck and args.init_from:
        net.load_state_dict(torch.load(args.init_from, weights_only=False)["model"])
    head = [net.head.weight, net.head.bias, net.skip.weight]
    body = [p for p in net.parameters() if all(p is not h for h in head)]
    opt = torch.optim.Adam([{"params": body, "lr_mult": 1.0},
                            {"params": head, "lr_mult": args.head_lr_mult}], lr=args.lr)
    if ck:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best = ck["step"], ck["best"]
        run.say(f"resumed at step {step}, best {best:.4f}")
    else:
        run.say(f"new run: {json.dumps(spec.to_dict())} {vars(args)}")
    crops = RandomCrops(train, args.crop, args.batch, seed=step)

    def state():
        return {"spec": spec.to_dict(), "model": net.state_dict(), "opt": opt.state_dict(),
                "step": step, "best": best}

    running = []
    while step < args.steps:
        lr = cosine_lr(step, args.steps, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        net.fake_quant = step >= args.qat_from * args.steps
        x = crops()
        loss = net(x).sum() / x.numel()
        running.append(optimizer_step(net, opt, loss))
        step += 1
        if step % 200 == 0:
            run.say(f"step {step} lr {lr:.2e} train {sum(running) / len(running):.4f} bpsp")
            running = []
        if step % 2000 == 0 or step == args.steps:
            v = evaluate(net, val)
            if v < best:
                best = v
                run.save("best.pt", state())
            run.say(f"step {step} held-out {v:.4f} bpsp (best {best:.4f}) cpu-h {run.cpu_hours:.2f}")
        if run.checkpoint_due():
            run.save("last.pt", state())
    run.save("last.pt", state())
    run.say("done")


if __name__ == "__main__":
    main()
