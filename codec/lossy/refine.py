"""Encode-time latent refinement: the latents of this image, not the
analysis transform's guess at them.

g_a is a network trained to map any photograph to good latents; for one
given image, better latents exist (the amortisation gap).  The encoder looks
for them by gradient descent on the loss the codec pays,

    bits(z, y) / pixels + lambda(quality) * 255^2 * MSE(x, g_s(y_hat)),

through a differentiable copy of the shipped entropy model (its integer
weights as floats) and synthesis, starting from g_a's y and h_a's z.
Rounding is relaxed by stochastic Gumbel annealing (Yang, Bamler & Mandt
2020): each residual is soft-rounded to its floor or ceiling, with
probabilities that sharpen as the temperature falls to zero, so the loss
ends on the rounded values the codec will code.  The step size falls
linearly too.  If the refined latents' loss (rounded) is not below the
starting one, the encoder keeps the start.

The decoder will post-filter the synthesis (``codec/lossy/postfilter.py``)
when the encoder sends a filter, so the distortion the search lowers is the
filtered one: a guide filter, fitted to the starting latents' synthesis
(on a quarter of its rows: it only steers), sits fixed after g_s in the
loss.  Without it the search spends itself on what the filter does anyway
(sharpening): on held-out crops its gain over effort 4 fell from 1.8 to 0.8
BD-rate points once the filter came.  The file's own filter is fitted
afterwards, to the refined latents.

Only the encoder runs this: the file holds the refined y and z coded as
usual, so the decoder and its cost are unchanged and files written with
or without refinement decode alike.  The number of steps is the effort's
(``steps_for_effort``); Gumbel noise comes from a seeded generator, so an
encode repeats on the same machine.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from codec.adam import Adam
from codec.lossy.postfilter import FilterFit, PostFilter
from models.lossy.export import float_state
from models.lossy.network import (
    LossyAutoencoder,
    _gaussian_bits,
    anchor_mask,
    inner_bfloat16,
)
from models.quant import round_ste

# effort -> steps of refinement (efforts below 5 take g_a's latents as they are)
_STEPS = {5: 2, 6: 4, 7: 8, 8: 30, 9: 150}
LEARNING_RATE = 0.02     # Adam, on y and z (latent units), falling linearly to 0
TEMPERATURE = 0.5        # of the soft rounding at the first step, falling linearly to 0
SEED = 0


def steps_for_effort(effort: int) -> int:
    return _STEPS.get(effort, 0)


class LatentRefiner:
    """A differentiable copy of a lossy codec's model: the float network
    behind its weights (``float_state``), whose entropy-parameter networks
    are fake-quantized at the grids the codec computes on.  Its means and
    scales are the codec's up to float32 rounding, which matters only for
    the search, never for the file."""

    def __init__(self, weights_tensors: dict, spec, coder):
        self.spec, self.coder = spec, coder
        net = self.net = LossyAutoencoder(spec).eval()
        net.load_state_dict(float_state(weights_tensors, spec.to_dict()))
        for p in net.parameters():
            p.requires_grad_(False)
        # channels-last convolutions: the synthesis' backward pass, most of a
        # step's time, runs about 1.5x faster this way on this machine's CPUs
        net.g_s.to(memory_format=torch.channels_last)
        with torch.no_grad():
            self.z_scales = net.scales(net.z_levels())[None, :, None, None]

    def loss(self, x, valid, y, z, quality: float, rounding, guide: PostFilter | None = None,
             synthesis: list | None = None):
        """The loss of latents y and z for image x (1, 3, H, W) in 0..1,
        ``valid`` (1, 1, H, W) marking the pixels that are the image's (not
        padding); ``rounding`` maps residuals to (soft-)rounded ones;
        ``guide`` filters the synthesis before its distortion is measured.
        The synthesis (unfiltered) is appended to ``synthesis`` if given."""
        net, s = self.net, self.spec
        q = torch.tensor([quality], dtype=torch.float32)
        z_bits = _gaussian_bits(rounding(z), torch.zeros_like(z), self.z_scales).sum()
        feats = net.hyper_features(round_ste(z))
        y_hats, y_bits = [], 0.0
        for i, y_i in enumerate(y.chunk(s.slices, 1)):
            means, levels = net.slice_params(i, feats, y_hats, q)
            if s.checkerboard_channels:
                anchor = anchor_mask(*y_i.shape[2:])
                anchors = (rounding(y_i - means) + means) * anchor
                means_n, levels_n = net.slice_params(i, feats, y_hats, q,
                                                     net.context_features(i, anchors))
                means = means * anchor + means_n * (1 - anchor)
                levels = levels * anchor + levels_n * (1 - anchor)
            y_hat_i = rounding(y_i - means) + means
            y_bits = y_bits + _gaussian_bits(y_hat_i, means, net.scales(levels)).sum()
            y_hats.append(y_hat_i)
        y_hat = torch.cat(y_hats, 1) / net.gains(q)
        # the synthesis' inner layers in bfloat16: about 7 % faster a step
        # here, for gradients that only guide the search
        x_hat = inner_bfloat16(net.g_s, y_hat.contiguous(memory_format=torch.channels_last))
        x_hat = net.enhanced(x_hat, q)
        if synthesis is not None:
            synthesis.append(x_hat)
        if guide is not None:
            x_hat = _filtered(guide, x_hat)
        pixels = valid.sum()
        mse = (((x_hat - x) ** 2) * valid).sum() / (3 * pixels)
        return (y_bits + z_bits) / pixels + s.lam(quality) * 255**2 * mse

    def refine(self, x: torch.Tensor, valid: torch.Tensor, y: torch.Tensor, quality: float,
               steps: int, guide_radius: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, z) for image x from g_a's latents ``y`` after ``steps`` steps,
        the distortion measured through a guide filter of at most
        ``guide_radius`` (0: none)."""
        with torch.no_grad():
            z = self.net.h_a(y)
            start = []
            start_loss = self.loss(x, valid, y, z, quality, torch.round, synthesis=start)
            guide = self._guide(x, valid, start[0], quality, guide_radius)
            if guide is not None:
                start_loss = self.loss(x, valid, y, z, quality, torch.round, guide)
        y_var = y.clone().requires_grad_(True)
        z_var = z.clone().requires_grad_(True)
        opt = Adam([y_var, z_var], lr=LEARNING_RATE)
        gen = torch.Generator().manual_seed(SEED)
        for k in range(steps):
            left = 1 - k / steps
            opt.lr = LEARNING_RATE * left
            tau = TEMPERATURE * left + 1e-3
            loss = self.loss(x, valid, y_var, z_var, quality,
                             lambda v, tau=tau: soft_round(v, tau, gen), guide)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            end_loss = self.loss(x, valid, y_var, z_var, quality, torch.round, guide)
        if end_loss >= start_loss:
            return y, z
        return y_var.detach(), z_var.detach()

    def _guide(self, x, valid, x_hat, quality: float, radius: int) -> PostFilter | None:
        """The post-filter of the starting synthesis ``x_hat`` (1, 3, H, W,
        0..1), fitted on every fourth band of rows of the image's pixels."""
        if radius == 0:
            return None
        rows, cols = (int(valid[0, 0, :, 0].sum()), int(valid[0, 0, 0, :].sum()))
        fit = FilterFit(radius)
        pixels = F.pad(x_hat.float() * 255, (fit.border,) * 4, mode="replicate")[0].double().numpy()
        original = (x[0, :, :rows, :cols] * 255).round().permute(1, 2, 0).to(torch.uint8).numpy()
        fit.add(pixels, original, every=4)
        return fit.choose(self.spec.lam(quality), self.coder, max_classes=1)


def _filtered(f: PostFilter, x_hat: torch.Tensor) -> torch.Tensor:
    """``f`` (one class: the guide) applied to a synthesis in 0..1, differentiably, in float32."""
    padded = F.pad(x_hat.float() * 255, (f.radius,) * 4, mode="replicate")
    return f.convolve(padded) / 255


def soft_round(v: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """Stochastic Gumbel annealing: v relaxed towards its floor or its
    ceiling, weighted by a Gumbel-softmax sample at temperature ``tau`` of
    logits -atanh(distance) / tau that favour the nearer one (as the
    paper's relaxed one-hot categorical)."""
    lower = torch.floor(v).detach()
    eps = 1e-5
    d = v - lower
    logits = torch.stack([-torch.atanh(torch.clamp(d, eps, 1 - eps)),
                          -torch.atanh(torch.clamp(1 - d, eps, 1 - eps))], -1) / tau
    u = torch.rand(logits.shape, generator=gen).clamp_(1e-10, 1 - 1e-10)
    w = F.softmax((logits - torch.log(-torch.log(u))) / tau, -1)
    return lower + w[..., 1]
