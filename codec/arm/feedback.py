"""Error feedback for the ARM: corrections its network cannot make itself.

Why.  The network sees a few rows of pixels (22 or 37).  Its prediction
errors are locally correlated (on held-out photos a residual correlates about 0.3 with its left
neighbour's), because a neighbour's error carries information from beyond
the context; and how surprised the model was nearby says how confident it
should be here.  Classic lossless coders use both (CALIC's bias cancellation
and error energy).  The encoder fits, for each image:

* **bias coefficients**: a channel's means move by a linear combination of
  the residuals at ``FEEDBACK_OFFSETS`` in that channel and of the same
  pixel's earlier channels (weighted least squares, coefficients in 1/64);
* a **context table**: a channel's scale level moves by a shift chosen per
  context ``energy * SURPRISES + within``, where a subpixel's *surprise* is
  its bucket of |residual| / scale, *energy* the sum of the surprises of the
  four nearest neighbours and *within* the largest surprise of the pixel's
  earlier channels.

Bias residuals are taken against the network's means, not the corrected
ones, so nothing is recursive: the encoder corrects the whole image at once,
the decoder wavefront by wavefront, both with the same integer arithmetic.
Every offset lies in the network's neighbourhood, hence in earlier
wavefronts.  Held-out photos (768x512 crops and halves): -3 % of the bits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codec.errors import FormatError
from models.arm.integer import clip
from models.arm.spec import ARMSpec

FEEDBACK_OFFSETS = ((0, -1), (-1, -1), (-1, 0), (-1, 1), (0, -2), (-2, 0),
                    (0, -3), (-1, -2), (-2, -1), (-2, 1))
ENERGY_NEIGHBOURS = 4            # the first four offsets: left, up-left, up, up-right
COEFF_FRAC = 6
COEFF_MAX = 127                  # int8
SURPRISE_EDGES = (0.5, 1.0, 2.0, 4.0)   # in scales
SURPRISES = len(SURPRISE_EDGES) + 1
ENERGIES = ENERGY_NEIGHBOURS * (SURPRISES - 1) + 1
CONTEXTS = ENERGIES * SURPRISES
SHIFT_RANGE = (-8, 13)           # context shifts, as the band shifts
BAND_SHIFT = 1                   # the calibration table's band: level >> 1
ROBUST_ROUNDS = 3                # reweighting rounds of the bias regression (encoder only)


def level_shift_bits(values, means, levels, mix, group, groups, tables, top, offsets):
    """(len(offsets), groups): ideal bits of each group's symbols with every
    candidate shift of their scale levels.  values (n,), others (n, K)."""
    return np.stack([np.bincount(group, -tables.log2_probabilities(
        values, means, clip(levels + o, 0, top), mix), minlength=groups) for o in offsets])


def surprise_thresholds(spec: ARMSpec) -> np.ndarray:
    """(levels, edges) integer thresholds on |residual| in 1/16 pixel: a
    residual is past edge e at scale level l when it is >= thresholds[l, e].

    ceil(16 * scale * edge) computed in float64; a value within 1e-9 of an
    integer is snapped to it, so any exp() accurate to 1e-12 gives the same
    table (none of the shipped models' values comes within 1e-6 of one)."""
    levels = np.arange(spec.log_scale_levels)
    scale = np.exp(spec.log_scale_min + levels / 2**spec.log_scale_frac)
    x = (1 << spec.mean_frac) * scale[:, None] * np.asarray(SURPRISE_EDGES)[None, :]
    snapped = np.abs(x - np.round(x)) < 1e-9
    return np.where(snapped, np.round(x), np.ceil(x)).astype(np.int64)


@dataclass
class ErrorFeedback:
    """The side information of ARM layout 2 (after the band table)."""

    coeffs: list[np.ndarray]      # channel c: (len(FEEDBACK_OFFSETS) + c,) int, 1/64
    context_shift: np.ndarray     # (C, CONTEXTS) int

    # -- bytes ----------------------------------------------------------------
    @staticmethod
    def size(channels: int) -> int:
        return ErrorFeedback.coefficient_count(channels) + channels * CONTEXTS

    @staticmethod
    def coefficient_count(channels: int) -> int:
        """The bias coefficients of all channels: channel c's one per
        feedback offset and per earlier channel."""
        return sum(len(FEEDBACK_OFFSETS) + c for c in range(channels))

    @classmethod
    def zero(cls, channels: int) -> "ErrorFeedback":
        """No corrections: what the encoder starts fitting from."""
        return cls([np.zeros(len(FEEDBACK_OFFSETS) + c, np.int64) for c in range(channels)],
                   np.zeros((channels, CONTEXTS), np.int64))

    def to_bytes(self) -> bytes:
        return (np.concatenate(self.coeffs).astype(np.int8).tobytes()
                + self.context_shift.astype(np.int8).tobytes())

    @classmethod
    def from_bytes(cls, data: bytes, channels: int) -> "ErrorFeedback":
        if len(data) != cls.size(channels):
            raise FormatError("ARM segment has a truncated feedback table")
        return cls.from_values(np.frombuffer(data, np.int8).astype(np.int64), channels)

    @classmethod
    def from_values(cls, a: np.ndarray, channels: int) -> "ErrorFeedback":
        """The table whose integers, in ``to_bytes``'s order, are ``a``;
        raises FormatError on a context shift out of range."""
        coeffs, at = [], 0
        for c in range(channels):
            n = len(FEEDBACK_OFFSETS) + c
            coeffs.append(a[at:at + n])
            at += n
        shifts = a[at:].reshape(channels, CONTEXTS)
        if shifts.min() < SHIFT_RANGE[0] or shifts.max() > SHIFT_RANGE[1]:
            raise FormatError("ARM segment has an invalid feedback table")
        return cls(coeffs, shifts)


def pick(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The entry ``index[...]`` of each row of ``a`` (..., K): what
    np.take_along_axis does, without its overhead on small arrays."""
    k = a.shape[-1]
    flat = a.reshape(-1, k)
    return flat[np.arange(len(flat)), index.reshape(-1)].reshape(a.shape[:-1])


class FeedbackModel:
    """The integer corrections of one segment, and the buffers of residuals
    and surprises they read (laid out like the coder's padded pixel buffer;
    outside the image both are 0).

    Per channel c of a batch of pixels (the whole image when encoding, one
    wavefront when decoding), with d the dominant mixture component:

    * band = level_d >> 1 (the calibration table's band), b = table[c, band];
    * shift = round(sum coeff * residual / 64) over the neighbours' residuals
      in channel c and this pixel's earlier channels; means += shift;
    * level = clip(level + b + context_shift[c, energy * SURPRISES + within]);
    * once the value v is known: residual = 16 v - mean_d (the network's),
      surprise = #{edges e : |16 v - mean_d - shift| >= thresholds[clip(level_d + b), e]}.
    """

    def __init__(self, feedback: ErrorFeedback, calibration: np.ndarray, spec: ARMSpec,
                 geometry, channels: int):
        """geometry: the coder's ``Wavefronts`` (padded layout, coding order)."""
        self.fb, self.calibration, self.spec = feedback, calibration, spec
        self.geo, self.channels = geometry, channels
        stride = geometry.stride
        self.offsets = np.array([dy * stride + dx for dy, dx in FEEDBACK_OFFSETS], np.int64)
        # residuals in columns 0..C-1, surprises in C..2C-1: one gather reads both
        rows = geometry.height + geometry.top
        self.buffer = np.zeros((rows * stride, 2 * channels), np.int64)
        self.thresholds = surprise_thresholds(spec)
        self.top = spec.log_scale_levels - 1
        nf = len(FEEDBACK_OFFSETS)
        self.neighbour_coeffs = np.stack([c[:nf] for c in feedback.coeffs], 1)   # (nf, C)

    # -- buffers --------------------------------------------------------------
    def neighbours(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, C) neighbour part of the bias accumulators, (n, C) energies,
        of the pixels ``flat`` (a wavefront: one gather of every neighbour)."""
        C = self.channels
        g = self.buffer[flat[:, None] + self.offsets[None, :]]        # (n, nf, 2C)
        acc = np.einsum("nfc,fc->nc", g[:, :, :C], self.neighbour_coeffs)
        return acc, g[:, :ENERGY_NEIGHBOURS, C:].sum(axis=1)

    def raster(self, dy: int, dx: int) -> np.ndarray:
        """(H, W, 2C) view of the buffer at offset (dy, dx) from every pixel
        of the image, in raster order: whole-image work without gathers."""
        g = self.geo
        b = self.buffer.reshape(-1, g.stride, 2 * self.channels)
        return b[g.top + dy:g.top + dy + g.height, g.left + dx:g.left + dx + g.width]

    def neighbours_all(self) -> tuple[np.ndarray, np.ndarray]:
        """``neighbours`` of every pixel, in coding order (the encoder)."""
        C = self.channels
        acc = np.zeros((self.geo.height, self.geo.width, C), np.int64)
        energy = np.zeros_like(acc)
        for f, (dy, dx) in enumerate(FEEDBACK_OFFSETS):
            view = self.raster(dy, dx)
            acc += view[..., :C] * self.neighbour_coeffs[f]
            if f < ENERGY_NEIGHBOURS:
                energy += view[..., C:]
        return acc[self.geo.ys, self.geo.xs], energy[self.geo.ys, self.geo.xs]

    def store_residuals(self, flat, residual):
        self.buffer[flat, :self.channels] = residual

    def store_surprises(self, flat, surprise):
        self.buffer[flat, self.channels:] = surprise

    # -- one channel ----------------------------------------------------------
    def dominant_terms(self, c: int, means, levels, mix):
        """Of each pixel's dominant component in channel c, each (n,): its
        network mean, its scale level and the band table's shift for it."""
        dom = np.argmax(mix, axis=1)
        rows = np.arange(len(dom))
        level_d = levels[rows, dom]
        return means[rows, dom], level_d, self.calibration[c, level_d >> BAND_SHIFT]

    def shift(self, c: int, neighbour_acc, earlier_residual) -> np.ndarray:
        acc = neighbour_acc
        if c:
            acc = acc + earlier_residual @ self.fb.coeffs[c][len(FEEDBACK_OFFSETS):]
        return (acc + (1 << COEFF_FRAC - 1)) >> COEFF_FRAC

    def levels(self, c: int, levels, band_shift, energy, within) -> np.ndarray:
        total = band_shift + self.fb.context_shift[c, energy * SURPRISES + within]
        return clip(levels + total[:, None], 0, self.top)

    def observe(self, values, mean_d, shift, level_d, band_shift):
        """(residual, surprise) of coded values."""
        v16 = values.astype(np.int64) << self.spec.mean_frac
        residual = v16 - mean_d
        band_level = clip(level_d + band_shift, 0, self.top)
        surprise = (np.abs(residual - shift)[:, None] >= self.thresholds[band_level]).sum(axis=1)
        return residual, surprise

    # -- decoder: one wavefront, channel by channel ---------------------------
    def correct(self, c, means, levels, mix, neighbour_acc, energy, residual, surprise):
        """Means and levels (n, K) of channel c of a wavefront, and what
        ``observe`` needs once its values are decoded.  residual and surprise
        (n, C) hold the pixels' earlier channels."""
        mean_d, level_d, band = self.dominant_terms(c, means, levels, mix)
        shift = self.shift(c, neighbour_acc[:, c], residual[:, :c])
        within = surprise[:, :c].max(axis=1) if c else 0
        means = clip(means + shift[:, None], self.spec.mean_min, self.spec.mean_max)
        return means, self.levels(c, levels, band, energy[:, c], within), (mean_d, shift, level_d, band)

    # -- encoder: the whole image ---------------------------------------------
    def apply_all(self, values, means, levels, mix):
        """Means and levels (n, C, K) of every pixel (coding order) after
        calibration and feedback; fills the buffers.  The same integers as
        the decoder's wavefront-by-wavefront pass, because every neighbour
        read lies in an earlier wavefront."""
        n, C, _ = means.shape
        terms = [self.dominant_terms(c, means[:, c], levels[:, c], mix[:, c]) for c in range(C)]
        v16 = values[:, :C].astype(np.int64) << self.spec.mean_frac
        residual = np.stack([v16[:, c] - terms[c][0] for c in range(C)], 1)
        flat = self.geo.flat
        self.store_residuals(flat, residual)
        acc, _ = self.neighbours_all()
        out_means, out_levels = np.empty_like(means), np.empty_like(levels)
        surprise = np.empty((n, C), np.int64)
        for c, (mean_d, level_d, band) in enumerate(terms):
            shift = self.shift(c, acc[:, c], residual[:, :c])
            out_means[:, c] = clip(means[:, c] + shift[:, None], self.spec.mean_min, self.spec.mean_max)
            surprise[:, c] = self.observe(values[:, c], mean_d, shift, level_d, band)[1]
        self.store_surprises(flat, surprise)
        _, energy = self.neighbours_all()
        within = np.zeros(n, np.int64)
        for c, (_, _, band) in enumerate(terms):
            out_levels[:, c] = self.levels(c, levels[:, c], band, energy[:, c], within)
            within = np.maximum(within, surprise[:, c])
        return out_means, out_levels, energy, surprise


def robust_regression(a: np.ndarray, r: np.ndarray, inv_scale: np.ndarray, unit: int,
                      rounds: int = ROBUST_ROUNDS) -> np.ndarray:
    """Coefficients x with r ~ a @ x (r in 1/unit pixel, inv_scale the
    predicted scale's inverse, per pixel), fitted for a logistic
    likelihood: least squares weighted by 1/scale^2, then ``rounds`` of
    iterative reweighting by tanh(u/2)/u, u the residual in scales (the
    logistic's own weights: a residual u scales out weighs about 2/u of
    one near the mean, where least squares weighs them alike).  The
    residuals are heavy-tailed; on the eight held5 photographs this saved
    0.12 % of the plan's bits (calibration and feedback, no network
    change) against plain weighted least squares."""
    wa, wr = a * inv_scale[:, None], r * inv_scale
    sol = np.linalg.lstsq(wa, wr, rcond=None)[0]
    for _ in range(rounds):
        u = np.maximum(np.abs(wr - wa @ sol) / unit, 1e-3)
        k = np.sqrt(np.tanh(u / 2) / u)
        sol = np.linalg.lstsq(wa * k[:, None], wr * k, rcond=None)[0]
    return sol


def fit(model: FeedbackModel, values, means, levels, mix, tables):
    """The error feedback of one image (encoder only: any float arithmetic is
    fine here, the result is written to the file).  ``model`` holds the
    image's calibration table and is updated in place.  Returns (feedback,
    means, levels, estimated bits) with levels (n, C, K) before calibration."""
    spec, geo = model.spec, model.geo
    n, C, _ = means.shape
    nf = len(FEEDBACK_OFFSETS)
    _, base_levels, _, _ = model.apply_all(values, means, levels, mix)
    # bias: the regression of each residual on its regressors, rows in raster
    # order (``robust_regression``)
    residual = model.raster(0, 0)[..., :C].reshape(-1, C)
    neighbour = [model.raster(dy, dx)[..., :C].reshape(-1, C) for dy, dx in FEEDBACK_OFFSETS]
    coeffs = []
    for c in range(C):
        level = np.empty((geo.height, geo.width), np.int64)
        level[geo.ys, geo.xs] = pick(base_levels[:, c], np.argmax(mix[:, c], axis=1))
        w = np.exp(-(spec.log_scale_min + level.reshape(-1) / 2**spec.log_scale_frac))
        a = np.stack([v[:, c] for v in neighbour] + [residual[:, k] for k in range(c)], 1)
        sol = robust_regression(a, residual[:, c], w, 1 << spec.mean_frac)
        coeffs.append(clip(np.round(sol * 2**COEFF_FRAC), -COEFF_MAX, COEFF_MAX).astype(np.int64))
    model.fb = ErrorFeedback(coeffs, np.zeros((C, CONTEXTS), np.int64))
    model.neighbour_coeffs = np.stack([c[:nf] for c in coeffs], 1)
    new_means, new_levels, energy, surprise = model.apply_all(values, means, levels, mix)
    # context table: per channel and context, the level shift with the fewest bits
    stride = max(1, n * C // (1 << 17))
    within = np.zeros(n, np.int64)
    shifts = np.zeros((C, CONTEXTS), np.int64)
    candidates = np.arange(SHIFT_RANGE[0], SHIFT_RANGE[1] + 1)
    total = 0.0
    s = slice(None, None, stride)
    for c in range(C):
        ctx = energy[:, c] * SURPRISES + within
        within = np.maximum(within, surprise[:, c])
        bits = level_shift_bits(values[s, c], new_means[s, c], new_levels[s, c], mix[s, c], ctx[s],
                                CONTEXTS, tables, model.top, candidates)
        best = candidates[np.argmin(bits, axis=0)]
        best[bits.max(axis=0) == 0] = 0
        shifts[c] = best
        total += stride * float(bits.min(axis=0).sum())
    model.fb = ErrorFeedback(coeffs, shifts)
    out_means, out_levels, _, _ = model.apply_all(values, means, levels, mix)
    return model.fb, out_means, out_levels, total
