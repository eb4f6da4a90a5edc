"""The ARM adapted to this one image: low-rank changes to its hidden layers
(nc 0.22: the last; nc 0.23: the last two) and, in files of nc 0.15 ...
0.32, a change to its head (the last layer), fitted when encoding and sent
at the head of the segment's stream (docs/FORMAT.md §5.2, §5.3).

Since nc 0.33 the head is not sent: the decoder learns it while decoding
(``online_head.py``).  On the eight held-out photographs at effort 7 the
fit without the head's change, and the online head on top, coded 0.7 %
smaller than with it, and its 1.2-1.6 KB no longer count (docs/MODELS.md).
The head's fit stays (``Fit.head``) for measurements.

Why these layers.  Published lossless codecs gain most of their edge over
a static model by fine-tuning part of it on each image.  The head (128
hidden features to the 24 mixture outputs) is the part that is cheapest to
fit and to send: the hidden features of every pixel are exact integers
that do not change, so the encoder computes them once for a sample of
pixels and fits the head by gradient steps on the sample's code length
alone, without running the network again.  The hidden layers come next,
from the last back: the fit runs the network only from the first layer it
changes, whose inputs are as fixed, so each layer costs one more 128x128
product a step.  A whole layer's 16 384 weights would cost more to send
than they save, but a low-rank change (two 128 x r integer factors, their
product shifted right by LOW_RANK_SHIFT) costs about 1.5 KB at rank 8.  On
held-out photographs (docs/MODELS.md) rank 8 on the last hidden layer
saved 0.6-1.5 % beyond the head's change, and rank 4 on the layer before
0.4 % more; the first layer (72 inputs, not square) and the biases did not
pay.

What is sent.  Integers, each clipped to +-127 and range-coded as symbols
128 + delta, column by column under the model's own logistic table (mean
128) whose scale codes that column smallest (``columns.py``).  Head: its
change on the head's weight grid, a column per head output; the mixture
weights read only the logits' differences, so only the first component's
logits change (the other columns are zero and cost next to nothing).
Hidden layers: the factors' columns (a column of ``down`` and a row of
``up`` per rank).  The decoder adds the changes to its integer weights, in
integers, so it runs the same exact network with other integers and its
cost does not change.

The fit runs in PyTorch on the training form of the loss; nothing in it
needs to be reproducible, as the integers it ends on are what the file
holds.  Grey planes are not adapted (the loss is written for RGB).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from codec.arm.columns import column_levels, decode_columns, encode_columns, row_model, uniform_rows
from models.arm.integer import IntegerARM

class Fit(NamedTuple):
    """One fit the encoder tries: ``steps`` Adam steps of ``batch`` pixels on
    low-rank changes of the hidden layers that ``ranks`` names, from the
    last back, and (``head``) on the head, its draws and start seeded by
    ``seed``.  Since nc 0.33 the encoder fits no head change: the decoder
    learns the head while decoding (``online_head.py``), and a sent head
    change left the file larger (docs/MODELS.md)."""

    steps: int
    ranks: tuple[int, ...]
    batch: int
    seed: int = 0
    head: bool = False


# effort -> the fits tried.  Efforts below 7 code with the model as shipped;
# the encoder keeps whichever codes smallest, so a higher effort never loses
# to a lower one where a fit overshoots.  Many small steps beat few large
# ones at equal time: on a 768x512 held-out photograph (head and rank 8),
# 300 steps of 2^15 pixels 3.842 bpsp, 1 000 of 2^12 3.814 in half the
# time, 2 000 of 2^13 3.792; rank 4 on the layer before, 1 000 of 2^12:
# 3.793 (docs/MODELS.md).  The fits are noisy: the seed alone moves a result
# by up to 1 %, so the higher efforts try two seeds, side by side, and keep
# the better; they pay more in longer fits than in more seeds (held-out
# photographs, per cent of the unadapted plan: 1 000 steps -4.74/-4.37,
# 2 000 -5.00/-4.98, 3 000 -5.07/-5.18; the better of two 3 000-step fits
# -5.40, of nc 0.28's three, 1 000 twice and 2 000, -5.09; docs/MODELS.md).
# Since nc 0.33 none changes the head: on the held-out 768x512 photographs
# effort 9's two fits without it coded 0.98 % smaller than two with it, and
# 0.12 % smaller than one of each (online head on, docs/MODELS.md).
_FITS = {7: (Fit(1000, (8, 4), 1 << 12),),
         8: (Fit(2000, (8, 4), 1 << 12), Fit(2000, (8, 4), 1 << 12, seed=1)),
         9: (Fit(3000, (8, 4), 1 << 12), Fit(3000, (8, 4), 1 << 12, seed=1))}
LEARNING_RATE = 2.0          # Adam, in integer units of the grids, falling linearly to 0
WARM_UP = 0.05               # ... after rising linearly from 0 over this part of the steps
BEST_EVERY = 50              # in the fit's second half, keep the best of every 50th step's state
FEATURE_PIXELS = 1 << 17     # pixels whose hidden features the fit reads (a seeded sample)
DELTA_MAX = 127
RATE_BITS = 1.0              # a change's cost in the loss, per unit of |delta| (the head's, the
                             # factors'): a head change 15 % smaller than at 0.15 for the same
                             # saving; 2 and 3 did no better for the factors (held-out photographs)
LOW_RANK_INIT = 4.0          # spread of the ``down`` factor's seeded start (``up`` starts at 0)
LOW_RANK_SHIFT = 3           # the hidden layer's change is (down @ up) >> 3
MAX_RANK = 32                # the largest rank of a hidden layer's change
DEEP_CHANGE = 64             # prefix byte 3 = DEEP_CHANGE + k: the change reaches k >= 2 hidden layers
MIN_PIXELS = 1 << 16         # smaller images are not fitted: a change (about 2 KB) cannot pay there
SEED = 0
PER_OUTPUT_LEVELS = 65       # segment prefix byte 2: the change names a scale level per head output
UNCHANGED_HEAD = 66          # segment prefix byte 2: only hidden layers change (nc 0.33)


def fits_for_effort(effort: int) -> tuple[Fit, ...]:
    return _FITS.get(effort, ())


def valid_change_bytes(head_byte: int, rank_byte: int, channels: int, hidden_layers: int,
                       single_levels: int) -> bool:
    """Whether segment prefix bytes 2 and 3 name a change a segment of
    ``channels`` planes can hold: none (both 0); a head change under one
    scale level (1 ... single_levels, nc 0.15 and 0.16); one with a level
    per output (PER_OUTPUT_LEVELS), alone or with a hidden change; or a
    hidden change alone (UNCHANGED_HEAD).  Only RGB segments change the
    network."""
    if not head_byte:
        return not rank_byte
    if channels != 3:
        return False
    if head_byte == UNCHANGED_HEAD:
        return rank_byte != 0 and valid_rank_byte(rank_byte, hidden_layers)
    if head_byte == PER_OUTPUT_LEVELS:
        return valid_rank_byte(rank_byte, hidden_layers)
    return head_byte <= single_levels and not rank_byte


def valid_rank_byte(byte: int, hidden_layers: int) -> bool:
    """Whether segment prefix byte 3 names a hidden change a network of
    ``hidden_layers`` hidden layers can take: 0 (none), a rank of the last
    one, or a deep change of 2 ... hidden_layers - 1 of them (the first
    layer is not square)."""
    return byte <= MAX_RANK or DEEP_CHANGE + 2 <= byte < DEEP_CHANGE + hidden_layers


# -- the changes --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class HeadChange:
    """Integers (hidden, outputs) on the head's weight grid (2^-weight_frac)."""

    weights: np.ndarray

    def table(self, tables) -> tuple[np.ndarray, float]:
        """(a scale level per head output, the change's ideal bits): the
        columns differ, the scale outputs move ten times as far as the
        channel coefficients."""
        return column_levels(self.weights, tables)

    def encode(self, encoder, tables, levels: np.ndarray) -> None:
        encode_columns(encoder, tables, self.weights, levels)

    @classmethod
    def decode(cls, decoder, tables, head_byte: int, shape: tuple[int, int]) -> "HeadChange":
        """The change a segment's prefix byte 2 announces: PER_OUTPUT_LEVELS,
        or (files of nc 0.15 and 0.16) one scale level for all, head_byte - 1.
        Raises ValueError on levels out of range."""
        if head_byte == PER_OUTPUT_LEVELS:
            return cls(decode_columns(decoder, tables, shape))
        s = decoder.decode(tables.frequencies(*row_model(tables, head_byte - 1, shape[0] * shape[1])))
        return cls((s - 128).reshape(shape))


@dataclass(frozen=True, eq=False)
class LowRankChange:
    """The last hidden layer's change (down @ up) >> LOW_RANK_SHIFT, on its
    weight grid: down (inputs, rank) and up (rank, outputs) integers."""

    down: np.ndarray
    up: np.ndarray

    @property
    def rank(self) -> int:
        return self.down.shape[1]

    def delta(self) -> np.ndarray:
        """The change of the weights, in exact integer arithmetic."""
        return (self.down.astype(np.int64) @ self.up.astype(np.int64)) >> LOW_RANK_SHIFT

    def _columns(self) -> np.ndarray:
        return np.concatenate([self.down, self.up.T], axis=1)

    def table(self, tables) -> tuple[np.ndarray, float]:
        return column_levels(self._columns(), tables)

    def encode(self, encoder, tables, levels: np.ndarray) -> None:
        encode_columns(encoder, tables, self._columns(), levels)

    @classmethod
    def decode(cls, decoder, tables, rank: int, shape: tuple[int, int]) -> "LowRankChange":
        """The change of a layer of weights ``shape`` (square: its columns
        are [down | up^T]); raises ValueError on a level out of range."""
        if shape[0] != shape[1]:
            raise ValueError("low-rank change of a layer that is not square")
        columns = decode_columns(decoder, tables, (shape[0], 2 * rank))
        return cls(columns[:, :rank], np.ascontiguousarray(columns[:, rank:].T))


@dataclass(frozen=True, eq=False)
class ImageChange:
    """What the encoder fitted to one image: the head's change (None:
    unchanged) and low-rank changes of hidden layers, ``hidden[j]`` that of
    the j-th hidden layer counted back from the last (None: unchanged)."""

    head: HeadChange | None
    hidden: tuple[LowRankChange | None, ...] = ()

    def __post_init__(self):
        hidden = tuple(self.hidden)
        while hidden and hidden[-1] is None:      # an unchanged layer at the far end is no change
            hidden = hidden[:-1]
        object.__setattr__(self, "hidden", hidden)

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(0 if c is None else c.rank for c in self.hidden)

    @property
    def changes_anything(self) -> bool:
        return (self.head is not None and bool(self.head.weights.any())) or any(self.ranks)

    @property
    def head_byte(self) -> int:
        """Segment prefix byte 2: PER_OUTPUT_LEVELS (a head change follows)
        or UNCHANGED_HEAD."""
        return UNCHANGED_HEAD if self.head is None else PER_OUTPUT_LEVELS

    @property
    def prefix_byte(self) -> int:
        """Segment prefix byte 3: 0 (no hidden change), the rank of the last
        hidden layer's when it alone changes (as nc 0.22 wrote), or
        DEEP_CHANGE + the number of hidden layers the change reaches back
        (their ranks then open its part of the stream)."""
        if len(self.hidden) <= 1:
            return sum(self.ranks)
        return DEEP_CHANGE + len(self.hidden)

    def apply(self, net: IntegerARM) -> IntegerARM:
        """``net`` with the changes added; raises ValueError if that leaves
        the exact range."""
        return net.with_changes(None if self.head is None else self.head.weights,
                                [None if c is None else c.delta() for c in self.hidden])

    def table(self, tables) -> tuple[tuple, float]:
        """(the scale levels of each part's columns, the ideal bits of all,
        the ranks' own included)."""
        head_levels, bits = self.head.table(tables) if self.head is not None else (None, 0.0)
        levels = [head_levels]
        if len(self.hidden) > 1:
            bits += len(self.hidden) * np.log2(MAX_RANK + 1)
        for change in self.hidden:
            if change is None:
                levels.append(None)
                continue
            change_levels, change_bits = change.table(tables)
            levels.append(change_levels)
            bits += change_bits
        return tuple(levels), bits

    def encode(self, encoder, tables, levels: tuple) -> None:
        """The head's change (if any), then (a deep change) the hidden
        layers' ranks and their changes, the last hidden layer's first:
        first in the stream."""
        if self.head is not None:
            self.head.encode(encoder, tables, levels[0])
        if len(self.hidden) > 1:
            encoder.encode(np.array(self.ranks), uniform_rows(len(self.hidden), MAX_RANK + 1))
        for change, change_levels in zip(self.hidden, levels[1:]):
            if change is not None:
                change.encode(encoder, tables, change_levels)

    @classmethod
    def decode(cls, decoder, tables, head_byte: int, rank_byte: int, net: IntegerARM) -> "ImageChange":
        """The change the prefix bytes 2 and 3 announce; raises ValueError
        on a rank or level out of range or a layer that cannot take it."""
        head = (None if head_byte == UNCHANGED_HEAD
                else HeadChange.decode(decoder, tables, head_byte, net.layers[-1][0].shape))
        if not valid_rank_byte(rank_byte, len(net.layers) - 1):
            raise ValueError("hidden change of layers the network cannot change")
        if rank_byte <= MAX_RANK:
            ranks = [rank_byte] if rank_byte else []
        else:
            ranks = decoder.decode(uniform_rows(rank_byte - DEEP_CHANGE, MAX_RANK + 1))
            if ranks.max() > MAX_RANK:
                raise ValueError("hidden change rank out of range")
        hidden = [LowRankChange.decode(decoder, tables, int(r), net.layers[-2 - j][0].shape) if r else None
                  for j, r in enumerate(ranks)]
        return cls(head, tuple(hidden))


# -- the fit ------------------------------------------------------------------------------
def fit(net: IntegerARM, context: np.ndarray, values: np.ndarray, fits: tuple[Fit, ...],
        pixels: int) -> list[ImageChange]:
    """Changes that lower the code length of an image of ``pixels`` pixels,
    one per ``Fit`` of ``fits``: its steps of Adam, from the shipped
    network, on the head and on a low-rank change of each hidden layer
    that its ``ranks`` give a rank (ranks[0] the last hidden layer's,
    ranks[1] the one before's, ...).  They are fitted on a sample of the
    image's pixels whose contexts are ``context`` (m, inputs; pixel - 128)
    and values ``values`` (m, 3).  The loss is the sample's bits per pixel
    plus the change's own, estimated at RATE_BITS per unit of |delta| and
    spread over the image's pixels: a small image gets a small change, or
    none."""
    deepest = max((len(f.ranks) for f in fits), default=0)
    sample = _Sample(net, context, values, first=net.spec.hidden_layers - deepest)
    return side_by_side(lambda f: _fit_one(sample, f, pixels), fits, cost=lambda f: f.steps * f.batch)


def side_by_side(work, items, cost=None) -> list:
    """[work(item) for item in items], several at once where PyTorch may use
    several threads (not in a tile's worker process, which has one): each
    runs on one.  A fit's products (2^12 x 128 x 128) are too small to keep
    two threads busy: on two cores one fit took 16.6 ms a step on both and
    24.3 ms on one, so two side by side take 0.73 of the time of two in
    turn.  The encoder's plans under the changes (BLAS, NumPy arithmetic
    and compiled kernels, all releasing the GIL) run so too.  Results in
    the order of ``items``; the costliest (by ``cost``) start first, so the
    threads finish together."""
    import torch

    threads = torch.get_num_threads()
    workers = min(len(items), threads)
    if workers <= 1:
        return [work(item) for item in items]
    order = sorted(range(len(items)), key=lambda i: -cost(items[i])) if cost else range(len(items))
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            started = {i: pool.submit(work, items[i]) for i in order}
            return [started[i].result() for i in range(len(items))]
    finally:
        torch.set_num_threads(threads)


class _Sample:
    """The network as float32 tensors (integers below 2^24: exact) and the
    sample's integer inputs to hidden layers ``first`` ... (the first one
    a fit changes) and to the head, computed once for all fits: a fit runs
    the network only from the first layer it changes."""

    def __init__(self, net: IntegerARM, context: np.ndarray, values: np.ndarray, first: int):
        import torch

        from models.arm.network import FIELDS

        self.spec = spec = net.spec
        context = context.astype(np.float64)
        h = context
        self.inputs = {}                              # hidden layer i's inputs, from ``first`` on
        for i in range(spec.hidden_layers):
            if i >= first:
                self.inputs[i] = torch.from_numpy(h).float()
            h = net.hidden_layer(i, h)
        self.features = torch.from_numpy(h).float()   # what the head reads
        self.skip = torch.from_numpy(net.skip_path(context)).float()  # at the head's scale
        self.values = torch.from_numpy(values.T.copy()).float()                      # (3, m)
        self.weights = [torch.from_numpy(net.layers[i][0]).float() for i in range(spec.hidden_layers)]
        self.biases = [torch.from_numpy(net.rounded_bias(i)).float() for i in range(spec.hidden_layers)]
        self.scales = [net.hidden_scale(i) for i in range(spec.hidden_layers)]
        self.head = torch.from_numpy(net.layers[-1][0]).float()
        self.head_bias = torch.from_numpy(net.layers[-1][1]).float()
        self.head_scale = 2.0 ** -(spec.weight_frac + spec.act_frac)
        # the mixture weights read only the logits' differences, so the first
        # component's logit change carries them all and the others' stay 0 (a
        # column of zeros costs nothing to send); its steps are K times as long,
        # as far as the pair of changes it replaces would move the difference
        gain = torch.ones_like(self.head).view(-1, FIELDS, spec.mixtures)
        gain[:, :3, 0] = spec.mixtures
        gain[:, :3, 1:] = 0
        self.head_gain = gain.view_as(self.head)

    def __len__(self) -> int:
        return len(self.features)


def _snapped(t):
    """Rounding to the integers a file holds (clipped to +-DELTA_MAX), with
    the gradient passed straight through."""
    from models.quant import clamp_ste, round_ste

    return clamp_ste(round_ste(t), -DELTA_MAX, DELTA_MAX)


def _floored(t):
    """Flooring, with the gradient passed straight through."""
    return t + (t.floor() - t).detach()


def _as_sent(d_head, head_gain, factors: dict, snap_head: bool):
    """(the head's change (None where ``d_head`` is), {hidden layer: its
    weights' change}, the sum of |integer| the file sends for them) as the
    decoder will add them, the gradients passed straight through: the
    factors rounded to integers and their product shifted right, which
    floors (``LowRankChange.delta``), and the head's change rounded once
    ``snap_head``.  A loss that rounded the product instead shifted every
    changed weight by -0.4 of a unit on average, and an unrounded head
    lost up to 0.3 bits a pixel when the fit's end rounded it: the fit
    judged states the file could not hold (docs/MODELS.md, nc 0.28.0)."""
    head, sent, hidden = None, 0.0, {}
    if d_head is not None:             # (None: the fit leaves the head alone)
        head = d_head * head_gain
        if snap_head:
            head = _snapped(head)
        sent = head.abs().sum()
    for i, (down, up) in factors.items():
        down, up = _snapped(down), _snapped(up)
        hidden[i] = _floored(down @ up / 2**LOW_RANK_SHIFT)
        sent = sent + down.abs().sum() + up.abs().sum()
    return head, hidden, sent


def _fit_one(sample: _Sample, fit: Fit, pixels: int) -> ImageChange:
    import torch

    from codec.adam import Adam
    from models.arm.network import FIELDS, mixture_bits

    total, ranks, batch = fit.steps, fit.ranks, fit.batch
    spec, n_hidden = sample.spec, sample.spec.hidden_layers
    if len(ranks) > n_hidden:
        raise ValueError("more hidden layers to change than the network has")
    first = n_hidden - len(ranks)                     # the first layer the fit runs
    d_head = torch.zeros_like(sample.head, requires_grad=True) if fit.head else None
    params, factors = [d_head] if fit.head else [], {}
    init = torch.Generator().manual_seed(SEED + fit.seed)
    for j, rank in enumerate(ranks):
        if rank:
            i = n_hidden - 1 - j
            down = (torch.randn(sample.weights[i].shape[0], rank, generator=init) * LOW_RANK_INIT
                    ).requires_grad_()
            up = torch.zeros(rank, sample.weights[i].shape[1], requires_grad=True)
            factors[i] = (down, up)
            params += [down, up]

    late = False                                      # in the fit's second half

    def loss_of(idx):
        delta, hidden, sent = _as_sent(d_head, sample.head_gain, factors, snap_head=late)
        loss = RATE_BITS * sent / pixels
        h = sample.features[idx] if first == n_hidden else sample.inputs[first][idx]
        for i in range(first, n_hidden):
            w = sample.weights[i]
            if i in factors:
                w = w + hidden[i]
            pre = (h @ w + sample.biases[i]) * sample.scales[i]
            h = torch.clamp(_floored(pre), 0, spec.act_max)
        head = sample.head if delta is None else sample.head + delta
        raw = (h @ head + sample.head_bias + sample.skip[idx]) * sample.head_scale
        raw = raw.view(-1, FIELDS, spec.mixtures).permute(1, 2, 0)[None, :, :, None, :]
        # no gradient past an output's bound (torch.clamp): the training's
        # straight-through clamp asks pixels at the scale floor for smaller
        # scales still, which the shared weights then give all the others
        # (held-out effort 7: 4.04 % saved against 3.19-3.43 %; docs/MODELS.md, nc 0.27.0)
        bits = mixture_bits(raw, sample.values[None, :, None, idx], spec, bound=torch.clamp)
        return loss + bits.sum() / len(idx)

    # Adam's first steps move every weight by the whole step size: at the
    # full step the first one doubled the code length (3.1 -> 6.5 bits) and
    # the fit ended where the recovery left it, its seed moving the result
    # by 1.6 % on average; later it wanders (+-2 % on the sample from one
    # 100 steps to the next).  A warm-up and keeping the best of the second
    # half's states (judged on a fixed seventh of the sample) halve the
    # seeds' spread and gain 0.9 % (held-out photographs, docs/MODELS.md).
    opt = Adam(params, lr=LEARNING_RATE)
    gen = torch.Generator().manual_seed(SEED + fit.seed)
    judged = torch.arange(0, len(sample), 7)
    best_bits, best = float("inf"), None
    warm = max(1.0, WARM_UP * total)
    for k in range(total):
        opt.lr = LEARNING_RATE * (1 - k / total) * min(1.0, (k + 1) / warm)
        # the head's change moves freely for the first half (rounded from the
        # start, it stalls: held-out e7 -4.27/-4.19 % against -4.54/-4.57 %)
        # and is rounded in the second, whose states are the ones judged
        late = k >= total // 2
        idx = torch.randint(0, len(sample), (min(batch, len(sample)),), generator=gen)
        loss = loss_of(idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if late and ((k + 1) % BEST_EVERY == 0 or k == total - 1):
            with torch.no_grad():
                bits = float(loss_of(judged))
            if bits < best_bits:
                best_bits, best = bits, [p.detach().clone() for p in params]
    if best is not None:
        with torch.no_grad():
            for p, kept in zip(params, best):
                p.copy_(kept)
    return _image_change(d_head, sample.head_gain, factors, n_hidden, len(ranks))


def _image_change(d_head, head_gain, factors: dict, n_hidden: int, depth: int) -> ImageChange:
    """The integers the file holds for the fit's state: its head's change
    (``d_head`` None: none) and the low-rank changes of the last ``depth``
    of ``n_hidden`` hidden layers (``factors``: layer -> (down, up)), each
    rounded as ``_as_sent`` rounds it."""
    import torch

    with torch.no_grad():
        def rounded(t):
            return _snapped(t).long().numpy()

        hidden = []
        for j in range(depth):
            i = n_hidden - 1 - j
            change = LowRankChange(*(rounded(f) for f in factors[i])) if i in factors else None
            hidden.append(change if change is not None and change.delta().any() else None)
        head = None if d_head is None else HeadChange(rounded(d_head * head_gain))
        return ImageChange(head, tuple(hidden))
