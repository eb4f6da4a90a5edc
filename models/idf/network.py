"""Training-time form of the IDF (PyTorch, fake-quantized).

Data flow, for x (B,3,H,W) integers 0..255 (centred by -128)::

    level l = 1..L:  squeeze 2x2 -> couplings (integer shifts) with channel
                     reversals between them -> split: z_l (factored out) | y_l
    z_L is the last level's output.

    prior: p(z_L) per channel; p(z_l | y_l) from a small conv net on y_l,
           discretized logistics (means 1/16, 64 scale levels); with
           prior_groups > 1, z_l's channel groups in turn, each also
           conditioned on the groups before it; with prior_checkerboard,
           each group's non-anchor half also on its anchor half

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
from .spec import IDFSpec, anchors, group_rows


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
        return self.with_features(x)[1]

    def with_features(self, x):
        """(the last layer's input, the output): what a head added beside
        the last layer reads (``models.idf.mixture_probe``)."""
        s = self.spec
        h = clamp_ste(x, -s.input_clamp, s.input_clamp) / 64.0  # inputs at scale 2^-6
        frac = 6
        for i, layer in enumerate(self.layers):
            w = quantize_ste(layer.weight, s.weight_frac, -s.weight_max, s.weight_max)
            b = quantize_ste(layer.bias, s.weight_frac + frac, -s.bias_max, s.bias_max)
            out = F.conv2d(h, w, b, padding=layer.padding)
            if i < len(self.layers) - 1:
                h = quantize_ste(F.relu(out), s.act_frac, 0, s.act_max)
                frac = s.act_frac
        return h, out


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


def anchor_mask(height: int, width: int, device=None) -> torch.Tensor:
    """``spec.anchors`` as a tensor on ``device``."""
    return torch.from_numpy(anchors(height, width)).to(device)


class Prior(nn.Module):
    """Means and scale levels of a factored-out latent, from what is kept.

    With ``spec.prior_groups`` G > 1 the latent's channels are split into G
    groups coded in turn, and group g's network also sees groups 0..g-1
    (channel-autoregressive within the level): the channels of one level are
    strongly correlated, and a prior on the kept part alone codes them as if
    they were independent.  ``net`` is group 0's (None when there is nothing
    to condition on); ``group_nets[g-1]`` is group g's.

    With ``spec.prior_checkerboard`` each group is coded in two halves: its
    anchors (``anchor_mask``) as above, then the other positions from
    ``spatial_nets[g]``, which also sees the group's anchors, so each of them
    is predicted from its four decoded spatial neighbours as well."""

    def __init__(self, cin: int, cout: int, spec: IDFSpec):
        super().__init__()
        self.spec = spec
        groups = spec.prior_groups
        assert cout % groups == 0
        self.group_size = k = cout // groups
        self.net = Int8ConvNet(cin, 2 * k, spec.prior_hidden, spec) if cin else None
        self.group_nets = nn.ModuleList(Int8ConvNet(cin + g * k, 2 * k, spec.prior_hidden, spec)
                                        for g in range(1, groups))
        # group g's non-anchor half: what its anchor-half net sees, plus the group's anchors
        self.spatial_nets = nn.ModuleList(
            Int8ConvNet(cin + (g + 1) * k, 2 * k, spec.prior_hidden, spec)
            for g in range(groups)) if spec.prior_checkerboard else None
        self.bias = nn.Parameter(torch.zeros(2 * cout))
        with torch.no_grad():
            self.bias[cout:] = 3.0  # broad at first: latents start as raw pixels

    def group_raw(self, g: int, kept, previous: list, shape, anchors=None):
        """Group g's raw (mean, log-scale) outputs, (B, 2k, H, W), bias
        included; given the group's ``anchors`` (zero elsewhere), those of
        its non-anchor half."""
        bias = self.bias[group_rows(g, self.group_size, self.spec.prior_groups)]
        out = bias[None, :, None, None].expand(shape[0], -1, shape[2], shape[3])
        inputs = ([kept] if kept is not None else []) + list(previous)
        if anchors is not None:
            net, inputs = self.spatial_nets[g], inputs + [anchors]
        else:
            net = self.net if g == 0 else self.group_nets[g - 1]
        if net is not None:
            out = out + net(torch.cat(inputs, 1))
        return out

    def forward(self, kept, z):
        """Means and log-scales of every channel of z (the groups before each
        one taken from z itself, as the decoder will have them)."""
        s = self.spec
        k = self.group_size
        groups = list(z.chunk(s.prior_groups, 1))
        raws = [self.group_raw(g, kept, groups[:g], z.shape) for g in range(s.prior_groups)]
        if s.prior_checkerboard:
            mask = anchor_mask(z.shape[2], z.shape[3], z.device)
            raws = [torch.where(mask, raw, self.group_raw(g, kept, groups[:g], z.shape, groups[g] * mask))
                    for g, raw in enumerate(raws)]
        mean_raw = torch.cat([r[:, :k] for r in raws], 1)
        ls_raw = torch.cat([r[:, k:] for r in raws], 1)
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
            means, log_scales = prior(kept, z)
            bits = bits + logistic_bits(z, means, log_scales)
        return bits


def logistic_bits(z, means, log_scales):
    return -logistic_log_prob(z, means, log_scales).sum(dim=(1, 2, 3)) / math.log(2)


def logistic_log_prob(z, means, log_scales):
    """Natural log of each integer z's probability under its discretized logistic."""
    inv = torch.exp(-log_scales)
    c = z - means
    p = torch.sigmoid((c + 0.5) * inv) - torch.sigmoid((c - 0.5) * inv)
    log_pdf = c * inv - log_scales - 2 * F.softplus(c * inv)  # where p underflows
    return torch.where(p > 1e-6, torch.log(torch.clamp(p, min=1e-12)), log_pdf)
