"""The ARM's head adapted to this one image: a change to its last layer,
fitted when encoding and sent at the head of the segment's stream
(docs/FORMAT.md §5.2).

Why the head.  Published lossless codecs gain most of their edge over a
static model by fine-tuning part of it on each image.  The head (the last
layer: 128 hidden features to the 24 mixture outputs) is the part that is
cheap to fit and to send: the hidden features of every pixel are exact
integers that do not change, so the encoder computes them once for a
sample of pixels and fits the head by gradient steps on the sample's code
length alone (a linear layer under the discretized-logistic loss), without
ever running the network again.  On held-out crops 150 steps (about 5 s)
save 3.1 % of the bytes, the change's own counted (docs/MODELS.md); since
nc 0.17 effort 7 takes 300.

What is sent.  The change is integers on the head's weight grid
(2^-weight_frac), each clipped to +-127, range-coded first in the
segment's stream as symbols 128 + delta, each head output's column under
the model's own logistic table (mean 128) whose scale codes that column
smallest: the scale outputs' changes spread ten times as wide as the
channel coefficients'.  The mixture weights read only the logits'
differences, so only the first component's logits change (the other
columns are zero and cost next to nothing).  The decoder adds the change
to its integer head, so it runs the same exact network with other
integers and its cost does not change.

The fit runs in PyTorch on the training form of the loss; nothing in it
needs to be reproducible, as the integers it ends on are what the file
holds.  Grey planes are not adapted (the loss is written for RGB).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.arm.integer import IntegerARM

# effort -> the fits tried, by their gradient steps (efforts below 7 code with the
# model as shipped); the encoder keeps whichever codes smallest, so a higher
# effort never loses to a lower one where a long fit overshoots (held-out
# crops of 150 000 pixels: 1 000 steps alone lost up to 1.9 % to 150).  Since
# the logits' change is one column (nc 0.17), 300 steps beat 150 on all three
# held-out photographs tried (-3.6 / -2.8 / -5.5 % against -3.1 / -1.9 / -4.7 %)
_STEPS = {7: (300,), 8: (300, 600), 9: (300, 1000)}
LEARNING_RATE = 2.0          # Adam, in integer units of the head's grids, falling linearly to 0
BATCH = 1 << 15              # pixels per step
FEATURE_PIXELS = 1 << 17     # pixels whose hidden features the fit reads (a seeded sample)
DELTA_MAX = 127
RATE_BITS = 1.0              # the change's cost in the loss, per unit of |delta|: a change
                             # 15 % smaller than at 0.15 for the same saving (3 held-out photographs)
MIN_PIXELS = 1 << 16         # smaller images are not fitted: a change (about 2 KB) cannot pay there
SEED = 0
PER_OUTPUT_LEVELS = 65       # segment prefix byte 2: the change names a scale level per head output


def steps_for_effort(effort: int) -> tuple[int, ...]:
    return _STEPS.get(effort, ())


@dataclass(frozen=True, eq=False)
class HeadChange:
    weights: np.ndarray      # (hidden, outputs) int64, in 2^-weight_frac

    def apply(self, net: IntegerARM) -> IntegerARM:
        return net.with_head_change(self.weights)

    def symbols(self) -> np.ndarray:
        return self.weights.ravel() + 128

    # -- the stream ---------------------------------------------------------------
    def table(self, tables) -> tuple[np.ndarray, float]:
        """(per head output, the scale level whose logistic (mean 128) codes
        that output's column of the change smallest; the change's ideal bits
        under them, the levels' own included).  The columns differ: the
        scale outputs move ten times as far as the coefficients."""
        s = self.symbols()
        n_levels, outputs = tables.cdf.shape[0], self.weights.shape[1]
        # bits[level, output]: each level's code length of every symbol, summed by column
        bits = np.array([-tables.log2_probabilities(s, *_row_model(tables, level, len(s)))
                         .reshape(-1, outputs).sum(axis=0) for level in range(n_levels)])
        levels = np.argmin(bits, axis=0)
        return levels, float(bits.min(axis=0).sum()) + outputs * np.log2(n_levels)

    def encode(self, encoder, tables, levels: np.ndarray) -> None:
        encoder.encode(levels, _uniform_rows(len(levels), tables.cdf.shape[0]))
        s = self.symbols()
        encoder.encode(s, tables.frequencies(*_row_model(tables, np.tile(levels, len(s) // len(levels)),
                                                         len(s))))

    @classmethod
    def decode(cls, decoder, tables, head_byte: int, net: IntegerARM) -> "HeadChange":
        """The change a segment's prefix byte 2 announces: PER_OUTPUT_LEVELS,
        or (files of nc 0.15 and 0.16) one scale level for all, head_byte - 1.
        Raises ValueError on levels out of range."""
        shape = net.layers[-1][0].shape
        n_levels = tables.cdf.shape[0]
        if head_byte == PER_OUTPUT_LEVELS:
            levels = decoder.decode(_uniform_rows(shape[1], n_levels))
            if levels.max() >= n_levels:
                raise ValueError("head change scale level out of range")
            levels = np.tile(levels, shape[0])
        else:
            levels = head_byte - 1
        s = decoder.decode(tables.frequencies(*_row_model(tables, levels, shape[0] * shape[1])))
        return cls((s - 128).reshape(shape))


def _uniform_rows(n: int, levels: int) -> np.ndarray:
    """Frequency rows (n, 256) giving each of the first ``levels`` symbols
    the same probability (the rest, never written, the least)."""
    rows = np.ones((n, 256))
    rows[:, :levels] = 1 << 16
    return rows


def _row_model(tables, level, n: int):
    """(means, levels, weights), each (n, 1): one logistic centred on symbol
    128, at scale ``level`` (one for all, or one per symbol)."""
    return (np.full((n, 1), 128 << tables.mean_frac, np.int64),
            np.broadcast_to(np.asarray(level, np.int64), (n,)).reshape(n, 1),
            np.ones((n, 1), np.int64))


def fit(net: IntegerARM, context: np.ndarray, values: np.ndarray, steps: tuple[int, ...],
        pixels: int) -> list[HeadChange]:
    """Head changes that lower the code length of an image of ``pixels``
    pixels, one per entry of ``steps`` (that many Adam steps each, from
    the shipped head), fitted on a sample of its pixels whose contexts are
    ``context`` (m, inputs; pixel - 128) and values ``values`` (m, 3); the
    sample's features are computed once for all of them.  The loss is the
    sample's bits per pixel plus the change's own, estimated at
    ``RATE_BITS`` per unit of |delta| and spread over the image's pixels:
    a small image gets a small change, or none."""
    import torch

    from codec.adam import Adam
    from models.arm.network import FIELDS, mixture_bits

    spec = net.spec
    hidden, skip = net.hidden_features(context)
    feats = torch.from_numpy(hidden).float()          # integers below 2^13: exact
    fixed = torch.from_numpy(skip).float()            # the skip path, at the head's scale
    w0 = torch.from_numpy(net.layers[-1][0]).float()
    b0 = torch.from_numpy(net.layers[-1][1]).float()
    x = torch.from_numpy(values.T.copy()).float()     # (3, m)
    scale = 2.0 ** -(spec.weight_frac + spec.act_frac)
    m = len(feats)
    # the mixture weights read only the logits' differences, so the first
    # component's logit change carries them all and the others' stay 0 (a
    # column of zeros costs nothing to send); its steps are K times as long,
    # as far as the pair of changes it replaces would move the difference
    gain = torch.ones_like(w0).view(-1, FIELDS, spec.mixtures)
    gain[:, :3, 0] = spec.mixtures
    gain[:, :3, 1:] = 0
    gain = gain.view_as(w0)
    changes = []
    for total in steps:
        d_w = torch.zeros_like(w0, requires_grad=True)
        opt = Adam([d_w], lr=LEARNING_RATE)
        gen = torch.Generator().manual_seed(SEED)
        for k in range(total):
            opt.lr = LEARNING_RATE * (1 - k / total)
            idx = torch.randint(0, m, (min(BATCH, m),), generator=gen)
            delta = d_w * gain
            raw = (feats[idx] @ (w0 + delta) + b0 + fixed[idx]) * scale
            raw = raw.view(-1, FIELDS, spec.mixtures).permute(1, 2, 0)[None, :, :, None, :]
            loss = (mixture_bits(raw, x[None, :, None, idx], spec).sum() / len(idx)
                    + RATE_BITS * delta.abs().sum() / pixels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            changes.append(HeadChange(torch.round(d_w * gain).clamp(-DELTA_MAX, DELTA_MAX).long().numpy()))
    return changes
