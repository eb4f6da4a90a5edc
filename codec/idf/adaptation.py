"""The IDF's priors adapted to this one image: a change to the last layer
of each prior network, fitted when encoding and sent at the head of the
segment's stream (docs/FORMAT.md §6).

Why the priors' last layers.  The flow's latents are fixed by the image;
what codes them is the prior, whose networks were trained on other
photographs.  The last layer of each (48 hidden features to a group's
means and log-scales, 3x3) is the part that is cheap to fit: its inputs,
the hidden features, are exact integers that do not change, so the
encoder computes them once for a sample of positions and fits the change
by gradient steps on the sample's code length alone.  Only the two finest
levels' priors change (``LEVELS``).  On three held-out photographs it saved
0.4-4.9 % beyond the per-image corrections, its own bytes counted
(docs/MODELS.md).

What is sent.  The change is integers on the weight grid (2^-weight_frac),
the changed weights staying within +-weight_max.  For each changed
network's output row a scale level (one byte in the segment's prefix
until nc 0.34; since nc 0.35 range-coded with the feedback table,
``side_tables.py``); the rows' integers are coded first in the stream under the flow's own
logistic tables at that level (mean 0; ``rows.py``), row by row, networks in the order
``IntegerPrior.slots`` lists them, levels finest first.  The decoder adds
the change to its integer networks, so it runs the same exact flow with
other integers and its cost does not change.

The fit runs in PyTorch; nothing in it needs to be reproducible, as the
integers it ends on are what the file holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from codec.idf.rows import RowCoder
from models.idf.integer import IntegerIDF
from models.idf.spec import anchors

# effort -> the fits tried, as (Adam steps, learning rate in integer units of
# the weight grid, falling linearly to 0, the change's cost in the loss in
# bits per unit of |delta|); the encoder keeps whichever codes smallest
# (efforts below 7 code with the priors as shipped).  A changed weight costs
# some 5 bits to send: at 1 bit per unit the fit saved 4 % before its bytes
# and lost after them (2.6 % of the file).  Held-out 037 and bsd img_070,
# with the change's bytes: 60 steps at 0.3, 8 bits -3.96 / -0.44 % (the
# change 0.47 / 0.58 % of the file); 4 bits -4.20 / -0.43 % (0.61 / 0.73 %);
# 150 steps at 0.5, 4 bits -4.86 / -0.58 %.  The fit's second half judges
# the rounded change the file holds (held-out effort 7: -0.300 % against
# -0.174 % rounded once at the end; docs/MODELS.md, nc 0.29.0)
_FITS = {7: ((60, 0.3, 8.0),), 8: ((60, 0.3, 8.0), (150, 0.5, 4.0)),
         9: ((60, 0.3, 8.0), (150, 0.5, 4.0), (300, 0.5, 4.0))}
SAMPLE = 1 << 13          # positions per network whose features the fit reads
MIN_LATENTS = 1 << 15     # smaller images are not fitted: a change cannot pay there
SEED = 0
# the latent levels whose priors change: the two finest hold 3/4 of the
# latents and under a sixth of the priors' last-layer weights (all four
# levels changed cost 1.6 % of the file at the same rate, for no more saving)
LEVELS = (0, 1)


def fits_for_effort(effort: int) -> tuple[tuple[int, float, float], ...]:
    return _FITS.get(effort, ())


@dataclass(frozen=True, eq=False)
class PriorChange:
    """Per latent level (finest first), {slot: last-layer change (Cout, Cin, 3, 3) int}."""

    levels: list[dict]

    def apply(self, flow: IntegerIDF) -> IntegerIDF:
        return flow.with_prior_changes(self.levels)

    def rows(self) -> list[np.ndarray]:
        """Every changed network's output rows, in file order."""
        return [row.ravel() for level in self.levels for delta in level.values() for row in delta]

    def any(self) -> bool:
        return any(d.any() for level in self.levels for d in level.values())

    # -- the stream ---------------------------------------------------------------
    def table(self, rows: RowCoder) -> tuple[np.ndarray, float]:
        """(per row, the scale level whose zero-mean table codes it smallest;
        the rows' ideal bits under them, the levels' own not included: the
        segment sends those as bytes or coded, ``codec.py``)."""
        levels, bits = rows.best_levels(self.rows())
        return levels, float(bits.sum())

    def encode(self, encoder, rows: RowCoder, levels: np.ndarray) -> None:
        for row, level in zip(self.rows(), levels):
            rows.encode_at(encoder, row, level)

    @classmethod
    def decode(cls, decoder, rows: RowCoder, levels: np.ndarray, flow: IntegerIDF) -> "PriorChange":
        """The change whose rows' scale levels are ``levels`` (from the
        prefix or the coded tables), read from the stream; raises ValueError
        where a changed weight would leave the grid (``IntegerNet.with_last_change``)."""
        out, at = [dict() for _ in flow.priors], 0
        for level, prior, slot in adapted_slots(flow):
            shape = prior.slot_net(slot).layers[-1].weights.shape
            delta = np.stack([rows.decode_at(decoder, int(np.prod(shape[1:])), levels[at + r])
                              for r in range(shape[0])])
            at += shape[0]
            out[level][slot] = delta.reshape(shape)
        return cls(out)

    @staticmethod
    def row_count(flow: IntegerIDF) -> int:
        return sum(prior.slot_net(slot).layers[-1].weights.shape[0] for _, prior, slot in adapted_slots(flow))


def adapted_slots(flow: IntegerIDF):
    """(level, prior, slot) of every network a change adapts, in file order."""
    for level in LEVELS:
        prior = flow.priors[level]
        for slot in prior.slots():
            yield level, prior, slot


class NetworkPass(NamedTuple):
    """One prior network's pass over a level: what it reads and codes.
    ``features`` are its last hidden activations (Cin, H, W), exact
    integers a change of the last layer leaves as they are; ``positions``
    the flat positions the pass codes, in raster order; ``latents`` its
    channel group's latents (k, H * W); ``bias`` what its last layer's
    accumulator starts from (2k, 1): the layer's bias and the group's."""

    level: int
    slot: tuple[str, int]
    net: object
    features: np.ndarray
    positions: np.ndarray
    latents: np.ndarray
    bias: np.ndarray

    def accumulator(self, patches: np.ndarray) -> np.ndarray:
        """The last layer's integer accumulator (2k, S) at ``patches`` (``_patches``)."""
        weights = self.net.layers[-1].weights
        return weights.reshape(len(weights), -1) @ patches + self.bias


def network_passes(flow: IntegerIDF, latents: list, levels=LEVELS):
    """A ``NetworkPass`` for each prior network of ``levels`` (by default
    those a change adapts), in file order, from ``latents`` ([(z, kept)]
    finest first, as ``IntegerIDF.forward`` gives)."""
    for level in levels:
        prior = flow.priors[level]
        z, kept = latents[level]
        parts = np.split(z, prior.groups)
        _, h, w = z.shape
        first = anchors(h, w).ravel()
        for slot in prior.slots():
            kind, g = slot
            given = parts[g] * anchors(h, w) if kind == "spatial" else None
            net, x = prior.net_input(g, kept, parts[:g], given)
            where = np.arange(h * w) if prior.spatial is None else np.flatnonzero(first if kind == "group" else ~first)
            yield NetworkPass(level, slot, net, net.features(x), where, parts[g].reshape(len(parts[g]), -1),
                              net.layers[-1].bias + prior.group_bias[g][:, None])


def latent_bits(acc, latents, spec):
    """The latents' code length (a float tensor's sum) under a prior
    network's last-layer accumulator ``acc`` (2k, S; means, then
    log-scales, at scale 2^-(weight_frac + act_frac)), as the training
    loss counts it: the fit's loss and the probes' measure."""
    from models.idf.network import logistic_bits

    frac = spec.weight_frac + spec.act_frac
    means, ls = acc.chunk(2)
    levels = ls * 2.0 ** (spec.log_scale_frac - frac) - spec.log_scale_min * 2**spec.log_scale_frac
    log_scale = spec.log_scale_min + levels.clamp(0, spec.log_scale_levels - 1) / 2**spec.log_scale_frac
    # the training loss, over (1, k, 1, S)
    return logistic_bits(latents[None, :, None], (means * 2.0 ** (spec.mean_gain_log2 - frac))[None, :, None],
                         log_scale[None, :, None]).sum()


def fit(flow: IntegerIDF, latents: list, fits: tuple[tuple[int, float, float], ...]) -> list[PriorChange]:
    """Prior changes that lower the code length of the latents
    ``latents`` ([(z, kept)] finest first, as ``IntegerIDF.forward`` gives),
    one per entry of ``fits`` ((Adam steps, learning rate, rate bits), each
    from the shipped priors), fitted on a seeded sample of each network's
    positions.  The loss is the latents' estimated bits plus the change's
    own, at the rate bits per unit of |delta|, per latent."""
    import torch

    from codec.adam import Adam

    spec = flow.spec
    total = sum(z.size for z, _ in latents)
    rng = np.random.default_rng(SEED)
    terms = []      # per network: (its pass, patches, acc0, z, weight of its sample)
    for p in network_passes(flow, latents):
        pick = np.sort(rng.choice(p.positions, min(len(p.positions), SAMPLE), replace=False))
        patches = _patches(p.features, pick)                         # (Cin 9, S)
        terms.append((p, torch.from_numpy(patches), torch.from_numpy(p.accumulator(patches).astype(np.float32)),
                      torch.from_numpy(p.latents[:, pick].astype(np.float32)), len(p.positions) / len(pick)))
    grids = [torch.from_numpy(p.net.layers[-1].weights.astype(np.float32)) for p, *_ in terms]
    changes = []
    for count, lr, rate_bits in fits:
        deltas = [torch.zeros(w.shape, dtype=torch.float32, requires_grad=True) for w in grids]
        opt = Adam(deltas, lr=lr)
        for k in range(count):
            opt.lr = lr * (1 - k / count)
            # the second half fits the integers the file will hold (the first
            # moves freely: rounded from the start, changes of a unit stall)
            late = k >= count // 2
            loss = 0.0
            for d, w, (_, patches, acc0, zs, weight) in zip(deltas, grids, terms):
                if late:
                    d = _as_sent(d, w, spec.weight_max)
                loss = loss + weight * latent_bits(acc0 + d.reshape(len(d), -1) @ patches, zs, spec)
                loss = loss + rate_bits * d.abs().sum()
            opt.zero_grad()
            (loss / total).backward()
            opt.step()
        out = [dict() for _ in flow.priors]
        with torch.no_grad():
            for d, w, (p, *_) in zip(deltas, grids, terms):
                out[p.level][p.slot] = _as_sent(d, w, spec.weight_max).numpy().astype(np.int64)
        changes.append(PriorChange(out))
    return changes


def _as_sent(delta, weights, weight_max: int):
    """``delta`` as the file holds it: rounded, the changed ``weights``
    kept on their 8-bit grid (within +-weight_max), with a straight-through
    gradient.  The fit's second half and its result both take it, so the
    states the fit ends on are the ones the file holds."""
    from models.quant import clamp_ste, round_ste

    return clamp_ste(round_ste(delta) + weights, -weight_max, weight_max) - weights


def _patches(feats: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The 3x3 neighbourhoods (zero outside) of ``feats`` (C, H, W) at the
    flat ``positions``, as (C * 9, S) in the weights' (cin, dy, dx) order."""
    c, h, w = feats.shape
    padded = np.pad(feats, ((0, 0), (1, 1), (1, 1)))
    ys, xs = np.divmod(positions, w)
    out = np.stack([padded[:, ys + dy, xs + dx] for dy in range(3) for dx in range(3)], 1)
    return np.ascontiguousarray(out.reshape(c * 9, len(positions)), np.float32)
