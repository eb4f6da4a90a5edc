"""Train a lossy model's enhancer (``models/lossy/enhancer.py``) on the
frozen model's own syntheses, and export the model with it.

    python -m models.lossy.train_enhancer --run-dir runs/enh --base models/weights/lossy-v11.safetensors
    python -m models.lossy.train_enhancer --run-dir runs/enh --export models/weights/lossy-v12.safetensors --model-id lossy-v12

The base model is frozen: only the enhancer learns, so a run takes minutes
on this machine's CPUs, and the exported model codes its latents exactly as
the base does.  Training draws a bank of crops once (``--bank`` of them,
``--crop`` pixels, from the photographs at every ``--scales`` size, each at
a random fractional quality) and stores the base model's synthesis of each
(rounded latents, as the codec codes them); each step then trains on
``--batch`` random ``--patch`` squares of the bank, flipped at random.  The
loss is the enhanced synthesis' squared error over the synthesis' own, per
crop: every rate counts alike (a fraction of its error removed), where plain
MSE would train for the low rates' large errors alone.  Held out: centre
crops of the held-out photographs at six qualities; the log prints the dB
the enhancer gains at each.  On a GPU (``--device cuda``) the bank and the
steps run there; the options are the same.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from models.data import RandomCrops, centre_crops, downscaled, read_rgb
from models.training import (
    Run,
    TrainingBudget,
    add_photo_arguments,
    add_run_arguments,
    cosine_lr,
    photo_scales,
    photo_split,
    training_device,
)

from .enhancer import Enhancer
from .network import LossyAutoencoder
from .spec import LossySpec

HELD_OUT_QUALITIES = (1.0, 2.5, 4.0, 5.5, 7.0, 8.0)
DEFAULT_BASE = Path("models/weights/lossy-v11.safetensors")


def base_model(path: Path, device) -> tuple[LossyAutoencoder, dict, dict]:
    """(frozen float network without any enhancer of its own, shipped
    tensors as stored, metadata) of shipped lossy weights."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from models.int_storage import widen
    from models.lossy.export import float_state

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    tensors = widen(load_file(str(path)), meta)
    spec_dict = json.loads(meta["spec"])
    net = LossyAutoencoder(LossySpec.from_dict(spec_dict)).eval()
    net.load_state_dict(float_state(tensors, spec_dict))
    net.enhancer = None          # the run trains a new one on the bare synthesis
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(device), tensors, meta


@torch.no_grad()
def syntheses(net: LossyAutoencoder, crops: torch.Tensor, qualities: torch.Tensor, device,
              chunk: int = 8) -> torch.Tensor:
    """The base model's synthesis (float16, 0..1) of uint8 crops (N, 3, S, S)
    at the given qualities: its forward pass, which in evaluation codes
    rounded latents as the codec does."""
    out = []
    for i in range(0, len(crops), chunk):
        x_hat, _, _ = net(crops[i:i + chunk].to(device).float() / 255, qualities[i:i + chunk].to(device))
        out.append(x_hat.clamp(0, 1).half().cpu())
    return torch.cat(out)


def relative_error(enhanced, x_hat, x) -> torch.Tensor:
    """Per crop, the enhanced synthesis' squared error over the synthesis' own."""
    base = ((x_hat - x) ** 2).mean((1, 2, 3)) + 1e-8
    return ((enhanced - x) ** 2).mean((1, 2, 3)) / base


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, run="runs/enhancer", steps=4000, batch=16, crop=256, lr=1e-3)
    add_photo_arguments(p)
    p.set_defaults(scales="1,2")
    p.add_argument("--base", type=Path, default=DEFAULT_BASE, help="shipped lossy weights to enhance")
    p.add_argument("--channels", type=int, default=48)
    p.add_argument("--layers", type=int, default=2, help="middle layers of the enhancer")
    p.add_argument("--bank", type=int, default=2600, help="training crops drawn once")
    p.add_argument("--patch", type=int, default=128, help="training squares cut from the bank's crops")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", type=Path, help="write the base model with the run's enhancer here, and stop")
    p.add_argument("--model-id", default="lossy-v12")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = training_device(args.device)
    run = Run(args.run, args.ckpt_minutes)
    base, tensors, meta = base_model(args.base, device)
    spec = base.spec
    ck = run.resume()
    if ck is not None:     # the run's own shape, whatever the command line says
        args.channels, args.layers = ck["args"]["channels"], ck["args"]["layers"]
    enhancer = Enhancer(args.channels, args.layers, spec.qualities).to(device)
    opt = torch.optim.Adam(enhancer.parameters(), lr=args.lr)
    step = 0
    if ck is not None:
        enhancer.load_state_dict(ck["enhancer"])
        opt.load_state_dict(ck["optimizer"])
        step = ck["step"]
        run.say(f"resumed at step {step}")
    if args.export:
        export(args, spec, tensors, meta, enhancer, step, (ck or {}).get("cpu_seconds", 0.0) / 3600)
        return

    g = torch.Generator().manual_seed(args.seed)
    split = photo_split(args)
    factors = photo_scales(args.scales)
    train = [read_rgb(path) for path in split.train]
    crops = RandomCrops([downscaled(train, f) for f in factors], args.crop, args.bank,
                        grey_prob=0.0, seed=args.seed)()
    qualities = 1 + torch.rand(args.bank, generator=g) * (spec.qualities - 1)
    bank = syntheses(base, crops, qualities, device)
    held = [read_rgb(path) for path in split.held_out]
    held_crops = torch.cat([c for f in factors for c in centre_crops(downscaled(held, f), 256, 64)
                            if c.shape[-2:] == (256, 256)])
    held_x, held_q, held_hat = [], [], []
    for q in HELD_OUT_QUALITIES:
        qs = torch.full((len(held_crops),), q)
        held_x.append(held_crops)
        held_q.append(qs)
        held_hat.append(syntheses(base, held_crops, qs, device))
    held_x, held_q, held_hat = torch.cat(held_x), torch.cat(held_q), torch.cat(held_hat)
    run.say(f"bank of {args.bank} crops from {len(split.train)} photographs; "
            f"{len(held_crops)} held-out crops x {len(HELD_OUT_QUALITIES)} qualities")

    def held_out() -> str:
        enhancer.eval()
        gains = []
        with torch.no_grad():
            for q in HELD_OUT_QUALITIES:
                idx = (held_q == q).nonzero()[:, 0]
                x = held_x[idx].to(device).float() / 255
                x_hat = held_hat[idx].to(device).float()
                out = enhancer(x_hat, held_q[idx].to(device)).clamp(0, 1)
                gains.append(float((-10 * torch.log10(relative_error(out, x_hat, x))).mean()))
        enhancer.train()
        return " ".join(f"q{q:g} {d:+.3f}" for q, d in zip(HELD_OUT_QUALITIES, gains)) + " dB"

    budget = TrainingBudget(args.steps, args.max_minutes)
    span = (args.crop - args.patch) // 2 + 1
    while True:
        progress = budget.progress(step)
        if progress >= 1:
            break
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, warmup=200, progress=progress)
        idx = torch.randint(0, args.bank, (args.batch,), generator=g)
        oy, ox = (2 * int(v) for v in torch.randint(0, span, (2,), generator=g))
        window = (slice(None), slice(None), slice(oy, oy + args.patch), slice(ox, ox + args.patch))
        x = crops[idx][window].to(device).float() / 255
        x_hat = bank[idx][window].to(device).float()
        if step % 2:
            x, x_hat = x.flip(3), x_hat.flip(3)
        loss = relative_error(enhancer(x_hat, qualities[idx].to(device)), x_hat, x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % args.eval_every == 0 or step == args.steps:
            run.say(f"step {step} loss {loss.item():.4f} held-out {held_out()}")
        if run.checkpoint_due() or step == args.steps:
            run.save("last.pt", {"enhancer": enhancer.state_dict(), "optimizer": opt.state_dict(),
                                 "step": step, "args": vars(args) | {"run": str(args.run)}})
    run.say(f"done at step {step}")


def export(args, spec: LossySpec, tensors: dict, meta: dict, enhancer: Enhancer, step: int,
           cpu_hours: float) -> None:
    """The base weights unchanged, plus the enhancer's (float32), under a new id."""
    from dataclasses import replace

    from models.training import save_weights

    spec = replace(spec, enhancer_channels=args.channels, enhancer_layers=args.layers)
    out = dict(tensors)
    for name, t in enhancer.state_dict().items():
        out[f"enhancer.{name}"] = t.cpu().numpy().astype(np.float32)
    extra = {k: v for k, v in meta.items() if k in ("layout", "alpha_model")}
    extra["base_model"] = meta.get("model_id", "")
    extra["enhancer_cpu_hours"] = f"{cpu_hours:.2f}"
    save_weights(args.export, out, "lossy", args.model_id, spec,
                 {"step": step, "cpu_seconds": float(meta.get("cpu_hours", 0)) * 3600}, **extra)
    print(json.dumps({"enhancer": [args.channels, args.layers], "step": step}))


if __name__ == "__main__":
    main()
