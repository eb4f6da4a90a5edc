"""Train the variable-rate lossy model on the training photographs (never Kodak).

    python -m models.lossy.train --run-dir runs/lossy --steps 100000
    torchrun --nproc_per_node 8 -m models.lossy.train --run-dir runs/lossy --device cuda ...

Each crop of a batch gets a random quality point q (1..8) and the loss
bpp + lambda_q * 255^2 * MSE, so one model and one set of gains learns every
rate.  Resumable like the ARM's training (``RUN/last.pt``).
"""
from __future__ import annotations

import argparse
import functools
import math

import torch

from ..distributed import join, run_as_command, unwrapped
from ..training import (
    Run,
    RunningMean,
    TrainingBudget,
    add_photo_arguments,
    add_run_arguments,
    cosine_lr,
    on_device,
    optimizer_step,
    photo_sets,
    photo_split,
    resume_or_start,
    training_device,
)
from .network import LossyAutoencoder
from .spec import LossySpec


@functools.lru_cache(maxsize=8)
def lambdas_on(lambdas: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """The rate points as a tensor on ``device``, made once (a copy to a GPU
    at every step would make each step wait for the one before)."""
    return torch.tensor(lambdas, device=device)


def rd_loss(net, x, quality, balance: bool = False):
    """Mean over the batch of bpp + lambda * 255^2 * MSE, and its parts.

    ``balance``: the gradient is that of the mean *log* loss instead (each
    crop's loss divided by its detached value).  With the plain mean, q8's
    distortion term (lambda 100x q1's) dominates the shared transforms'
    gradient; in log space every quality point's relative improvement, which
    is what a BD-rate measures, counts the same.  The value returned is the
    plain mean either way.  ``net`` may be wrapped for DistributedDataParallel."""
    x_hat, y_bits, z_bits = net(x, quality)
    pixels = x.shape[2] * x.shape[3]
    bpp = (y_bits + z_bits) / pixels
    mse = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))
    lam = lambdas_on(unwrapped(net).spec.lambdas, x.device)[quality - 1]
    per_crop = bpp + lam * 255**2 * mse
    if balance:
        scale = per_crop.detach().mean() / per_crop.detach()
        return (per_crop * scale).mean(), bpp, mse
    return per_crop.mean(), bpp, mse


def quality_input_state(state: dict, old_spec: dict, spec: LossySpec, net) -> dict:
    """Warm start of a quality-conditioned model from a plain one: the slice
    networks' new quality input gets zero weights, so training starts from
    exactly the old model and learns what the quality adds."""
    if old_spec.get("quality_input", False) == spec.quality_input:
        return state
    if not spec.quality_input:
        raise SystemExit("a quality-conditioned model cannot be warm-started into a plain one")
    out = dict(state)
    for i in range(spec.slices):
        key = f"slice_nets.{i}.layers.0.weight"
        w = state[key]
        out[key] = torch.cat([w, torch.zeros_like(w[:, :1])], 1)
    return out


def checkerboard_state(state: dict, old_spec: dict, spec: LossySpec, net) -> dict:
    """Warm start of a model with a checkerboard context from one without:
    the slice networks' new context inputs get zero weights (the context
    networks keep their initial values), so training starts from exactly the
    old model's rates and learns what the decoded anchors add."""
    old = old_spec.get("checkerboard_channels", 0)
    if old == spec.checkerboard_channels:
        return state
    if old:
        raise SystemExit("a model's checkerboard context can only be added, not resized")
    out = dict(state)
    for i in range(spec.slices):
        key = f"slice_nets.{i}.layers.0.weight"
        w = state[key]
        at = w.shape[1] - int(spec.quality_input)   # the context goes before the quality input
        zeros = w.new_zeros(w.shape[0], spec.checkerboard_channels, *w.shape[2:])
        out[key] = torch.cat([w[:, :at], zeros, w[:, at:]], 1)
    return out


def widen_state(state: dict, old_spec: dict, spec: LossySpec, net) -> dict:
    """Warm start of a model with more latent channels (more slices of the
    same size) from a narrower one.  The new channels' analysis filters and
    slice networks keep ``net``'s initial values, while the synthesis and h_a
    read them through zero weights, so training starts from exactly the old
    reconstruction and learns what the extra channels add; each new
    channel's gain starts at the mean of the old gains at its quality.  Why:
    without quantization lossy-v9's transforms reconstruct the held-out
    crops only 1.6 dB better than 160 block-PCA components do, and q8 comes
    within 0.6 dB of that; the latent's width, not the rate, caps the top of
    the curve (MODELS.md, lossy-v10)."""
    old_m, old_slices = old_spec["m"], old_spec["slices"]
    if old_m == spec.m:
        return state
    if spec.m < old_m or spec.m // spec.slices != old_m // old_slices or spec.m % spec.slices:
        raise SystemExit("a latent can only be widened by whole slices of the same size")
    fresh = net.state_dict()
    out = dict(state)
    extra = spec.m - old_m

    def grow(key, dim, new):
        out[key] = torch.cat([state[key], new.to(state[key].dtype)], dim)

    grow("g_a.6.weight", 0, fresh["g_a.6.weight"][old_m:])
    grow("g_a.6.bias", 0, fresh["g_a.6.bias"][old_m:])
    grow("g_s.0.weight", 0, torch.zeros_like(fresh["g_s.0.weight"][old_m:]))
    grow("h_a.0.weight", 1, torch.zeros_like(fresh["h_a.0.weight"][:, old_m:]))
    gains = state["log_gain"]
    grow("log_gain", 1, gains.mean(1, keepdim=True).expand(-1, extra))
    for key, value in fresh.items():
        if key.startswith(("slice_nets.", "context_nets.")) and int(key.split(".")[1]) >= old_slices:
            out[key] = value
    return out


def adapt_state(state: dict, old_spec: dict, spec: LossySpec, net) -> dict:
    """Every warm start across a change of the spec's shape, in turn."""
    state = lambda_schedule_state(state, old_spec, spec, net)
    state = checkerboard_state(state, old_spec, spec, net)
    return widen_state(state, old_spec, spec, net)


def lambda_schedule_state(state: dict, old_spec: dict, spec: LossySpec, net) -> dict:
    """Warm start onto a new rate schedule (``spec.lambdas``, same count):
    each new quality point starts from the old model's gains at its lambda,
    read off the old schedule by interpolating the log-gains linearly in
    log lambda (extrapolating past either end), and the slice networks'
    quality input is rescaled so each new point reads the feature the old
    model read at that lambda.  Why: lossy-v5's q1 (lambda 0.0018) lands at
    0.375 bpp on Kodak where the issue asks for 0.1-0.15, and a lower
    schedule trained from scratch would cost what took 7 CPU-hours; moved
    with this and trained 1.6 CPU-hours, lossy-v6's q1 lands at 0.141 bpp."""
    state = quality_input_state(state, old_spec, spec, net)
    old = [math.log(v) for v in old_spec["lambdas"]]
    new = [math.log(v) for v in spec.lambdas]
    if old == new:
        return state
    if len(old) != len(new):
        raise SystemExit("a new rate schedule must keep the number of quality points")

    def position(log_lam: float) -> tuple[int, float]:
        """(i, t): log_lam lies t of the way from old point i to i + 1
        (t < 0 or > 1 past either end)."""
        i = min(max(sum(o <= log_lam for o in old) - 1, 0), len(old) - 2)
        return i, (log_lam - old[i]) / (old[i + 1] - old[i])

    out = dict(state)
    gains = state["log_gain"]
    positions = [position(v) for v in new]
    out["log_gain"] = torch.stack([gains[i] * (1 - t) + gains[i + 1] * t for i, t in positions])
    if spec.quality_input:
        # the input is k / (Q-1) at point k: old = a + b * new, through the two end points
        # (exact at every point when both schedules are geometric)
        q = len(new) - 1
        first, last = (i + t for i, t in (positions[0], positions[-1]))
        a, b = first / q, (last - first) / q
        for i in range(spec.slices):
            w, bias = f"slice_nets.{i}.layers.0.weight", f"slice_nets.{i}.layers.0.bias"
            weight = state[w].clone()
            # the constant channel is the last input; a shifts the bias (exact away
            # from the borders, where the convolution's zero padding cuts the kernel)
            out[bias] = state[bias] + a * weight[:, -1].sum(dim=(1, 2))
            weight[:, -1] *= b
            out[w] = weight
    return out


def freeze_transforms(net) -> None:
    """Train the entropy model alone: g_a, g_s and the gains keep their
    values, so the distortion at each quality can only move through the
    latents' means.  What a CPU session can still improve on a model whose
    transforms were trained on a GPU (see MODELS.md, lossy-v4)."""
    for module in (net.g_a, net.g_s):
        for p in module.parameters():
            p.requires_grad_(False)
    net.log_gain.requires_grad_(False)


def train_synthesis_only(net) -> None:
    """Train g_s alone: the latents, their entropy model and so every file's
    size stay exactly as they are, and only the reconstruction improves.
    Why: lossy-v4's g_s(g_a(x)) without any quantization reaches only
    36.5 dB on the held-out crops at every quality, which caps q8 (35.4 dB
    at 1.6 bpp).  Measured: 2 500 steps from lossy-v4 did not move the
    held-out figures (MODELS.md, lossy-v5), so g_a and the rounding, not g_s,
    set that cap; kept for decoder-side experiments."""
    for name, p in net.named_parameters():
        p.requires_grad_(name.startswith("g_s."))


def make_optimizer(net, lr: float, gain_lr_mult: float):
    """Adam, with the per-quality gains in a group of their own.  Why: Adam
    moves a parameter about lr per step, so at lr 1e-4 the log-gains need
    ~10^4 steps to travel 1.0; after 2 x 10^4 steps lossy-v1's gains span
    only 5.7x from q1 to q8 where lambda spans 100x (about 10x in step size),
    which keeps q1 far above its intended rate."""
    rest = [p for p in net.parameters() if p is not net.log_gain and p.requires_grad]
    groups = [{"params": rest}]
    if net.log_gain.requires_grad:
        groups.append({"params": [net.log_gain], "lr_mult": gain_lr_mult})
    return torch.optim.Adam(groups, lr=lr)


def evaluate(net, crops, qualities=(1, 4, 8)) -> dict:
    device = next(net.parameters()).device
    net.eval()
    out = {}
    with torch.no_grad():
        for q in qualities:
            bpp = psnr = 0.0
            for c in crops:
                x = c.to(device).float() / 255
                _, b, mse = rd_loss(net, x, torch.tensor([q], device=device))
                bpp += float(b)
                psnr += float(10 * torch.log10(1 / mse))
            out[q] = (bpp / len(crops), psnr / len(crops))
    net.train()
    return out


def widened(old: dict, m: int) -> dict:
    """Spec overrides of a latent widened to m channels from the old spec's
    (slices of the same size: see widen_state; a new run's slices are the
    default spec's size)."""
    size = old["m"] // old["slices"]
    if m % size:
        raise SystemExit(f"--latent-channels must be a multiple of the slice size, {size}")
    return {"m": m, "slices": m // size}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, run='runs/lossy', steps=100000, batch=8, crop=128, lr=0.0001)
    add_photo_arguments(p)
    p.add_argument("--quantizer", choices=["round", "codebook"], default="round",
                   help="latent quantizer of a new run (the codec ships 'round')")
    p.add_argument("--gain-lr-mult", type=float, default=1.0,
                   help="learning-rate multiplier of the per-quality gains (see make_optimizer)")
    p.add_argument("--quality-input", action="store_true",
                   help="condition the entropy model on the quality (warm-started exactly)")
    p.add_argument("--hard-rate", action="store_true",
                   help="rate of the rounded latents (straight-through) instead of the noise proxy")
    part = p.add_mutually_exclusive_group()
    part.add_argument("--freeze-transforms", action="store_true",
                      help="train only the entropy model (see freeze_transforms)")
    part.add_argument("--synthesis-only", action="store_true",
                      help="train only the synthesis transform (see train_synthesis_only)")
    p.add_argument("--lambdas", type=lambda v: tuple(float(x) for x in v.split(",")),
                   help="a new rate schedule, comma-separated (warm-started: see lambda_schedule_state)")
    p.add_argument("--checkerboard", type=int, metavar="C",
                   help="add a checkerboard context of C channels to each slice (see checkerboard_state)")
    p.add_argument("--latent-channels", type=int, metavar="M",
                   help="widen the latent to M channels, adding slices of the same size (see widen_state)")
    p.add_argument("--bf16", action="store_true",
                   help="the transforms' inner layers in bfloat16 (see LossyAutoencoder._transform)")
    p.add_argument("--balance", action="store_true",
                   help="weigh the quality points by the gradient of the log loss (see rd_loss)")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    world = join(args.device)
    device = training_device(world.device)
    split = photo_split(args)  # before the run folder: a missing folder leaves nothing behind
    run = Run(args.run, args.ckpt_minutes, world)

    def make_opt(net):
        if args.freeze_transforms:
            freeze_transforms(net)
        if args.synthesis_only:
            train_synthesis_only(net)
        return make_optimizer(net, args.lr, args.gain_lr_mult)

    chosen = {"quantizer": args.quantizer, "quality_input": args.quality_input,
              **({"lambdas": args.lambdas} if args.lambdas else {}),
              **({"checkerboard_channels": args.checkerboard} if args.checkerboard else {})}

    def overrides(old: dict) -> dict:
        return {**chosen, **(widened(old, args.latent_channels) if args.latent_channels else {})}

    spec, net, opt, step, _ = resume_or_start(
        run, LossySpec(**overrides(LossySpec().to_dict())), LossySpec,
        lambda sp: LossyAutoencoder(sp).to(device), make_opt, args.init_from,
        overrides=overrides, adapt_state=adapt_state, split=split)
    net.hard_rate = args.hard_rate
    net.transform_bfloat16 = args.bf16
    crops, val_sets = photo_sets(args, split, world.seed(step), grey_prob=0.0, say=run.say)
    model = world.wrap(net)

    def state():
        return {"spec": spec.to_dict(), "model": net.state_dict(), "opt": opt.state_dict(),
                "step": step, "world_size": world.size}

    running = RunningMean(world)
    budget = TrainingBudget(args.steps, args.max_minutes, world)
    progress = budget.progress(step)
    while progress < 1:
        lr = cosine_lr(step, args.steps, args.lr, warmup=1000, progress=progress)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        x = on_device(crops(), device).float() / 255
        quality = torch.randint(1, spec.qualities + 1, (x.shape[0],), device=device)
        loss, bpp, mse = rd_loss(model, x, quality, args.balance)
        running.add(optimizer_step(model, opt, loss))
        step += 1
        progress = budget.progress(step)
        if step % 100 == 0:
            mean_loss = running.take()  # on every process: a mean over them
            run.say(f"step {step} lr {lr:.2e} loss {mean_loss:.4f}")
        if (step % args.eval_every == 0 or progress >= 1) and world.is_main:
            for name, val in val_sets.items():
                figures = evaluate(net, val)
                run.say(f"step {step} held-out" + (f" {name} " if len(val_sets) > 1 else " ")
                        + ", ".join(f"q{q}: {b:.3f} bpp {p:.2f} dB" for q, (b, p) in figures.items())
                        + f" cpu-h {run.cpu_hours:.2f} wall-min {run.wall_minutes:.1f}")
            run.save(f"step{step}.pt", {"spec": spec.to_dict(), "model": net.state_dict(), "step": step})
        if run.checkpoint_due():
            run.save("last.pt", state())
    run.save("last.pt", state())
    run.say("done")
    world.close()
    return net


if __name__ == "__main__":
    run_as_command(main)
