"""Shape, rate points and fixed-point formats of the lossy model."""
from __future__ import annotations

from dataclasses import asdict, dataclass

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
    codebook_size: int = 64
    # integer formats of the entropy-parameter networks (as the ARM)
    weight_frac: int = 10
    act_frac: int = 8
    act_max: int = 2**13 - 1
    mean_frac: int = 4          # latent means in 1/16
    log_scale_min: float = -2.25  # natural log of the smallest scale (x 2^frac is an integer)
    scale_levels: int = 64
    log_scale_frac: int = 3     # scale levels 1/8 apart in natural log

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
