"""Exact integer form of the IDF, in NumPy.

Every network of the flow and of its priors has 8-bit integer weights,
8-bit activations, inputs clamped to +-255 and biases below 2^20, so every
partial sum of a convolution is an integer bounded by the layer's weights
(computed at load).  Below 2^24 float32 represents all of them exactly, so
a float32 matrix product gives the same integers whatever its summation
order, blocking or instruction set; a layer whose bound is higher (a wide
coupling with large weights) computes in float64, exact below 2^53, which
no 8-bit layer of fewer than 2^28 inputs reaches.  So the width of a
coupling is never limited by the arithmetic; only its cost grows (issue
22).  Each convolution is therefore written as plain matrix products
(``ExactConv``), never as a transform-based algorithm (Winograd, FFT) that
would round.
Rescaling is floor(x * 2^k + 1/2).  So ``t(x)`` is the same integer at
encode and decode on any machine, and the flow inverts exactly.

Why NumPy, not PyTorch: the codec's IDF then never imports PyTorch, whose
import costs a decode process about 2 s, more than the flow's whole decode
of a Kodak image (issue 22).  The training form (``network.py``) stays in
PyTorch; ``tests/test_idf_codec.py`` checks the two code alike.

Arrays are (C, H, W) float32 holding integers: one image, no batch axis
(float64 after a float64 layer).
"""
from __future__ import annotations

import copy

import numpy as np

from .spec import IDFSpec, anchors, group_rows

INPUT_FRAC = 6  # network inputs enter at scale 2^-6: the integer is the latent
FLOAT32_EXACT = 2**24   # every integer below this is a float32
FLOAT64_EXACT = 2**53


def round_scaled(acc: np.ndarray, shift: int) -> np.ndarray:
    """floor(acc * 2^shift + 1/2), exact on integer-valued float32 (a
    power-of-two product and a floor); a new array."""
    out = acc * np.float32(2.0**shift)
    out += np.float32(0.5)
    return np.floor(out, out=out)


def squeeze(x: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (4C, H/2, W/2): channel 4c + 2i + j holds x[c, 2y+i, 2x+j]
    (PyTorch's pixel_unshuffle, which the training network uses)."""
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).transpose(0, 2, 4, 1, 3).reshape(4 * c, h // 2, w // 2)


def unsqueeze(x: np.ndarray) -> np.ndarray:
    """The inverse of :func:`squeeze` (pixel_shuffle)."""
    c, h, w = x.shape
    return x.reshape(c // 4, 2, 2, h, w).transpose(0, 3, 1, 4, 2).reshape(c // 4, 2 * h, 2 * w)


class ExactConv:
    """A convolution layer (weights (Cout, Cin, k, k), k = 1 or 3, zero
    padding k // 2, and bias) as matrix products over the zero-padded input
    flattened with rows of W + 2: tap (dy, dx) reads one contiguous window
    of it at offset dy (W + 2) + dx, and the two extra columns each output
    row gets are dropped at the end.  A layer that widens (Cout >= Cin)
    stacks the three dx windows into one (3 Cin) input and makes three
    products; one that narrows makes one per tap over the windows in place
    (measured: each order is up to 3x faster on its side)."""

    def __init__(self, w: np.ndarray, b: np.ndarray, dtype=np.float32):
        """``dtype``: float32, or float64 where the layer's partial sums may
        reach 2^24 (``IntegerNet`` decides)."""
        self.dtype = dtype
        w = np.asarray(w, dtype)
        self.weights = w
        self.bias = np.asarray(b, dtype)[:, None]
        cout, cin, k, _ = w.shape
        self.k, self.widens = k, cout >= cin
        self.taps = np.ascontiguousarray(w.transpose(2, 3, 0, 1))            # (dy, dx, Cout, Cin)
        self.rows = np.ascontiguousarray(w.transpose(2, 0, 3, 1).reshape(k, cout, k * cin))  # (dy, Cout, dx Cin)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        cin, h, width = x.shape
        cout = len(self.bias)
        if self.k == 1:
            out = self.taps[0, 0] @ x.reshape(cin, -1).astype(self.dtype, copy=False)
            out += self.bias
            return out.reshape(cout, h, width)
        stride = width + 2
        size = (h + 2) * stride
        padded = np.zeros((cin, size + 2), self.dtype)   # +2: the last window's end
        padded[:, :size].reshape(cin, h + 2, stride)[:, 1:h + 1, 1:width + 1] = x
        n = h * stride
        out = np.empty((cout, n), self.dtype)
        out[:] = self.bias
        if self.widens:
            stacked = np.empty((3, cin, size), self.dtype)
            for dx in range(3):
                stacked[dx] = padded[:, dx:dx + size]
            stacked = stacked.reshape(3 * cin, size)
            for dy in range(3):
                out += self.rows[dy] @ stacked[:, dy * stride:dy * stride + n]
        else:
            for dy in range(3):
                for dx in range(3):
                    offset = dy * stride + dx
                    out += self.taps[dy, dx] @ padded[:, offset:offset + n]
        return out.reshape(cout, h, stride)[:, :, :width]


class IntegerNet:
    """The integer Int8ConvNet: returns the last layer's accumulator and its
    scale exponent (value = acc * 2^-frac)."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], spec: IDFSpec,
                 float64: bool = False):
        """``float64``: every layer in float64, not only those whose sums
        could pass 2^24 (``bench idf-width`` times that arithmetic)."""
        self.spec = spec
        self.layers = []
        bound = spec.input_clamp
        for w, b in layers:
            total = (bound * float(np.abs(np.asarray(w, np.float64)).sum(axis=(1, 2, 3)).max())
                     + float(np.abs(np.asarray(b, np.float64)).max()))
            if total >= FLOAT64_EXACT:
                raise ValueError("IDF weights exceed the exact float64 range")
            single = total < FLOAT32_EXACT and not float64
            self.layers.append(ExactConv(w, b, np.float32 if single else np.float64))
            bound = spec.act_max

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        h = self.features(x)
        frac = INPUT_FRAC if len(self.layers) == 1 else self.spec.act_frac
        return self.layers[-1](h), self.spec.weight_frac + frac

    def features(self, x: np.ndarray) -> np.ndarray:
        """What the last layer reads: the last hidden activations (integers,
        at scale 2^-act_frac), which a change of the last layer leaves as
        they are (``codec/idf/adaptation.py`` fits on them)."""
        s = self.spec
        h = np.clip(x, -s.input_clamp, s.input_clamp)
        frac = INPUT_FRAC
        for layer in self.layers[:-1]:
            h = round_scaled(layer(h), s.act_frac - s.weight_frac - frac)
            np.maximum(h, 0, out=h)
            np.minimum(h, s.act_max, out=h)
            frac = s.act_frac
        return h

    def with_last_change(self, delta: np.ndarray) -> "IntegerNet":
        """This network with ``delta`` (integers, the last layer's weight
        shape) added to its last layer's weights; raises ValueError if a
        weight leaves the 8-bit grid."""
        last = self.layers[-1]
        if delta.shape != last.weights.shape:
            raise ValueError("prior change of the wrong shape")
        w = last.weights + delta
        if np.abs(w).max() > self.spec.weight_max:
            raise ValueError("prior change leaves the weight grid")
        layers = [(layer.weights, layer.bias[:, 0]) for layer in self.layers[:-1]]
        return IntegerNet(layers + [(w, last.bias[:, 0])], self.spec)


class IntegerCoupling:
    def __init__(self, parts: int, nets: dict[int, IntegerNet]):
        self.parts, self.nets = parts, nets
        self.updated = sorted(nets)

    def _shift(self, i, parts):
        others = np.concatenate([q for j, q in enumerate(parts) if j != i])
        acc, frac = self.nets[i](others)
        return round_scaled(acc, -frac)

    def forward(self, x):
        parts = np.split(x, self.parts)
        for i in self.updated:
            parts[i] = parts[i] + self._shift(i, parts)
        return np.concatenate(parts)

    def inverse(self, y):
        parts = np.split(y, self.parts)
        for i in reversed(self.updated):
            parts[i] = parts[i] - self._shift(i, parts)
        return np.concatenate(parts)


class IntegerPrior:
    """Means (1/2^mean_frac units) and scale levels of a factored-out latent,
    group by group (``IDFSpec.prior_groups``) and, with a checkerboard prior,
    half by half within a group (the training ``Prior``)."""

    def __init__(self, nets: list[IntegerNet | None], bias: np.ndarray, spec: IDFSpec,
                 spatial: list[IntegerNet] | None = None):
        self.nets, self.spatial, self.spec = nets, spatial, spec
        self.groups = len(nets)
        self.group_size = len(bias) // (2 * self.groups)
        bias = np.asarray(bias, np.float32)  # integers at the output scale
        self.group_bias = [bias[group_rows(g, self.group_size, self.groups)] for g in range(self.groups)]

    def group(self, g: int, kept, previous: list, shape, anchor_values=None):
        """Group g's (means, levels), each (k, H, W) int64, given the kept
        part (or None) and the groups before it; given also the group's
        ``anchor_values`` (zero elsewhere), those of its non-anchor half."""
        s = self.spec
        frac = s.weight_frac + s.act_frac  # the prior net's output scale
        acc = np.broadcast_to(self.group_bias[g][:, None, None], (len(self.group_bias[g]),) + tuple(shape[1:]))
        net, x = self.net_input(g, kept, previous, anchor_values)
        if net is not None:
            out, frac2 = net(x)
            assert frac2 == frac
            acc = acc + out
        mean_acc, ls_acc = np.split(acc, 2)
        # mean = 2^mean_gain_log2 * raw in latent units, on a 2^-mean_frac grid
        means = np.clip(round_scaled(mean_acc, s.mean_gain_log2 + s.mean_frac - frac), -2**20, 2**20)
        offset = -s.log_scale_min * 2**s.log_scale_frac
        levels = np.clip(round_scaled(ls_acc, s.log_scale_frac - frac) + offset, 0, s.log_scale_levels - 1)
        return means.astype(np.int64), levels.astype(np.int64)

    def net_input(self, g: int, kept, previous: list, anchor_values=None):
        """(the network of group g, or of its non-anchor half given its
        ``anchor_values``; what it reads): None, None where it has none."""
        inputs = ([kept] if kept is not None else []) + list(previous)
        net = self.nets[g]
        if anchor_values is not None:
            net, inputs = self.spatial[g], inputs + [anchor_values]
        return net, (np.concatenate(inputs) if net is not None else None)

    def slots(self) -> list[tuple[str, int]]:
        """The networks a prior change may adapt, in the order the file
        lists them: each group's ('group', g) (if it has one), then each
        group's ('spatial', g) with a checkerboard prior."""
        out = [("group", g) for g, net in enumerate(self.nets) if net is not None]
        return out + [("spatial", g) for g in range(self.groups)] if self.spatial else out

    def slot_net(self, slot: tuple[str, int]) -> IntegerNet:
        kind, g = slot
        return self.nets[g] if kind == "group" else self.spatial[g]

    def with_changes(self, deltas: dict) -> "IntegerPrior":
        """This prior with ``deltas`` ({slot: last-layer change}) applied."""
        nets, spatial = list(self.nets), list(self.spatial) if self.spatial else None
        for (kind, g), delta in deltas.items():
            target = nets if kind == "group" else spatial
            target[g] = target[g].with_last_change(delta)
        prior = copy.copy(self)
        prior.nets, prior.spatial = nets, spatial
        return prior

    def __call__(self, kept, z):
        """(means, levels) of every channel of z, each group conditioned on
        the groups of z before it, and each non-anchor half on its anchors
        (the encoder's view: z is known)."""
        parts = np.split(z, self.groups)
        out = [self.group(g, kept, parts[:g], z.shape) for g in range(self.groups)]
        if self.spatial is not None:
            keep = anchors(*z.shape[1:])
            rest = [self.group(g, kept, parts[:g], z.shape, parts[g] * keep) for g in range(self.groups)]
            out = [(np.where(keep, m, m2), np.where(keep, l, l2)) for (m, l), (m2, l2) in zip(out, rest)]
        return np.concatenate([m for m, _ in out]), np.concatenate([l for _, l in out])


class IntegerIDF:
    def __init__(self, spec: IDFSpec, flows: list[list[IntegerCoupling]], priors: list[IntegerPrior]):
        self.spec, self.flows, self.priors = spec, flows, priors

    def forward(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """x: (3, H, W) integer-valued float32, H and W multiples of 2^levels.
        Returns [(z_l, kept_l)] finest first, as the training network does."""
        h = x - np.float32(128)
        out = []
        for level, couplings in enumerate(self.flows):
            h = squeeze(h)
            for c in couplings:
                h = c.forward(h)[::-1]
            if level == len(self.flows) - 1:
                out.append((h, None))
            else:
                z, h = np.split(h, 2)
                out.append((z, h))
        return out

    def inverse_level(self, level: int, h: np.ndarray) -> np.ndarray:
        """Undo one level: from its full output (z and kept concatenated) to
        the kept part of the level before (or the image, centred)."""
        for c in reversed(self.flows[level]):
            h = c.inverse(h[::-1])
        return unsqueeze(h)

    def with_prior_changes(self, changes: list[dict]) -> "IntegerIDF":
        """This flow with each level's prior changed by ``changes[level]``
        ({slot: last-layer change}, ``IntegerPrior.with_changes``)."""
        return IntegerIDF(self.spec, self.flows,
                          [p.with_changes(c) if c else p for p, c in zip(self.priors, changes)])
