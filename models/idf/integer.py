"""Exact integer form of the IDF.

Every network of the flow and of its priors has 8-bit integer weights,
8-bit activations, inputs clamped to +-255 and biases below 2^20, so every
partial sum of a convolution is an integer below 2^24: float32 represents
all of them exactly and any summation order gives the same result.  The fast
float32 convolution is used and its output checked to be integral (a
transform-based algorithm such as Winograd would not be); if it is not, the
layer is recomputed in float64, which is exact for these sizes regardless.
Rescaling is floor(x * 2^k + 1/2).  So ``round(t(x))`` is the same integer
at encode and decode on any machine, and the flow inverts exactly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..quant import round_scaled, round_scaled_
from .network import anchor_mask, group_rows, squeeze, unsqueeze
from .spec import IDFSpec

INPUT_FRAC = 6  # network inputs enter at scale 2^-6: the integer is the latent


def exact_conv(x: torch.Tensor, w32: torch.Tensor, b32: torch.Tensor, padding: int) -> torch.Tensor:
    out = F.conv2d(x, w32, b32, padding=padding)
    if not torch.equal(out, torch.round(out)):
        out = F.conv2d(x.double(), w32.double(), b32.double(), padding=padding).float()
    return out


class IntegerNet:
    """The integer Int8ConvNet: returns the last layer's accumulator and its
    scale exponent (value = acc * 2^-frac)."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray, int]], spec: IDFSpec):
        self.spec = spec
        self.layers = [(torch.as_tensor(w, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), p)
                       for w, b, p in layers]
        bound = spec.input_clamp
        for w, b, _ in self.layers:
            total = bound * float(w.abs().sum(dim=(1, 2, 3)).max()) + float(b.abs().max())
            if total >= 2**24:
                raise ValueError("IDF weights exceed the exact float32 range")
            bound = spec.act_max

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        s = self.spec
        h = torch.clamp(x, -s.input_clamp, s.input_clamp)
        frac = INPUT_FRAC
        for i, (w, b, pad) in enumerate(self.layers):
            acc = exact_conv(h, w, b, pad)
            if i == len(self.layers) - 1:
                return acc, s.weight_frac + frac
            h = round_scaled_(acc, s.act_frac - s.weight_frac - frac).clamp_(0, s.act_max)
            frac = s.act_frac


class IntegerCoupling:
    def __init__(self, parts: int, nets: dict[int, IntegerNet]):
        self.parts, self.nets = parts, nets
        self.updated = sorted(nets)

    def _shift(self, i, parts):
        others = torch.cat([q for j, q in enumerate(parts) if j != i], 1)
        acc, frac = self.nets[i](others)
        return round_scaled_(acc, -frac)

    def forward(self, x):
        parts = list(x.chunk(self.parts, 1))
        for i in self.updated:
            parts[i] = parts[i] + self._shift(i, parts)
        return torch.cat(parts, 1)

    def inverse(self, y):
        parts = list(y.chunk(self.parts, 1))
        for i in reversed(self.updated):
            parts[i] = parts[i] - self._shift(i, parts)
        return torch.cat(parts, 1)


class IntegerPrior:
    """Means (1/2^mean_frac units) and scale levels of a factored-out latent,
    group by group (``IDFSpec.prior_groups``) and, with a checkerboard prior,
    half by half within a group (the training ``Prior``)."""

    def __init__(self, nets: list[IntegerNet | None], bias: np.ndarray, spec: IDFSpec,
                 spatial: list[IntegerNet] | None = None):
        self.nets, self.spatial, self.spec = nets, spatial, spec
        self.groups = len(nets)
        self.group_size = len(bias) // (2 * self.groups)
        bias = torch.as_tensor(bias, dtype=torch.float32)  # integers at the output scale
        self.group_bias = [bias[group_rows(g, self.group_size, self.groups)] for g in range(self.groups)]

    def group(self, g: int, kept, previous: list, shape, anchors=None):
        """Group g's (means, levels), each (B, k, H, W) int64 numpy, given the
        kept part (or None) and the groups before it; given also the group's
        ``anchors`` (zero elsewhere), those of its non-anchor half."""
        s = self.spec
        frac = s.weight_frac + s.act_frac  # the prior net's output scale
        acc = self.group_bias[g][None, :, None, None].expand(shape[0], -1, shape[2], shape[3])
        inputs = ([kept] if kept is not None else []) + list(previous)
        net = self.nets[g]
        if anchors is not None:
            net, inputs = self.spatial[g], inputs + [anchors]
        if net is not None:
            out, frac2 = net(torch.cat(inputs, 1))
            assert frac2 == frac
            acc = acc + out
        mean_acc, ls_acc = acc.chunk(2, 1)
        # mean = 2^mean_gain_log2 * raw in latent units, on a 2^-mean_frac grid
        means = torch.clamp(round_scaled(mean_acc, s.mean_gain_log2 + s.mean_frac - frac),
                            -2**20, 2**20)
        offset = -s.log_scale_min * 2**s.log_scale_frac
        levels = torch.clamp(round_scaled(ls_acc, s.log_scale_frac - frac) + offset,
                             0, s.log_scale_levels - 1)
        return means.to(torch.int64).numpy(), levels.to(torch.int64).numpy()

    def __call__(self, kept, z):
        """(means, levels) of every channel of z, each group conditioned on
        the groups of z before it, and each non-anchor half on its anchors
        (the encoder's view: z is known)."""
        parts = list(z.chunk(self.groups, 1))
        out = [self.group(g, kept, parts[:g], z.shape) for g in range(self.groups)]
        if self.spatial is not None:
            mask = anchor_mask(z.shape[2], z.shape[3])
            rest = [self.group(g, kept, parts[:g], z.shape, parts[g] * mask) for g in range(self.groups)]
            keep = mask.numpy()
            out = [(np.where(keep, m, m2), np.where(keep, l, l2)) for (m, l), (m2, l2) in zip(out, rest)]
        return np.concatenate([m for m, _ in out], 1), np.concatenate([l for _, l in out], 1)


class IntegerIDF:
    def __init__(self, spec: IDFSpec, flows: list[list[IntegerCoupling]], priors: list[IntegerPrior]):
        self.spec, self.flows, self.priors = spec, flows, priors

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """x: (1,3,H,W) integer-valued float32, H and W multiples of 2^levels.
        Returns [(z_l, kept_l)] finest first, as the training network does."""
        h = x - 128.0
        out = []
        for level, couplings in enumerate(self.flows):
            h = squeeze(h)
            for c in couplings:
                h = c.forward(h).flip(1)
            if level == len(self.flows) - 1:
                out.append((h, None))
            else:
                z, h = h.chunk(2, 1)
                out.append((z, h))
        return out

    def inverse_level(self, level: int, h: torch.Tensor) -> torch.Tensor:
        """Undo one level: from its full output (z and kept concatenated) to
        the kept part of the level before (or the image, centred)."""
        for c in reversed(self.flows[level]):
            h = c.inverse(h.flip(1))
        return unsqueeze(h)
