"""Shape and fixed-point format of the ARM, shared by training, export and
the integer decoder.  Everything here is part of the model's definition: a
weights file records the values it was trained with."""
from __future__ import annotations

from dataclasses import asdict, dataclass

# The causal neighbourhood, as (dy, dx) offsets from the current pixel.
# Every offset is strictly before (0, 0) in raster order, and satisfies
# dx < -2 * dy for dy < 0, so that the pixels on the wavefront t = x + 2 y
# depend only on pixels of earlier wavefronts (WAVEFRONT_SKEW = 2).
DEFAULT_NEIGHBOURHOOD: tuple[tuple[int, int], ...] = (
    *((-3, dx) for dx in range(-2, 3)),
    *((-2, dx) for dx in range(-3, 4)),
    *((-1, dx) for dx in range(-4, 2)),
    *((0, dx) for dx in range(-4, 0)),
)
WAVEFRONT_SKEW = 2

# A wider context (37 pixels: up to 4 rows up, 5 columns left): the same
# causal rule, so the same wavefront decoder.  A model trained on the default
# one widens to it at exactly its code length (``models.arm.network.
# wider_context_state``); the first layer and the skip cost 1.7 times as
# much, the whole network about 1.13 times.
LARGE_NEIGHBOURHOOD: tuple[tuple[int, int], ...] = (
    *((-4, dx) for dx in range(-3, 4)),
    *((-3, dx) for dx in range(-4, 5)),
    *((-2, dx) for dx in range(-5, 4)),
    *((-1, dx) for dx in range(-5, 2)),
    *((0, dx) for dx in range(-5, 0)),
)
NEIGHBOURHOODS = {"default": DEFAULT_NEIGHBOURHOOD, "large": LARGE_NEIGHBOURHOOD}


@dataclass(frozen=True)
class ARMSpec:
    """Architecture and number formats of one ARM.

    Fixed point: inputs are ``pixel - 128`` at scale 2^-INPUT_FRAC, weights
    are integers at scale 2^-weight_frac, hidden activations integers at scale
    2^-act_frac clipped to [0, act_max].  Every accumulator is an integer far
    below 2^53, so float64 evaluation is exact in any summation order.
    """

    neighbourhood: tuple[tuple[int, int], ...] = DEFAULT_NEIGHBOURHOOD
    hidden: int = 128
    hidden_layers: int = 3          # number of hidden (ReLU) layers
    mixtures: int = 2               # logistic components per subpixel
    input_frac: int = 6
    weight_frac: int = 10
    weight_max: int = 2**15 - 1     # |integer weight| bound
    act_frac: int = 8
    act_max: int = 2**13 - 1        # integer activation bound
    # output grids
    mean_frac: int = 4              # means in 1/16 pixel
    mean_min: int = -32 * 16
    mean_max: int = 288 * 16
    logit_frac: int = 3             # mixture logits in 1/8
    logit_range: int = 1023         # |logit| bound (integer units)
    log_scale_frac: int = 3         # log-scale step 1/8
    log_scale_min: float = -2.0     # natural log of the smallest scale
    log_scale_levels: int = 64
    coeff_frac: int = 6             # channel coefficients in 1/64
    coeff_max: int = 128            # |coefficient| <= 2
    channels: int = 3

    def __post_init__(self):
        late = [(dy, dx) for dy, dx in self.neighbourhood
                if not (dy < 0 and dx < -WAVEFRONT_SKEW * dy or dy == 0 and dx < 0)]
        if late:
            raise ValueError(f"neighbourhood offsets not on earlier wavefronts: {late}")

    @property
    def outputs_per_mixture(self) -> int:
        # per channel: logit, mean, log-scale; plus 3 channel coefficients
        return 3 * self.channels + 3

    @property
    def outputs(self) -> int:
        return self.mixtures * self.outputs_per_mixture

    @property
    def context_size(self) -> int:
        return len(self.neighbourhood) * self.channels

    def to_dict(self) -> dict:
        d = asdict(self)
        d["neighbourhood"] = [list(o) for o in self.neighbourhood]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ARMSpec":
        d = dict(d)
        d["neighbourhood"] = tuple(tuple(o) for o in d["neighbourhood"])
        return cls(**d)
