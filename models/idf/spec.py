"""Shape and fixed-point formats of the IDF."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class IDFSpec:
    levels: int = 3               # squeeze + couplings + factor-out, repeated
    couplings: int = 4            # coupling layers per level
    partitions: int = 2           # 2 = bipartite (IDF), 4 = quadripartite (Tomczak 2021)
    hidden: int = 32              # channels of each coupling network
    prior_hidden: int = 48
    # each level's factored-out channels are coded in this many groups, each
    # group's prior conditioned on the kept part and the groups before it
    # (channel-autoregressive within a level); 1 = the level's channels are
    # coded as if independent given the coarser levels (idf-v1, idf-v2)
    prior_groups: int = 1
    # each group is coded in two checkerboard halves: the anchors (row + col
    # even) first, then the rest with a second network that also sees the
    # group's anchors, i.e. its four spatial neighbours (idf-v6)
    prior_checkerboard: bool = False
    # Integer formats chosen so convolutions are exact: 8-bit weights, 8-bit
    # activations, network inputs clamped to +-255, biases below 2^20.  A layer
    # whose partial sums stay below 2^24 (every layer shipped so far) runs in
    # float32, a wider one in float64 (``integer.IntegerNet``, bound at load).
    weight_frac: int = 7
    weight_max: int = 127
    act_frac: int = 4
    act_max: int = 255
    input_clamp: int = 255
    bias_max: int = 2**20
    mean_frac: int = 4
    # a prior's mean is 2^mean_gain_log2 times its network's raw output (latent units)
    mean_gain_log2: int = 2
    log_scale_min: float = -2.0
    log_scale_frac: int = 3
    log_scale_levels: int = 64

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "IDFSpec":
        return cls(**d)


def group_rows(g: int, group_size: int, groups: int) -> list[int]:
    """Rows of channel group g in a prior's outputs (and bias), which hold the
    means of all the level's channels, then their log-scales: the one layout
    the training prior, the integer prior and the warm start all index."""
    k, cout = group_size, group_size * groups
    return list(range(g * k, (g + 1) * k)) + list(range(cout + g * k, cout + (g + 1) * k))


def anchors(height: int, width: int) -> np.ndarray:
    """(H, W) bool, True at a checkerboard prior's anchors: row + column even.
    Anchors are coded first, the other half given them (FORMAT.md §6)."""
    return (np.arange(height)[:, None] + np.arange(width)[None, :]) % 2 == 0
