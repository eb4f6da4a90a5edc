"""Training-time form of the ARM (PyTorch, float32, fake-quantized).

Data flow, for an image x (B, 3, H, W) of integers 0..255::

    c = (x - 128) / 64 --masked conv (neighbourhood)--> ReLU --1x1--> ReLU ...
        --1x1 (+ linear skip from c)--> per subpixel, per mixture: logit, mean, log-scale, and the
                 coefficients that shift G by R and B by R and G

The loss is the exact discretized-logistic-mixture code length in bits.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quant import clamp_ste, quantize_ste, round_ste
from .spec import ARMSpec

FIELDS = 12  # logit RGB, mean RGB, log-scale RGB, coeffs G|R, B|R, B|G


class ARMNetwork(nn.Module):
    def __init__(self, spec: ARMSpec = ARMSpec()):
        super().__init__()
        self.spec = spec
        # Hidden-layer fake quantization is fine-grained (weights 2^-10,
        # activations 2^-8) and costs most of a training step; training runs
        # in float and switches it on for the final steps.  Output grids are
        # always applied.
        self.fake_quant = True
        # how outputs are clamped to their grids' ranges (``output_grids``)
        self.output_bound = clamp_ste
        nb = spec.neighbourhood
        self.dy_min = min(dy for dy, _ in nb)
        self.dx_min = min(dx for _, dx in nb)
        self.dx_max = max(dx for _, dx in nb)
        n_in = len(nb)
        c = spec.channels
        bound = 1 / math.sqrt(n_in * c)
        # first layer weights stored per neighbourhood entry: (hidden, channels, len(nb))
        self.w_in = nn.Parameter(torch.empty(spec.hidden, c, n_in).uniform_(-bound, bound))
        self.b_in = nn.Parameter(torch.zeros(spec.hidden))
        self.hidden_layers = nn.ModuleList(
            nn.Linear(spec.hidden, spec.hidden) for _ in range(spec.hidden_layers - 1)
        )
        self.head = nn.Linear(spec.hidden, spec.outputs)
        # linear path from the context straight to the head: a linear predictor
        # is then one step away, and the hidden layers learn the corrections
        self.skip = nn.Linear(n_in * c, spec.outputs, bias=False)
        nn.init.zeros_(self.skip.weight)
        self._init_as_left_predictor()

    def _init_as_left_predictor(self) -> None:
        """Start from a classic predictor so training refines rather than
        discovers it: R from the left R, G from the left G - R plus this R,
        B from the left B - G plus this G; moderate scales (e^1)."""
        s, k = self.spec, self.spec.mixtures
        nb = list(s.neighbourhood)
        if (0, -1) not in nb:
            return
        left = nb.index((0, -1)) * s.channels
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            bias = self.head.bias.view(FIELDS, k)
            bias.zero_()
            bias[6:9] = 1.0            # log-scales
            bias[9] = 1.0              # G|R coefficient
            bias[11] = 1.0             # B|G coefficient
            w = self.skip.weight.view(FIELDS, k, -1)
            w[3, :, left + 0] = 1.0                                  # mean R
            w[4, :, left + 1], w[4, :, left + 0] = 1.0, -1.0         # mean G
            w[5, :, left + 2], w[5, :, left + 1] = 1.0, -1.0         # mean B

    # -- quantized parameters -------------------------------------------------
    def _qw(self, w: torch.Tensor) -> torch.Tensor:
        s = self.spec
        if not self.fake_quant:
            return w
        return quantize_ste(w, s.weight_frac, -s.weight_max, s.weight_max)

    def _qb(self, b: torch.Tensor, in_frac: int) -> torch.Tensor:
        frac = self.spec.weight_frac + in_frac
        if not self.fake_quant:
            return b
        return round_ste(b * 2**frac) / 2**frac

    def _qact(self, z: torch.Tensor) -> torch.Tensor:
        s = self.spec
        if not self.fake_quant:
            return torch.clamp(z, 0, s.act_max / 2**s.act_frac)
        return quantize_ste(F.relu(z), s.act_frac, 0, s.act_max)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """Causal context (B, H, W, len(nb) * channels), ordered (offset, channel),
        at the input scale; outside the image the value is pixel 128."""
        s = self.spec
        h = (x.float() - 128.0) / 2**s.input_frac
        top, left, right = -self.dy_min, -self.dx_min, self.dx_max
        hp = F.pad(h, (left, right, top, 0))
        H, W = x.shape[-2:]
        parts = [hp[:, :, top + dy:top + dy + H, left + dx:left + dx + W]
                 for dy, dx in s.neighbourhood]
        return torch.stack(parts, -1).permute(0, 2, 3, 4, 1).flatten(3)

    def raw_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Head outputs (B, FIELDS, K, H, W) in real units, before the output grids."""
        s = self.spec
        w_in = self._qw(self.w_in).permute(0, 2, 1).flatten(1)  # (hidden, nb*channels)
        ctx = self.context(x)
        h = self._qact(F.linear(ctx, w_in, self._qb(self.b_in, s.input_frac)))
        for layer in self.hidden_layers:
            h = self._qact(F.linear(h, self._qw(layer.weight), self._qb(layer.bias, s.act_frac)))
        out = F.linear(h, self._qw(self.head.weight), self._qb(self.head.bias, s.act_frac))
        out = out + F.linear(ctx, self._qw(self.skip.weight))
        b, hh, ww, _ = out.shape
        return out.view(b, hh, ww, FIELDS, s.mixtures).permute(0, 3, 4, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Code length of x in bits, per image (B,)."""
        return mixture_bits(self.raw_outputs(x), x, self.spec, self.output_bound)


def wider_context_state(state: dict, old_spec: dict, spec: ARMSpec, net: ARMNetwork) -> dict:
    """Warm start of a network whose neighbourhood contains the old one's:
    each old offset keeps its first-layer and skip weights, each new one
    starts at zero, so the network computes exactly what it did (and codes
    at the same length) while the new inputs get gradients from the first
    step."""
    old_nb = [tuple(o) for o in old_spec["neighbourhood"]]
    new_nb = list(spec.neighbourhood)
    if old_nb == new_nb:
        return state
    missing = [o for o in old_nb if o not in new_nb]
    if missing:
        raise SystemExit(f"the new neighbourhood lacks offsets the old one uses: {missing}")
    where = [new_nb.index(o) for o in old_nb]
    # the old hidden width and outputs: ``widened_state`` widens those after
    w_in = state["w_in"].new_zeros(len(state["w_in"]), spec.channels, len(new_nb))
    w_in[:, :, where] = state["w_in"]
    skip = state["skip.weight"].new_zeros(len(state["skip.weight"]), len(new_nb) * spec.channels)
    by_offset = (len(skip), -1, spec.channels)
    skip.view(by_offset)[:, where] = state["skip.weight"].view(by_offset)
    return {**state, "w_in": w_in, "skip.weight": skip}


def widened_state(state: dict, old_spec: dict, spec: ARMSpec, net: ARMNetwork,
                  spread: float = 1e-3, seed: int = 0) -> dict:
    """Warm start of a network wider than the old one in any of its
    neighbourhood (``wider_context_state``), hidden width or mixture
    count, computing what the old one did.  New hidden units keep ``net``'s
    fresh incoming weights and get zero outgoing ones, so nothing
    downstream moves while they learn.  Each new mixture component k
    copies component k mod K_old (head and skip rows, plus ``spread``
    noise on its logits' weights so that the copies can part), and the
    copied components' logits drop by ln(copies): a mixture of identical
    components is the component, so the code length stays the old one's
    (up to that noise and the logit grid, 1/8)."""
    state = wider_context_state(state, old_spec, spec, net)
    old_h, new_h = old_spec["hidden"], spec.hidden
    old_k, new_k = old_spec["mixtures"], spec.mixtures
    if new_h < old_h or new_k < old_k:
        raise SystemExit("a warm start can widen a network, not narrow it")
    out = dict(state)
    if new_h > old_h:
        fresh = {k: v.detach().clone() for k, v in net.state_dict().items()}
        for name in ("w_in", "b_in", *(f"hidden_layers.{i}.{p}" for i in range(spec.hidden_layers - 1)
                                       for p in ("weight", "bias"))):
            t = fresh[name]
            t[(slice(0, old_h),) + tuple(slice(0, n) for n in state[name].shape[1:])] = state[name]
            if name.endswith(".weight"):
                t[:old_h, old_h:] = 0.0             # the old units ignore the new ones
            out[name] = t
        head = torch.zeros(state["head.weight"].shape[0], new_h)
        head[:, :old_h] = state["head.weight"]
        out["head.weight"] = head
    if new_k > old_k:
        gen = torch.Generator().manual_seed(seed)
        source = torch.arange(new_k) % old_k
        copies = torch.bincount(source, minlength=old_k).float()
        for name in ("head.weight", "head.bias", "skip.weight"):
            old = out[name].view(FIELDS, old_k, *out[name].shape[1:])
            new = old[:, source].clone()
            if name == "head.bias":
                new[:3] -= torch.log(copies)[source]      # fields 0-2: the logits
            elif name == "head.weight":                   # the copies' logits part a little
                new[:3, old_k:] += torch.randn(new[:3, old_k:].shape, generator=gen) * spread
            out[name] = new.reshape(FIELDS * new_k, *old.shape[2:])
    return out


def output_grids(raw: torch.Tensor, spec: ARMSpec, bound=clamp_ste):
    """Snap head outputs to the integer grids of the decoder (straight-through).

    Returns logits (B,3,K,H,W) in logit units, means (pixels, before channel
    shifts), log-scales (natural log), coefficients (B,3,K,H,W).  ``bound``
    clamps each to its grid's range: ``clamp_ste`` (training: an output
    pushed past a bound learns its way back) or ``torch.clamp`` (the
    per-image fit, codec/arm/adaptation.py: no gradient past a bound).
    """
    s = spec
    logits = quantize_ste(raw[:, 0:3], s.logit_frac, -s.logit_range, s.logit_range, bound)
    # mean grid: pixel = 128 + 64 * raw, in 1/16
    mean_units = bound(round_ste(raw[:, 3:6] * 2**(s.input_frac + s.mean_frac)
                                 + 128 * 2**s.mean_frac), s.mean_min, s.mean_max)
    ls_idx = bound(round_ste((raw[:, 6:9] - s.log_scale_min) * 2**s.log_scale_frac),
                   0, s.log_scale_levels - 1)
    log_scales = s.log_scale_min + ls_idx / 2**s.log_scale_frac
    coeffs = quantize_ste(raw[:, 9:12], s.coeff_frac, -s.coeff_max, s.coeff_max, bound)
    return logits, mean_units, log_scales, coeffs


def mixture_bits(raw: torch.Tensor, x: torch.Tensor, spec: ARMSpec, bound=clamp_ste) -> torch.Tensor:
    """Bits of the values ``x`` under the head outputs ``raw`` on the
    decoder's grids (``output_grids``; ``bound`` clamps to their ranges)."""
    s = spec
    logits, mean_units, log_scales, coeffs = output_grids(raw, spec, bound)
    xf = x.float().unsqueeze(2)  # (B,3,1,H,W)
    r, g = xf[:, 0], xf[:, 1]
    mf = 2**s.mean_frac
    # channel shifts in 1/16 pixel: round(coeff * (value - 128) * 16)
    shift_g = round_ste(coeffs[:, 0] * (r - 128) * mf)
    shift_b = round_ste(coeffs[:, 1] * (r - 128) * mf + coeffs[:, 2] * (g - 128) * mf)
    mean_units = torch.stack([
        mean_units[:, 0],
        bound(mean_units[:, 1] + shift_g, s.mean_min, s.mean_max),
        bound(mean_units[:, 2] + shift_b, s.mean_min, s.mean_max),
    ], 1)
    means = mean_units / mf
    logp = discretized_logistic_logp(xf, means, log_scales)  # (B,3,K,H,W)
    logp = torch.logsumexp(logp + F.log_softmax(logits, dim=2), dim=2)
    return -logp.sum(dim=(1, 2, 3)) / math.log(2)


def discretized_logistic_logp(x, means, log_scales):
    """log P(x) for a logistic discretized to integers 0..255 (edges absorb tails)."""
    inv_s = torch.exp(-log_scales)
    centered = x - means
    plus = inv_s * (centered + 0.5)
    minus = inv_s * (centered - 0.5)
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    log_cdf_plus = F.logsigmoid(plus)            # for x == 0
    log_one_minus_cdf_min = -F.softplus(minus)   # for x == 255
    mid = inv_s * centered
    log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid)
    inner = torch.where(cdf_delta > 1e-5, torch.log(torch.clamp(cdf_delta, min=1e-12)),
                        log_pdf_mid)
    return torch.where(x < 0.5, log_cdf_plus,
                       torch.where(x > 254.5, log_one_minus_cdf_min, inner))
