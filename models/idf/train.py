"""Train the IDF on the training photographs (never on Kodak).

    python -m models.idf.train --run-dir runs/idf-2 --partitions 2 --steps 30000
    python -m models.idf.train --run-dir runs/idf-4 --partitions 4 --steps 30000
    torchrun --nproc_per_node 2 -m models.idf.train --run-dir runs/idf-2 --partitions 2 --steps 30000 --threads 1

Resumable (``RUN/last.pt``); keeps the best held-out model in ``RUN/best.pt``.
"""
from __future__ import annotations

import argparse

import torch

from ..distributed import join, run_as_command
from ..training import (Run, add_fit_arguments, add_photo_arguments, add_run_arguments, fit_bits,
                        photo_data, photo_split, resume_or_start, training_device)
from .network import IDF
from .spec import IDFSpec, group_rows


def evaluate(net: IDF, crops) -> float:
    device = next(net.parameters()).device
    net.eval()
    with torch.no_grad():
        bits = sum(float(net(c.to(device)).sum()) for c in crops)
    net.train()
    return bits / sum(c.numel() for c in crops)


def group_prior_state(state: dict, old_spec: dict, spec: IDFSpec, net: IDF) -> dict:
    """Warm start of a grouped prior from an ungrouped one (prior_groups 1):
    group 0's network is the old one restricted to its group's outputs, and
    group g's the same with zero weights on the g earlier groups it also
    sees, so the new model starts with exactly the old model's code length
    and learns what the earlier groups add."""
    if old_spec.get("prior_groups", 1) == spec.prior_groups:
        return state
    if old_spec.get("prior_groups", 1) != 1:
        raise SystemExit("a grouped prior can only be warm-started from an ungrouped one")
    new = net.state_dict()
    # everything but the prior networks carries over (the priors' output biases too)
    out = {k: v for k, v in state.items() if not (k.startswith("priors.") and ".net." in k)}
    for l, prior in enumerate(net.priors):
        old = f"priors.{l}.net.layers"
        if f"{old}.0.weight" not in state:
            continue  # the last level: no network before, zero-output group networks now
        for g in range(spec.prior_groups):
            rows = group_rows(g, prior.group_size, spec.prior_groups)
            dst = f"priors.{l}.net.layers" if g == 0 else f"priors.{l}.group_nets.{g - 1}.layers"
            first = new[f"{dst}.0.weight"].clone().zero_()
            first[:, :state[f"{old}.0.weight"].shape[1]] = state[f"{old}.0.weight"]
            out[f"{dst}.0.weight"] = first
            out[f"{dst}.0.bias"] = state[f"{old}.0.bias"]
            out[f"{dst}.1.weight"] = state[f"{old}.1.weight"]
            out[f"{dst}.1.bias"] = state[f"{old}.1.bias"]
            out[f"{dst}.2.weight"] = state[f"{old}.2.weight"][rows]
            out[f"{dst}.2.bias"] = state[f"{old}.2.bias"][rows]
    return {**new, **out}


def spatial_prior_state(state: dict, old_spec: dict, spec: IDFSpec, net: IDF) -> dict:
    """Warm start of a checkerboard prior from a prior without one (after
    :func:`group_prior_state` if the groups change too): group g's
    non-anchor network starts as its anchor network with zero weights on the
    anchors it also sees, so the new model starts at exactly the old model's
    code length.  Where a group has no anchor network (the last level's first
    group) the new one keeps its zero-output initialisation."""
    state = group_prior_state(state, old_spec, spec, net)
    if old_spec.get("prior_checkerboard", False) == spec.prior_checkerboard:
        return state
    if not spec.prior_checkerboard:
        raise SystemExit("a checkerboard prior cannot be warm-started into one without")
    new = net.state_dict()
    out = dict(state)
    for l, prior in enumerate(net.priors):
        for g in range(spec.prior_groups):
            src = f"priors.{l}.net.layers" if g == 0 else f"priors.{l}.group_nets.{g - 1}.layers"
            dst = f"priors.{l}.spatial_nets.{g}.layers"
            if f"{src}.0.weight" not in state:
                out.update({k: v for k, v in new.items() if k.startswith(dst + ".")})
                continue
            first = new[f"{dst}.0.weight"].clone().zero_()
            first[:, :state[f"{src}.0.weight"].shape[1]] = state[f"{src}.0.weight"]
            out[f"{dst}.0.weight"] = first
            for key in ("0.bias", "1.weight", "1.bias", "2.weight", "2.bias"):
                out[f"{dst}.{key}"] = state[f"{src}.{key}"]
    return {**new, **out}


def wider_coupling_state(state: dict, old_spec: dict, spec: IDFSpec, net: IDF) -> dict:
    """Warm start of wider couplings (``spec.hidden`` above the old one), after
    :func:`spatial_prior_state`: each coupling network keeps its old hidden
    units and gains new ones with fresh incoming weights and zero outgoing
    ones, so the flow, and the code length, start exactly as before while
    the new units' outgoing weights get gradients from the first step
    (function-preserving widening, as in Net2Net)."""
    state = spatial_prior_state(state, old_spec, spec, net)
    old = old_spec.get("hidden", 32)
    if old == spec.hidden:
        return state
    if spec.hidden < old:
        raise SystemExit(f"couplings cannot be narrowed ({old} -> {spec.hidden} channels)")
    out = dict(state)
    for key, value in net.state_dict().items():
        w = state.get(key)
        if not key.startswith("flows.") or w is None or w.shape == value.shape:
            continue
        grown = value.clone()                    # new units: fresh weights in ...
        grown[tuple(slice(0, n) for n in w.shape)] = w
        if key.endswith(("layers.1.weight", "layers.2.weight")):
            grown[:w.shape[0], old:] = 0.0       # ... but what the old units feed ignores them
        out[key] = grown
    return out


def trainable(net: IDF, freeze_flow: bool) -> list:
    """The parameters a run trains.  With ``freeze_flow`` the priors alone:
    the latents are then fixed, so no graph is kept through the couplings
    and a step costs about half.  A prior-only stage at the end pays on
    full-size clean photographs: 400 steps on idf-v7's latents took its
    held-out code length (256x256 centre crops) from 3.694 to 3.612 bpsp,
    3.764 to 3.733 through the codec (docs/MODELS.md, idf-v8)."""
    if not freeze_flow:
        return list(net.parameters())
    for p in net.flows.parameters():
        p.requires_grad_(False)
    return list(net.priors.parameters())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, run="runs/idf", steps=30000, batch=8, crop=64, lr=1e-3)
    p.add_argument("--partitions", type=int, choices=(2, 4), default=2)
    p.add_argument("--couplings", type=int, default=4)
    p.add_argument("--hidden", type=int, default=32,
                   help="channels of each coupling network; above --init-from's, its couplings are widened")
    p.add_argument("--levels", type=int, default=3,
                   help="squeeze/factor-out levels (the last level's prior is unconditional)")
    p.add_argument("--prior-groups", type=int, default=1,
                   help="channel groups of each level's prior, coded in turn (see Prior)")
    p.add_argument("--prior-checkerboard", action="store_true",
                   help="code each group in two checkerboard halves, the second given the first")
    p.add_argument("--freeze-flow", action="store_true",
                   help="train the priors alone, the couplings fixed (the flow's latents do not move)")
    add_photo_arguments(p)
    add_fit_arguments(p)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    world = join(args.device)
    device = training_device(world.device)
    split = photo_split(args)  # before the run folder: a missing folder leaves nothing behind
    run = Run(args.run, args.ckpt_minutes, world)
    spec = IDFSpec(partitions=args.partitions, couplings=args.couplings, hidden=args.hidden,
                   levels=args.levels, prior_groups=args.prior_groups,
                   prior_checkerboard=args.prior_checkerboard)
    spec, net, opt, step, best = resume_or_start(
        run, spec, IDFSpec, lambda sp: IDF(sp).to(device), lambda n: torch.optim.Adam(trainable(n, args.freeze_flow), lr=args.lr),
        args.init_from, adapt_state=wider_coupling_state,
        overrides=lambda old: {"prior_groups": args.prior_groups,
                               "prior_checkerboard": args.prior_checkerboard,
                               "hidden": args.hidden}, split=split)
    batches, held_out = photo_data(args, run, evaluate, split, step)
    fit_bits(run, spec, net, opt, step=step, best=best, steps=args.steps, peak_lr=args.lr,
             batches=batches, evaluate=held_out, max_minutes=args.max_minutes,
             eval_every=args.eval_every,
             schedule=args.schedule, ema=args.ema)
    world.close()
    return net


if __name__ == "__main__":
    run_as_command(main)
