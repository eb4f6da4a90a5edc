"""Does a mixture prior pay for the IDF?  A probe, not a trainer.

    python -m models.idf.mixture_probe --mixtures 3 --steps 400
    python -m models.idf.mixture_probe --mixtures 1 --steps 400 --save runs/pf.pt

The flow of a shipped model is frozen and its latents computed once for a
fixed set of training crops; the priors are then fine-tuned for the same
steps with one logistic per latent (as shipped) or a mixture of K, and the
held-out code length (256x256 centre crops, the training network's bits)
compared.  Mixture components 1..K-1 come from an extra 3x3 layer on each
prior network's hidden features (zero weights at first, means offset by
+-0.4 of a raw unit), their weights from K logits.  With ``--noisy`` the
crops are drawn as the joint trainer draws them (full and half size, half
of them with grain).  ``--save`` writes the one-logistic result as a
checkpoint ``models.idf.export`` reads.

Measured on idf-v7 (docs/MODELS.md, idf-v8): 400 steps from 3.694 bpsp,
K = 1 3.612, K = 3 3.604; the K = 1 fine-tune on grainy and half-size crops
3.694.  So most of the gain is the clean full-size crops, not the mixture.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import RandomCrops, centre_crop, downscaled, read_rgb, split_photos
from ..quant import clamp_ste, quantize_ste, round_ste
from ..training import DEFAULT_PHOTOS_DIR, DEFAULT_TRAIN_DIR, load_state
from .network import IDF, anchor_mask, logistic_bits, logistic_log_prob
from .spec import IDFSpec, group_rows


class ExtraComponents(nn.Module):
    """Components 1..K-1 (mean and log-scale offsets from component 0, the
    shipped output) and K logits for one prior network's channel group."""

    def __init__(self, hidden: int, k: int, mixtures: int):
        super().__init__()
        self.mixtures = mixtures
        rows = (mixtures - 1) * 2 * k + mixtures * k
        self.conv = nn.Conv2d(hidden, rows, 3, padding=1) if hidden else None
        self.bias = nn.Parameter(torch.zeros(rows))
        with torch.no_grad():
            if self.conv is not None:
                self.conv.weight.zero_()
                self.conv.bias.zero_()
            for j in range(mixtures - 1):
                self.bias[j * 2 * k: j * 2 * k + k] = (0.4 if j % 2 == 0 else -0.4) * (1 + j // 2)
            self.bias[(mixtures - 1) * 2 * k:(mixtures - 1) * 2 * k + k] = 1.0   # component 0 favoured

    def forward(self, hidden, shape):
        out = self.bias[None, :, None, None].expand(shape[0], -1, shape[2], shape[3])
        if self.conv is not None and hidden is not None:
            out = out + self.conv(hidden)
        return out


def mixture_bits(z, components):
    """Bits of z under a discretized logistic mixture [(mean, log_scale, logit)]."""
    log_w = F.log_softmax(torch.stack([c[2] for c in components]), 0)
    terms = [logistic_log_prob(z, m, ls) + log_w[j] for j, (m, ls, _) in enumerate(components)]
    return -torch.logsumexp(torch.stack(terms), 0).sum() / math.log(2)


class Probe:
    def __init__(self, net: IDF, mixtures: int):
        self.net, self.spec, self.mixtures = net, net.spec, mixtures
        self.extras = nn.ModuleList()
        for prior in net.priors:
            per = nn.ModuleDict()
            for g in range(self.spec.prior_groups):
                anchor_net = prior.net if g == 0 else prior.group_nets[g - 1]
                per[f"a{g}"] = ExtraComponents(self.spec.prior_hidden if anchor_net is not None else 0,
                                               prior.group_size, mixtures)
                per[f"s{g}"] = ExtraComponents(self.spec.prior_hidden, prior.group_size, mixtures)
            self.extras.append(per)

    def parameters(self):
        return list(self.net.priors.parameters()) + (list(self.extras.parameters()) if self.mixtures > 1 else [])

    def _mean(self, raw):
        s = self.spec
        return quantize_ste(raw * 2**s.mean_gain_log2, s.mean_frac, -2**20, 2**20)

    def _log_scale(self, raw):
        s = self.spec
        levels = clamp_ste(round_ste((raw - s.log_scale_min) * 2**s.log_scale_frac), 0, s.log_scale_levels - 1)
        return s.log_scale_min + levels / 2**s.log_scale_frac

    def level_bits(self, level: int, z, kept):
        s, prior, K = self.spec, self.net.priors[level], self.mixtures
        k = prior.group_size
        groups = list(z.chunk(s.prior_groups, 1))
        mask = anchor_mask(z.shape[2], z.shape[3])
        total = 0.0
        for g in range(s.prior_groups):
            outs = {}
            for kind in ("a", "s"):
                bias = prior.bias[group_rows(g, k, s.prior_groups)]
                raw = bias[None, :, None, None].expand(z.shape[0], -1, z.shape[2], z.shape[3])
                inputs = ([kept] if kept is not None else []) + groups[:g]
                if kind == "s":
                    net, inputs = prior.spatial_nets[g], inputs + [groups[g] * mask]
                else:
                    net = prior.net if g == 0 else prior.group_nets[g - 1]
                hidden = None
                if net is not None:
                    hidden, out = net.with_features(torch.cat(inputs, 1))
                    raw = raw + out
                outs[kind] = (raw, self.extras[level][f"{kind}{g}"](hidden, z.shape) if K > 1 else None)
            raw = torch.where(mask, outs["a"][0], outs["s"][0])
            mean, log_scale = self._mean(raw[:, :k]), self._log_scale(raw[:, k:])
            if K == 1:
                total = total + logistic_bits(groups[g], mean, log_scale).sum()
                continue
            extra = torch.where(mask, outs["a"][1], outs["s"][1])
            logits = extra[:, (K - 1) * 2 * k:]
            comps = [(mean, log_scale, logits[:, :k])]
            for j in range(K - 1):
                d = extra[:, j * 2 * k:(j + 1) * 2 * k]
                comps.append((self._mean(raw[:, :k] + d[:, :k]), self._log_scale(raw[:, k:] + d[:, k:]),
                              logits[:, (j + 1) * k:(j + 2) * k]))
            total = total + mixture_bits(groups[g], comps)
        return total

    def bits(self, latents):
        return sum(self.level_bits(level, z, kept) for level, (z, kept) in enumerate(latents))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/weights/idf-v7.safetensors"))
    p.add_argument("--mixtures", type=int, default=3)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batches", type=int, default=100, help="fixed training batches of 8 crops of 128x128")
    p.add_argument("--noisy", action="store_true", help="crops at full and half size, half with grain")
    p.add_argument("--save", type=Path, help="write the fine-tuned model (--mixtures 1 only)")
    p.add_argument("--data", type=Path, default=DEFAULT_TRAIN_DIR)
    p.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS_DIR)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    state, spec = load_state(args.model)
    net = IDF(IDFSpec.from_dict(spec))
    net.load_state_dict(state)
    for q in net.flows.parameters():
        q.requires_grad_(False)
    split = split_photos(args.data, args.photos)
    train = [read_rgb(q) for q in split.train]
    crops = (RandomCrops([train, downscaled(train, 2)], 128, 8, seed=1, noise_prob=0.5, noise_max=3)
             if args.noisy else RandomCrops(train, 128, 8, seed=1))
    held = [torch.from_numpy(np.ascontiguousarray(centre_crop(read_rgb(q), 256, 256).transpose(2, 0, 1)))[None]
            for q in split.held_out]
    held = [h for h in held if h.shape[-2:] == (256, 256)]
    with torch.no_grad():
        train_latents = [net.latents(crops()) for _ in range(args.batches)]
        held_latents = [net.latents(h) for h in held]
    probe = Probe(net, args.mixtures)

    def held_out() -> float:
        with torch.no_grad():
            return sum(float(probe.bits(lat)) for lat in held_latents) / sum(h.numel() for h in held)

    print(f"K {args.mixtures}: held-out {held_out():.4f} bpsp before", flush=True)
    opt = torch.optim.Adam(probe.parameters(), lr=args.lr)
    start = time.time()
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        loss = probe.bits(train_latents[step % len(train_latents)]) / (8 * 3 * 128 * 128)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"step {step} train {loss.item():.4f} bpsp, {time.time() - start:.0f} s", flush=True)
    print(f"K {args.mixtures}: held-out {held_out():.4f} bpsp after {args.steps} steps", flush=True)
    if args.save and args.mixtures == 1:
        torch.save({"model": net.state_dict(), "spec": net.spec.to_dict(), "step": args.steps}, args.save)


if __name__ == "__main__":
    main()
