"""Fake quantization for training networks whose deployed form is exact
integer arithmetic.  The training graph rounds with a straight-through
estimator at exactly the grids the integer decoder uses, so the trained
network is the deployed network up to float32 rounding in training."""
from __future__ import annotations

import torch


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest, gradient of the identity."""
    return x + (torch.round(x) - x).detach()


def clamp_ste(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Clamp, gradient of the identity: a parameter pushed past a bound of its
    grid still learns its way back (a plain clamp would freeze it there)."""
    return x + (torch.clamp(x, lo, hi) - x).detach()


def quantize_ste(x: torch.Tensor, frac: int, lo: float, hi: float, bound=clamp_ste) -> torch.Tensor:
    """Snap ``x`` to the grid 2^-frac inside [lo, hi] (bounds in grid units),
    clamping with ``bound`` (``clamp_ste``, or ``torch.clamp`` for a
    gradient of zero past the bounds)."""
    scale = float(2**frac)
    return bound(round_ste(x * scale), lo, hi) / scale


def round_scaled(acc: torch.Tensor, shift: int) -> torch.Tensor:
    """floor(acc * 2^shift + 1/2): the integer networks' rescaling, exact for
    integer-valued float tensors (a power-of-two product and a floor)."""
    return torch.floor(acc * float(2.0**shift) + 0.5)


def round_scaled_(acc: torch.Tensor, shift: int) -> torch.Tensor:
    """``round_scaled`` in place (same operations, same results): the integer
    flow's decoder spends much of its time allocating these intermediates."""
    return acc.mul_(float(2.0**shift)).add_(0.5).floor_()
