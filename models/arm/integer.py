"""Exact integer form of the ARM, evaluated with NumPy in float64.

All weights, biases and activations are integers and every accumulator stays
far below 2^53, so each matrix product is exact whatever BLAS kernel, thread
count or summation order computes it; rescaling is by powers of two followed
by ``floor``, also exact.  The encoder and the decoder therefore derive the
same integer mixture parameters bit for bit on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .spec import ARMSpec


@dataclass
class MixtureParams:
    """Integer parameters of each subpixel's logistic mixture, each (n, 3, K):
    logits (1/8 units), means (1/16 pixel, before channel shifts), scale
    levels (0..levels-1) and channel coefficients (1/64: G|R, B|R, B|G)."""

    logits: np.ndarray
    means: np.ndarray
    levels: np.ndarray
    coeffs: np.ndarray


# the ufunc behind np.clip: np.clip's Python-level dispatch costs more than
# the work on the decoder's wavefront-sized arrays (measured: 8.6 against 1 us)
_CLIP = getattr(np, "_core", getattr(np, "core", None)).umath.clip


def clip(a: np.ndarray, lo, hi, out: np.ndarray | None = None) -> np.ndarray:
    """np.clip(a, lo, hi, out=out), with less overhead."""
    return _CLIP(a, lo, hi, out=out)


# The rescaling after each product, one compiled pass instead of NumPy's
# four (add, scale, floor, clip), whose dispatch and temporaries cost the
# decoder's wavefront-sized batches a quarter of the product's own time
# (measured: 210 against 161 us for 220 x 128 x 128).  The same float64
# operations in the same order: every value stays an exact integer.
@numba.njit(cache=True, nogil=True)
def _activate(acc, bias, scale, top):
    """acc <- clip(floor((acc + bias) * scale), 0, top), in place: a hidden
    layer's activations from its product ``acc`` (n, out)."""
    n, m = acc.shape
    for i in range(n):
        for j in range(m):
            acc[i, j] = min(max(np.floor((acc[i, j] + bias[j]) * scale), 0.0), top)


@numba.njit(cache=True, nogil=True)
def _head_fields(acc, bias, scale, offset, lo, hi, out):
    """out[i, f, k] = clip(floor((acc[i, f K + k] + bias[f K + k]) * scale[f])
    + offset[f], lo[f], hi[f]): the head's accumulator (n, FIELDS K) on each
    field's integer grid."""
    n, fields, k = out.shape
    for i in range(n):
        for f in range(fields):
            for j in range(k):
                v = np.floor((acc[i, f * k + j] + bias[f * k + j]) * scale[f]) + offset[f]
                out[i, f, j] = int(min(max(v, lo[f]), hi[f]))


class IntegerARM:
    def __init__(self, spec: ARMSpec, layers: list[tuple[np.ndarray, np.ndarray]],
                 skip: np.ndarray):
        """layers: (weight (in, out), bias (out,)) integer arrays, first to head;
        skip: (context, out) integer weights of the linear context-to-head path."""
        self.spec = spec
        self.layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
        self._skip_weights = np.asarray(skip, np.float64)
        # the skip accumulates at scale 2^-(weight_frac + input_frac); the head at
        # 2^-(weight_frac + act_frac): pre-multiply by the (exact) power of two
        self.skip = np.asarray(skip, np.float64) * float(2 ** (spec.act_frac - spec.input_frac))
        self._output_grids()
        self._rounding_biases()
        self._check_exactness()

    def _check_exactness(self) -> None:
        s = self.spec
        bound = 128.0  # first-layer inputs are pixel - 128
        for (w, _), b in zip(self.layers, self._biases):
            acc = bound * np.abs(w).sum(axis=0).max() + np.abs(b).max()
            if acc >= 2.0**52:
                raise ValueError("weights too large for exact float64 evaluation")
            bound = float(s.act_max)
        if 128.0 * np.abs(self.skip).sum(axis=0).max() >= 2.0**52:
            raise ValueError("skip weights too large for exact float64 evaluation")

    def __call__(self, context: np.ndarray, adjust=None) -> MixtureParams:
        """context: (n, len(neighbourhood) * 3) integers, pixel value - 128.
        ``adjust(h, acc)``, if given, may change the head's integer
        accumulator ``acc`` (n, outputs) in place, knowing the last hidden
        activations ``h`` (the codec's online head)."""
        s = self.spec
        h, acc = self.hidden_features(context)
        acc += h @ self.layers[-1][0]
        if adjust is not None:
            adjust(h, acc)
        # head: acc at scale 2^-(weight_frac + act_frac); (n, FIELDS, K), each
        # field group rescaled to its grid, offset and clipped
        out = np.empty((len(acc), 12, s.mixtures), np.int64)
        _head_fields(acc, self._biases[-1], self._out_scale, self._out_offset, self._out_lo,
                     self._out_hi, out)
        return MixtureParams(out[:, 0:3], out[:, 3:6], out[:, 6:9], out[:, 9:12])

    def hidden_features(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the last hidden layer's integer activations (n, hidden), the
        skip path's integer contribution to the head's accumulator (n,
        outputs)) of ``context``: what the head reads (``__call__`` adds its
        product and bias)."""
        context = context.astype(np.float64)
        h = context
        for i in range(len(self.layers) - 1):
            h = self.hidden_layer(i, h)
        return h, self.skip_path(context)

    def skip_path(self, context: np.ndarray) -> np.ndarray:
        """The linear context-to-head path's integer contribution to the
        head's accumulator (n, outputs), ``context`` as float64 integers."""
        return context @ self.skip

    def hidden_layer(self, i: int, h: np.ndarray) -> np.ndarray:
        """Hidden layer ``i``'s integer activations from its inputs ``h`` (float64 integers)."""
        h = h @ self.layers[i][0]
        _activate(h, self._biases[i], self._hidden_scales[i], float(self.spec.act_max))
        return h

    def rounded_bias(self, layer: int) -> np.ndarray:
        """Layer ``layer``'s bias with its rounding's 1/2 folded in (see
        ``_rounding_biases``): a hidden layer's activation is
        floor((h @ w + rounded_bias) * hidden_scale), clipped."""
        return self._biases[layer]

    def hidden_scale(self, layer: int) -> float:
        """The power of two taking hidden layer ``layer``'s accumulator to its activations' grid."""
        return float(self._hidden_scales[layer])

    def with_changes(self, head: np.ndarray, hidden=()) -> "IntegerARM":
        """This network with integers added to the head's weights (``head``,
        (hidden, outputs)) and to hidden layers' (``hidden[j]``: the j-th
        hidden layer's, counted back from the last; None leaves one as it
        is): a per-image adaptation.  Raises ValueError if that leaves the
        exact range."""
        if len(hidden) >= len(self.layers):
            raise ValueError("network change of more layers than the network has")
        layers = [(w, b) for w, b in self.layers]
        for i, delta in zip(range(-1, -len(self.layers) - 1, -1), (head, *hidden)):
            if delta is None:
                continue
            w, b = layers[i]
            if delta.shape != w.shape:
                raise ValueError("network change of the wrong shape")
            layers[i] = (w + delta, b)
        return IntegerARM(self.spec, layers, self._skip_weights)

    def _rounding_biases(self) -> None:
        """Biases with the rounding's 1/2 folded in.  Every layer rescales
        its integer accumulator by 2^-k (k > 0) and rounds half up:
        floor(acc * 2^-k + 1/2) = floor((acc + 2^(k-1)) * 2^-k), and 2^(k-1)
        is an integer, so adding it to the bias keeps every value an exact
        integer and saves the decoder a pass over each layer's output."""
        s = self.spec
        self._biases, self._hidden_scales = [], []
        for i, (_, b) in enumerate(self.layers[:-1]):
            in_frac = s.input_frac if i == 0 else s.act_frac
            k = s.weight_frac + in_frac - s.act_frac
            assert k >= 1
            self._biases.append(b + 2.0 ** (k - 1))
            self._hidden_scales.append(2.0 ** -k)
        # head: one k per field (the grids of _output_grids), fields are (12, K) row-major
        k = -np.log2(self._out_scale)
        assert np.all(k >= 1) and np.all(k == np.round(k))
        half = np.repeat(2.0 ** (k - 1), self.spec.mixtures)
        self._biases.append(self.layers[-1][1] + half)

    def _output_grids(self) -> None:
        """Per field (12,): the power of two taking the head's scale to the
        field's grid, the offset added after rounding and the clipping bounds
        (logits, means in 1/16 around 128, scale levels, coefficients)."""
        s = self.spec
        out_frac = s.weight_frac + s.act_frac
        # level = round((raw - log_scale_min) * 2^frac); log_scale_min * 2^frac is an integer
        ls_offset = -s.log_scale_min * 2**s.log_scale_frac
        assert ls_offset == int(ls_offset)
        groups = [  # (fraction bits, offset, low, high)
            (s.logit_frac, 0, -s.logit_range, s.logit_range),
            (s.input_frac + s.mean_frac, 128 * 2**s.mean_frac, s.mean_min, s.mean_max),
            (s.log_scale_frac, ls_offset, 0, s.log_scale_levels - 1),
            (s.coeff_frac, 0, -s.coeff_max, s.coeff_max),
        ]
        col = lambda k: np.repeat([float(g[k]) for g in groups], 3)  # noqa: E731
        self._out_scale = np.repeat([2.0 ** (g[0] - out_frac) for g in groups], 3)
        self._out_offset, self._out_lo, self._out_hi = col(1), col(2), col(3)


def shifted_means(means: np.ndarray, coeffs: np.ndarray, channel: int,
                  r: np.ndarray | None, g: np.ndarray | None, spec: ARMSpec) -> np.ndarray:
    """Means (n, K) of ``channel`` after the shifts by the already-coded
    channels of the same pixel: round(coeff * (value - 128) * 16) in 1/16 pixel."""
    m = means[:, channel]
    if channel == 0:
        return m
    half = 1 << (spec.coeff_frac - spec.mean_frac - 1)
    sh = spec.coeff_frac - spec.mean_frac
    if channel == 1:
        acc = coeffs[:, 0] * (r[:, None] - 128)
    else:
        acc = coeffs[:, 1] * (r[:, None] - 128) + coeffs[:, 2] * (g[:, None] - 128)
    return clip(m + ((acc + half) >> sh), spec.mean_min, spec.mean_max)
