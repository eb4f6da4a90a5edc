"""Exact integer form of the lossy model's entropy-parameter networks.

h_s and the slice networks run as float64 convolutions whose weights,
biases and inputs are integers; every sum stays far below 2^53, so the
result is exact whatever kernel, thread count or instruction set PyTorch
picks.  Rescaling is floor(x * 2^k + 1/2), exact too.  The codec derives
the latents' means and scale levels from these, bit for bit on any machine.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..quant import round_scaled
from .spec import LossySpec


class IntegerConvStack:
    """layers: dicts with integer 'weight', 'bias', 'stride', 'padding',
    'output_padding' (transposed if present)."""

    def __init__(self, layers: list[dict], spec: LossySpec, in_frac: int):
        self.layers, self.spec, self.in_frac = layers, spec, in_frac
        for layer in layers:
            layer["weight"] = torch.as_tensor(np.asarray(layer["weight"]), dtype=torch.float64)
            layer["bias"] = torch.as_tensor(np.asarray(layer["bias"]), dtype=torch.float64)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """x: integer-valued float64 at scale 2^-in_frac.  Returns the last
        layer's accumulator (integer-valued) and its scale exponent."""
        s = self.spec
        frac = self.in_frac
        for i, layer in enumerate(self.layers):
            if "output_padding" in layer:
                x = F.conv_transpose2d(x, layer["weight"], layer["bias"], layer["stride"],
                                       layer["padding"], layer["output_padding"])
            else:
                x = F.conv2d(x, layer["weight"], layer["bias"], layer["stride"], layer["padding"])
            if i < len(self.layers) - 1:
                x = torch.clamp(round_scaled(x, s.act_frac - s.weight_frac - frac), 0, s.act_max)
                frac = s.act_frac
        return x, s.weight_frac + frac


class IntegerEntropyParameters:
    """Hyper features from z_hat, then each slice's means and scale levels
    (and, with ``spec.checkerboard_channels``, each slice's context features
    from its decoded anchors)."""

    def __init__(self, spec: LossySpec, h_s: IntegerConvStack, slices: list[IntegerConvStack],
                 contexts: list[IntegerConvStack] | None = None):
        self.spec, self.h_s, self.slices, self.contexts = spec, h_s, slices, contexts

    def _act(self, y_hat: np.ndarray) -> torch.Tensor:
        """y_hat in 1/16 units (integers) at the networks' input scale 2^-act_frac."""
        s = self.spec
        return torch.as_tensor(y_hat, dtype=torch.float64) * 2.0**(s.act_frac - s.mean_frac)

    def context_features(self, i: int, anchors: np.ndarray) -> torch.Tensor:
        """anchors: slice i's y_hat (1/16 units) at the anchors, 0 elsewhere."""
        s = self.spec
        acc, frac = self.contexts[i](self._act(anchors))
        return torch.clamp(round_scaled(acc, s.act_frac - frac), 0, s.act_max)

    def hyper_features(self, z_hat: np.ndarray) -> torch.Tensor:
        s = self.spec
        acc, frac = self.h_s(torch.as_tensor(z_hat, dtype=torch.float64))
        return torch.clamp(round_scaled(acc, s.act_frac - frac), 0, s.act_max)

    def slice_params(self, i: int, feats: torch.Tensor, previous: list[np.ndarray],
                     quality_code: int, context: torch.Tensor | None = None):
        """previous: earlier slices' y_hat in 1/16 units (integers);
        quality_code: the header's quality x 1000; context: the slice's
        ``context_features`` (None: the anchors' pass, which reads zeros).
        Returns means (1/16 units) and levels, as int64 arrays."""
        s = self.spec
        prev = [self._act(p) for p in previous]
        b, _, h, w = feats.shape
        if s.checkerboard_channels:
            prev.append(context if context is not None else
                        torch.zeros((b, s.checkerboard_channels, h, w), dtype=torch.float64))
        if s.quality_input:
            prev.append(torch.full((b, 1, h, w), float(s.quality_feature(quality_code)),
                                   dtype=torch.float64))
        acc, frac = self.slices[i](torch.cat([feats] + prev, 1))
        mean_acc, scale_acc = acc.chunk(2, 1)
        means = torch.clamp(round_scaled(mean_acc, s.mean_frac - frac), -2**20, 2**20)
        offset = -s.log_scale_min * 2**s.log_scale_frac
        levels = torch.clamp(round_scaled(scale_acc, s.log_scale_frac - frac) + offset,
                             0, s.scale_levels - 1)
        return means.numpy().astype(np.int64), levels.numpy().astype(np.int64)
