"""Training-time form of the IDF (PyTorch, fake-quantized).

Data flow, for x (B,3,H,W) integers 0..255 (centred by -128)::

    level l = 1..L:  squeeze 2x2 -> couplings (integer shifts) with channel
                     reversals between them -> split: z_l (factored out) | y_l
    z_L is the last level's output.

    prior: p(z_L) per channel; p(z_l | y_l) from a small conv net on y_l,
           discretized logistics (means 1/16, 64 scale levels)

A coupling shifts part of the channels by ``round(t(other parts))``:
bipartite ``x_b += round(t(x_a))``; quadripartite updates four parts in turn,
each from the other three (Tomczak 2021).  Rounding uses the straight-through
estimator; the inverse subtracts the same integers.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quant import clamp_ste, quantize_ste, round_ste
from .spec import IDFSpec


def squeeze(x):
    return F.pixel_unshuffle(x, 2)


def unsqueeze(x):
    return F.pixel_shuffle(x, 2)


class Int8ConvNet(nn.Module):
    """conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3, fake-quantized to 8-bit
    weights and activations; inputs are integers clamped to +-input_clamp and
    enter at scale 2^-6 (so the integer input is the latent itself)."""

    def __init__(self, cin: int, cout: int, hidden: int, spec: IDFSpec):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList([nn.Conv2d(cin, hidden, 3, padding=1),
                                     nn.Conv2d(hidden, hidden, 1),
                                     nn.Conv2d(hidden, cout, 3, padding=1)])
        with torch.no_grad():  # start as the identity flow: zero shifts
            self.layers[-1].weight.zero_()
            self.layers[-1].bias.zero_()

    def forward(self, x):
        s = self.spec
        h = clamp_ste(x, -s.input_clamp, s.input_clamp) / 64.0  # inputs at scale 2^-6
        frac = 6
        for i, layer in enumerate(self.layers):
            w = quantize_ste(layer.weight, s.weight_frac, -s.weight_max, s.weight_max)
            b = quantize_ste(layer.bias, s.weight_frac + frac, -s.bias_max, s.bias_max)
            h = F.conv2d(h, w, b, padding=layer.padding)
            if i < len(self.layers) - 1:
                h = quantize_ste(F.relu(h), s.act_frac, 0, s.act_max)
                frac = s.act_frac
        return h


class Coupling(nn.Module):
    def __init__(self, channels: int, spec: IDFSpec):
        super().__init__()
        p = spec.partitions
        assert channels % p == 0
        self.parts = p
        size = channels // p
        updated = range(1, p) if p == 2 else range(p)
        self.updated = list(updated)
        self.nets = nn.ModuleDict({str(i): Int8ConvNet(channels - size, size, spec.hidden, spec)
                                   for i in self.updated})

    def forward(self, x):
        parts = list(x.chunk(self.parts, 1))
        for i in self.updated:
            others = torch.cat([q for j, q in enumerate(parts) if j != i], 1)
            parts[i] = parts[i] + round_ste(self.nets[str(i)](others))
        return torch.cat(parts, 1)


class Prior(nn.Module):
    """Means and scale levels of a factored-out latent, from what is kept."""

    def __init__(self, cin: int, cout: int, spec: IDFSpec):
        super().__init__()
        self.spec = spec
        self.net = Int8ConvNet(cin, 2 * cout, spec.prior_hidden, spec) if cin else None
        self.bias = nn.Parameter(torch.zeros(2 * cout))
        with torch.no_grad():
            self.bias[cout:] = 3.0  # broad at first: latents start as raw pixels

    def forward(self, kept, shape):
        s = self.spec
        out = self.bias[None, :, None, None].expand(shape[0], -1, shape[2], shape[3])
        if self.net is not None:
            out = out + self.net(kept)
        mean_raw, ls_raw = out.chunk(2, 1)
        means = quantize_ste(mean_raw * 2**s.mean_gain_log2, s.mean_frac, -2**20, 2**20)
        levels = clamp_ste(round_ste((ls_raw - s.log_scale_min) * 2**s.log_scale_frac),
                           0, s.log_scale_levels - 1)
        return means, s.log_scale_min + levels / 2**s.log_scale_frac


class IDF(nn.Module):
    def __init__(self, spec: IDFSpec = IDFSpec()):
        super().__init__()
        self.spec = spec
        self.flows, self.priors = nn.ModuleList(), nn.ModuleList()
        c = 3
        for level in range(spec.levels):
            c *= 4
            self.flows.append(nn.ModuleList(Coupling(c, spec) for _ in range(spec.couplings)))
            last = level == spec.levels - 1
            z_c = c if last else c // 2
            self.priors.append(Prior(0 if last else c - z_c, z_c, spec))
            c -= z_c

    def latents(self, x):
        """[(z_l, kept_l)] from the finest level to the coarsest."""
        h = x.float() - 128.0
        out = []
        for level, couplings in enumerate(self.flows):
            h = squeeze(h)
            for coupling in couplings:
                h = coupling(h).flip(1)  # channel reversal between couplings
            if level == self.spec.levels - 1:
                out.append((h, None))
            else:
                z, h = h.chunk(2, 1)
                out.append((z, h))
        return out

    def forward(self, x):
        """Code length of x in bits, per image (B,)."""
        bits = 0.0
        for prior, (z, kept) in zip(self.priors, self.latents(x)):
            means, log_scales = prior(kept, z.shape)
            bits = bits + _logistic_bits(z, means, log_scales)
        return bits


def _logistic_bits(z, means, log_scales):
    inv = torch.exp(-log_scales)
    c = z - means
    p = torch.sigmoid((c + 0.5) * inv) - torch.sigmoid((c - 0.5) * inv)
    log_pdf = c * inv - log_scales - 2 * F.softplus(c * inv)  # where p underflows
    logp = torch.where(p > 1e-6, torch.log(torch.clamp(p, min=1e-12)), log_pdf)
    return -logp.sum(dim=(1, 2, 3)) / math.log(2)
