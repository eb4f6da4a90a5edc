"""Shape, rate points and fixed-point formats of the lossy model."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# Qualities travel as integers, quality x QUALITY_SCALE (the file header's
# codec parameter), so that encoder and decoder read the same value.
QUALITY_SCALE = 1000


def quality_code(quality: float) -> int:
    """The quality as the file header stores it and the entropy model reads it."""
    return int(round(quality * QUALITY_SCALE))

# Rate-distortion trade-offs of the 8 quality points: loss = bpp + lambda * 255^2 * MSE
# (the values CompressAI uses for its MSE models, quality 1..8).
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


@dataclass(frozen=True)
class LossySpec:
    n: int = 96                 # channels of the transforms
    m: int = 160                # latent channels
    slices: int = 4             # channel slices coded in sequence
    hyper: int = 96             # hyper-latent channels
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    # "round": residuals rounded to the integer grid (uniform noise in training);
    # "codebook": the nearest of codebook_size learned values (soft assignment
    # for gradients), the alternative the codec does not ship (see MODELS.md)
    quantizer: str = "round"
    # the slice networks also read the quality (one constant input channel,
    # ``quality_feature``): one entropy model shared by every quality point
    # otherwise predicts q8-sized means and scales at q1 (see MODELS.md)
    quality_input: bool = False
    # channels of each slice's checkerboard context (0: none): a slice is coded
    # in two halves, the anchors ((row + col) even) from the hyper features and
    # earlier slices alone, then the rest also from a 5x5 convolution of the
    # decoded anchors (He et al. 2021), at the price of twice the slice passes
    checkerboard_channels: int = 0
    codebook_size: int = 64
    # the enhancer after g_s (``models/lossy/enhancer.py``): channels and
    # middle layers of its half-resolution network (0 channels: none)
    enhancer_channels: int = 0
    enhancer_layers: int = 0
    # integer formats of the entropy-parameter networks (as the ARM)
    weight_frac: int = 10
    act_frac: int = 8
    act_max: int = 2**13 - 1
    mean_frac: int = 4          # latent means in 1/16
    log_scale_min: float = -2.25  # natural log of the smallest scale (x 2^frac is an integer)
    scale_levels: int = 64
    log_scale_frac: int = 3     # scale levels 1/8 apart in natural log

    def quality_feature(self, quality_code):
        """The quality input of the slice networks, an integer at their input
        scale 2^-act_frac, from the quality code (quality x QUALITY_SCALE):
        0 at quality 1 up to 2^act_frac at the best.  Integer arithmetic
        (ints or integer tensors), so encoder, decoder and training agree."""
        lo, span = QUALITY_SCALE, QUALITY_SCALE * (self.qualities - 1)
        return ((quality_code - lo) * 2**self.act_frac * 2 + span) // (2 * span)

    def lam(self, quality: float) -> float:
        """The rate-distortion trade-off of a (fractional) quality 1..Q: the
        lambdas interpolated geometrically, as the network's gains are."""
        q = min(max(quality - 1, 0.0), self.qualities - 1)
        lo = min(math.floor(q), self.qualities - 2)
        t = q - lo
        return math.exp(math.log(self.lambdas[lo]) * (1 - t) + math.log(self.lambdas[lo + 1]) * t)

    @property
    def qualities(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LossySpec":
        d = dict(d)
        d["lambdas"] = tuple(d["lambdas"])
        return cls(**d)
