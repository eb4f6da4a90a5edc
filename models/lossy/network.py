"""Training-time form of the lossy model (PyTorch).

Data flow, after Minnen & Singh 2020 (channel-wise autoregression) with
per-quality gains (Cui et al. 2021)::

    x --g_a--> y --x gain[q]--> y_s --h_a--> z --round--> z_hat (factorized logistic prior)
                                                  |
                                          h_s (integer) --> hyper features
    y_s split into slices y_1..y_S; for slice i:
        (mu_i, sigma_i) = slice_net_i(hyper features, y_hat_1..y_hat_{i-1})   (integer)
        y_hat_i = round(y_i - mu_i) + mu_i       (the residual is what gets coded)
    y_hat / gain[q] --g_s--> x_hat

The entropy-parameter networks (h_s and the slice networks) are
fake-quantized integer networks like the ARM's, so the decoder derives the
same means and scales on any machine; g_a, h_a and g_s run in float.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quant import clamp_ste, quantize_ste, round_ste
from .enhancer import Enhancer
from .spec import QUALITY_SCALE, LossySpec


class SimplifiedGDN(nn.Module):
    """y_i = x_i / (beta_i + sum_j gamma_ij |x_j|)  (Johnston et al. 2019);
    ``inverse=True`` multiplies instead (IGDN).  Cheaper than the square-root
    GDN and as good in their measurements."""

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels))

    def forward(self, x):
        norm = F.conv2d(x.abs(), self.gamma.abs()[:, :, None, None], self.beta.abs() + 1e-6)
        return x * norm if self.inverse else x / norm


def conv(cin, cout, k=5, stride=2):
    return nn.Conv2d(cin, cout, k, stride, k // 2)


def deconv(cin, cout, k=5, stride=2):
    return nn.ConvTranspose2d(cin, cout, k, stride, k // 2, output_padding=stride - 1)


class IntegerConvNet(nn.Module):
    """A stack of (transposed) convolutions with ReLU, fake-quantized at the
    ARM's grids: integer weights 2^-weight_frac, activations 2^-act_frac."""

    def __init__(self, layers: list[nn.Module], spec: LossySpec, in_frac: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.spec, self.in_frac = spec, in_frac

    def forward(self, x):
        s = self.spec
        frac = self.in_frac
        for i, layer in enumerate(self.layers):
            w = quantize_ste(layer.weight, s.weight_frac, -2**15 + 1, 2**15 - 1)
            b = round_ste(layer.bias * 2**(s.weight_frac + frac)) / 2**(s.weight_frac + frac)
            if isinstance(layer, nn.ConvTranspose2d):
                x = F.conv_transpose2d(x, w, b, layer.stride, layer.padding, layer.output_padding)
            else:
                x = F.conv2d(x, w, b, layer.stride, layer.padding)
            if i < len(self.layers) - 1:
                x = quantize_ste(F.relu(x), s.act_frac, 0, s.act_max)
                frac = s.act_frac
        return x


# the float networks' parts (stored as floating point; the rest are integer networks)
FLOAT_PARTS = ("g_a", "g_s", "h_a", "log_gain", "enhancer")


def anchor_mask(height: int, width: int, device=None) -> torch.Tensor:
    """(1, 1, H, W): 1 at the checkerboard's anchors, (row + col) even,
    which each slice codes first."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return ((rows + cols) % 2 == 0).float()[None, None]


class LossyAutoencoder(nn.Module):
    def __init__(self, spec: LossySpec = LossySpec()):
        super().__init__()
        self.spec = spec
        n, m, h = spec.n, spec.m, spec.hyper
        self.g_a = nn.Sequential(conv(3, n), SimplifiedGDN(n), conv(n, n), SimplifiedGDN(n),
                                 conv(n, n), SimplifiedGDN(n), conv(n, m))
        self.g_s = nn.Sequential(deconv(m, n), SimplifiedGDN(n, True), deconv(n, n),
                                 SimplifiedGDN(n, True), deconv(n, n), SimplifiedGDN(n, True),
                                 deconv(n, 3))
        self.h_a = nn.Sequential(conv(m, h, 3, 1), nn.ReLU(), conv(h, h), nn.ReLU(), conv(h, h))
        self.h_s = IntegerConvNet([deconv(h, h), deconv(h, h), conv(h, 2 * h, 3, 1)], spec, 0)
        sl = m // spec.slices
        # the slice networks run in exact float64 arithmetic at 1/16 resolution
        # when decoding (~3.7 GMAC/s on one core here): kept to ~0.2 M MAC a position
        q_in = 1 if spec.quality_input else 0
        ctx = spec.checkerboard_channels
        # inputs: hyper features, earlier slices, checkerboard context, quality
        self.slice_nets = nn.ModuleList(
            IntegerConvNet([conv(2 * h + i * sl + ctx + q_in, 64, 3, 1), conv(64, 64, 1, 1),
                            conv(64, 2 * sl, 3, 1)], spec, spec.act_frac)
            for i in range(spec.slices))
        if ctx:
            if spec.quantizer != "round":
                raise ValueError("the checkerboard context needs the 'round' quantizer")
            self.context_nets = nn.ModuleList(
                IntegerConvNet([conv(sl, ctx, 5, 1)], spec, spec.act_frac) for _ in range(spec.slices))
        self.enhancer = (Enhancer(spec.enhancer_channels, spec.enhancer_layers, spec.qualities)
                         if spec.enhancer_channels else None)
        # per-quality gains on the latent (log-parameterised) and the z prior's log-scales
        self.log_gain = nn.Parameter(torch.zeros(spec.qualities, m))
        self.z_log_scale = nn.Parameter(torch.zeros(h))
        if spec.quantizer == "codebook":
            self.codebook = LearnedCodebook(spec.codebook_size)
        elif spec.quantizer != "round":
            raise ValueError(f"unknown quantizer {spec.quantizer!r}")

    # -- pieces shared with the codec ------------------------------------------
    def gains(self, quality: torch.Tensor) -> torch.Tensor:
        """(B, M, 1, 1) gains for qualities in 1..Q (fractional: geometric interpolation)."""
        q = torch.clamp(quality.float() - 1, 0, self.spec.qualities - 1)
        lo = torch.floor(q).long().clamp(max=self.spec.qualities - 2)
        t = (q - lo)[:, None]
        g = self.log_gain[lo] * (1 - t) + self.log_gain[lo + 1] * t
        return torch.exp(g)[:, :, None, None]

    def enhanced(self, x_hat, quality):
        """The synthesis ``x_hat`` through the enhancer, if the model has one."""
        return x_hat if self.enhancer is None else self.enhancer(x_hat, quality)

    def hyper_features(self, z_hat):
        """Integer-valued features at scale 2^-act_frac (clipped ReLU of h_s)."""
        s = self.spec
        return quantize_ste(F.relu(self.h_s(z_hat)), s.act_frac, 0, s.act_max)

    def quality_channel(self, quality, like):
        """(B, 1, H, W) constant channel of ``spec.quality_feature`` (at the
        slice networks' input scale) for the slice networks' quality input."""
        s = self.spec
        feature = s.quality_feature(torch.round(quality.double() * QUALITY_SCALE).long())
        value = (feature.to(like.dtype) / 2**s.act_frac)[:, None, None, None]
        return value.expand(like.shape[0], 1, like.shape[2], like.shape[3])

    def slice_params(self, i, feats, previous, quality=None, context=None):
        """Means (grid 1/16) and scale levels of slice i (``quality``: (B,)
        qualities, read by models with ``spec.quality_input``; ``context``:
        ``context_features`` of the slice's anchors, or None for the anchors
        themselves, which read zeros there)."""
        s = self.spec
        extra = []
        if s.checkerboard_channels:
            extra.append(context if context is not None else feats.new_zeros(
                feats.shape[0], s.checkerboard_channels, *feats.shape[2:]))
        if s.quality_input:
            extra.append(self.quality_channel(quality, feats))
        inp = torch.cat([feats] + [p * 1.0 for p in previous] + extra, 1)
        out = self.slice_nets[i](inp)
        mean_raw, scale_raw = out.chunk(2, 1)
        means = quantize_ste(mean_raw, s.mean_frac, -2**20, 2**20)
        levels = clamp_ste(round_ste((scale_raw - s.log_scale_min) * 2**s.log_scale_frac),
                           0, s.scale_levels - 1)
        return means, levels

    def context_features(self, i, anchors):
        """Slice i's checkerboard context: integer-valued features at scale
        2^-act_frac from ``anchors``, the slice's y_hat at the anchor positions
        and zero elsewhere."""
        s = self.spec
        return quantize_ste(F.relu(self.context_nets[i](anchors)), s.act_frac, 0, s.act_max)

    def checkerboard_params(self, i, feats, previous, quality, y_i):
        """Slice i's means and levels with its checkerboard context: the
        anchors' from a pass without it, the others' from a pass that reads
        the anchors' rounded values, as the decoder will have them."""
        anchor = anchor_mask(*y_i.shape[2:], y_i.device)
        means_a, levels_a = self.slice_params(i, feats, previous, quality)
        anchors = (round_ste(y_i - means_a) + means_a) * anchor
        means_n, levels_n = self.slice_params(i, feats, previous, quality,
                                              self.context_features(i, anchors))
        return (means_a * anchor + means_n * (1 - anchor),
                levels_a * anchor + levels_n * (1 - anchor))

    def scales(self, levels):
        s = self.spec
        return torch.exp(s.log_scale_min + levels / 2**s.log_scale_frac)

    def z_levels(self):
        """Scale level of each hyper-latent channel's (zero-mean Gaussian) prior."""
        s = self.spec
        return clamp_ste(round_ste((self.z_log_scale - s.log_scale_min) * 2**s.log_scale_frac),
                         0, s.scale_levels - 1)

    # -- training --------------------------------------------------------------
    def forward(self, x, quality):
        """x: (B,3,H,W) floats in [0,1]; returns x_hat, bits of y, bits of z."""
        s = self.spec
        gain = self.gains(quality)
        y = self._transform(self.g_a, x) * gain
        z = self.h_a(y)
        z_noisy = self._noisy(z)
        z_bits = _gaussian_bits(z_noisy, torch.zeros_like(z),
                                self.scales(self.z_levels())[None, :, None, None])
        z_hat = round_ste(z)
        feats = self.hyper_features(z_hat)
        y_slices = y.chunk(s.slices, 1)
        y_hats, y_bits = [], 0.0
        for i, y_i in enumerate(y_slices):
            if s.checkerboard_channels:
                means, levels = self.checkerboard_params(i, feats, y_hats, quality, y_i)
            else:
                means, levels = self.slice_params(i, feats, y_hats, quality)
            # (the 1/16 grid of y_hat means previous slices arrive as integers at scale 2^-4;
            #  the integer slice nets take them at their act scale: see the codec)
            if s.quantizer == "codebook":
                r_hat, bits = self.codebook(y_i - means, self.scales(levels))
                y_bits = y_bits + bits
                y_hats.append(r_hat + means)
                continue
            noisy = self._noisy(y_i - means) + means
            y_bits = y_bits + _gaussian_bits(noisy, means, self.scales(levels))
            y_hats.append(round_ste(y_i - means) + means)
        y_hat = torch.cat(y_hats, 1)
        if s.quantizer == "round" and not any(p.requires_grad for p in self.g_s.parameters()):
            # the entropy model alone is training: rounded straight through, y_hat's
            # gradient with respect to the means is zero, so skip g_s's backward
            y_hat = y_hat.detach()
        x_hat = self.enhanced(self._transform(self.g_s, y_hat / gain), quality)
        return x_hat, y_bits, z_bits

    # training-time choice, not part of the spec: the rate of rounded values
    # with straight-through gradients instead of the uniform-noise proxy
    hard_rate = False
    # training-time choice: run the transforms' inner layers in bfloat16
    transform_bfloat16 = False

    def _transform(self, net: nn.Sequential, v):
        """g_a or g_s, with (``transform_bfloat16``, training only) every layer
        but the last under CPU bfloat16 autocast.  Why: on CPUs with AMX
        (this machine's) a training step takes about half the time.  The
        last layer stays float32 so y, whose rounding the rate depends on,
        and x_hat, whose error is the distortion, carry full precision; the
        codec always runs float32."""
        if not (self.training and self.transform_bfloat16):
            return net(v)
        return inner_bfloat16(net, v)

    def _noisy(self, v):
        """Training: v plus uniform noise, the differentiable proxy of rounding
        (or, with ``hard_rate``, v rounded with straight-through gradients:
        the rate the codec will pay; lossy-v4, lossy-v5 and lossy-v6 were trained on it).
        Evaluation: v rounded, so held-out rates are those of the real codes."""
        if self.training and not self.hard_rate:
            return v + torch.empty_like(v).uniform_(-0.5, 0.5)
        return round_ste(v)


def inner_bfloat16(net: nn.Sequential, v):
    """``net(v)`` with every layer but the last under bfloat16 autocast: the
    last stays float32, so what it gives (latents to round, pixels to
    measure) carries full precision.  Training's transforms
    (``transform_bfloat16``) and the codec's latent refinement use it."""
    with torch.autocast(v.device.type, dtype=torch.bfloat16):
        inner = net[:-1](v)
    return net[-1](inner.float())


class LearnedCodebook(nn.Module):
    """Scalar quantization to the nearest of L learned values (soft-to-hard
    quantization, Agustsson et al. 2017): hard assignment forward, softmax
    assignment for the gradients.  Each value's probability is the mass of the
    residual's Gaussian over its cell (between the midpoints to its
    neighbours), so the rate is differentiable in the codebook, the scale and,
    through the soft assignment, the residual."""

    def __init__(self, size: int, temperature: float = 4.0):
        super().__init__()
        self.values = nn.Parameter(torch.arange(size, dtype=torch.float32) - size // 2)
        self.temperature = temperature

    def forward(self, r, scales):
        c, _ = torch.sort(self.values)
        d2 = (r[..., None] - c) ** 2
        soft_w = torch.softmax(-self.temperature * d2, dim=-1)
        hard = torch.argmin(d2, dim=-1)
        r_soft = (soft_w * c).sum(-1)
        r_hard = c[hard]
        r_hat = r_soft + (r_hard - r_soft).detach()
        mid = (c[1:] + c[:-1]) / 2
        inf = c.new_full((1,), 1e4)
        edges = torch.cat([-inf, mid, inf])
        cdf = torch.special.ndtr(edges / scales[..., None])        # (..., L+1)
        p = torch.clamp(cdf[..., 1:] - cdf[..., :-1], min=1e-9)
        w = soft_w + (F.one_hot(hard, c.numel()).to(soft_w) - soft_w).detach()
        bits = -(w * torch.log2(p)).sum(-1)
        return r_hat, bits.sum(dim=(1, 2, 3))


def _gaussian_bits(v, means, scales):
    c = v - means
    upper = torch.special.ndtr((c + 0.5) / scales)
    lower = torch.special.ndtr((c - 0.5) / scales)
    p = torch.clamp(upper - lower, min=1e-9)
    return -torch.log2(p).sum(dim=(1, 2, 3))
