"""Compiled kernels of the ARM decoder's wavefront loop (numba).

The decoder handles one wavefront at a time (``codec.py``), a few hundred
pixels, and for each of its channels it derives the mixture (means shifted
by the earlier channels, weights, calibrated or feedback-corrected levels),
decodes, then records residuals and surprises.  In NumPy that is some
thirty array operations per channel whose dispatch costs more than their
arithmetic; here each step is one compiled call over the wavefront.

Everything is integer arithmetic (int64; right shifts floor, as NumPy's),
so the kernels give the same integers on every CPU, whatever instruction
set numba compiles for (``NUMBA_CPU_NAME=generic`` included, tested).  The
encoder computes the same quantities for the whole image at once with the
NumPy forms they mirror (``models/arm/integer.py``: ``shifted_means``;
``codec.py``: ``_calibrate``; ``feedback.py``: ``FeedbackModel``); a single
differing integer would fail the tile's check value, and every round-trip
test compares the two.
"""
from __future__ import annotations

import numba

_jit = numba.njit(cache=True, nogil=True)


@_jit
def gather_context(buffer, flat, offsets, out):
    """out (n, len(offsets) * 3), float64: the context pixels of ``flat``
    minus 128, ordered (offset, channel) (``Wavefronts.context``)."""
    for i in range(len(flat)):
        for o in range(len(offsets)):
            at = flat[i] + offsets[o]
            for c in range(3):
                out[i, 3 * o + c] = buffer[at, c] - 128


@_jit
def channel_mixture(channel, logits, means, levels, coeffs, decoded, mix_weights,
                    coeff_frac, mean_frac, mean_min, mean_max,
                    out_means, out_levels, out_weights, out_dominant):
    """Of each pixel's ``channel`` (n, K each): its means shifted by the
    pixel's decoded earlier channels ``decoded`` (n, 3), its scale levels,
    its integer mixture weights, and its dominant component (the largest
    weight, the first on ties)."""
    n, _, k = logits.shape
    half = 1 << (coeff_frac - mean_frac - 1)
    sh = coeff_frac - mean_frac
    for i in range(n):
        top = logits[i, channel, 0]
        for j in range(1, k):
            top = max(top, logits[i, channel, j])
        best = 0
        for j in range(k):
            m = means[i, channel, j]
            if channel == 1:
                m += (coeffs[i, 0, j] * (decoded[i, 0] - 128) + half) >> sh
            elif channel == 2:
                m += (coeffs[i, 1, j] * (decoded[i, 0] - 128)
                      + coeffs[i, 2, j] * (decoded[i, 1] - 128) + half) >> sh
            if channel:
                m = min(max(m, mean_min), mean_max)
            out_means[i, j] = m
            out_levels[i, j] = levels[i, channel, j]
            out_weights[i, j] = mix_weights[top - logits[i, channel, j]]
            if out_weights[i, j] > out_weights[i, best]:
                best = j
        out_dominant[i] = best


@_jit
def calibrate(levels, dominant, shifts, band_shift, top):
    """Each pixel's levels moved by ``shifts[band]``, its dominant level's
    band (``ARMPlaneCodec._calibrate`` for one channel), in place."""
    for i in range(len(levels)):
        s = shifts[levels[i, dominant[i]] >> band_shift]
        for j in range(levels.shape[1]):
            levels[i, j] = min(max(levels[i, j] + s, 0), top)


@_jit
def feedback_neighbours(buffer, flat, offsets, coeffs, channels, energy_neighbours,
                        out_acc, out_energy):
    """``FeedbackModel.neighbours``: per pixel and channel, the neighbours'
    residuals weighted by ``coeffs`` (offsets, C), and the sum of the
    nearest ``energy_neighbours`` neighbours' surprises."""
    for i in range(len(flat)):
        for c in range(channels):
            acc = 0
            energy = 0
            for f in range(len(offsets)):
                at = flat[i] + offsets[f]
                acc += buffer[at, c] * coeffs[f, c]
                if f < energy_neighbours:
                    energy += buffer[at, channels + c]
            out_acc[i, c] = acc
            out_energy[i, c] = energy


@_jit
def feedback_correct(channel, means, levels, dominant, band_shifts, band_shift, neighbour_acc,
                     energy, residual, surprise, earlier_coeffs, context_shifts, surprises,
                     coeff_frac, mean_min, mean_max, top, memo):
    """``FeedbackModel.correct`` in place on ``means`` and ``levels`` (n, K);
    memo (n, 4) keeps what ``feedback_observe`` needs: the dominant
    component's network mean and level, the bias shift and the band's shift."""
    half = 1 << (coeff_frac - 1)
    for i in range(len(means)):
        d = dominant[i]
        mean_d = means[i, d]
        level_d = levels[i, d]
        band = band_shifts[level_d >> band_shift]
        acc = neighbour_acc[i, channel]
        within = 0
        for c in range(channel):
            acc += residual[i, c] * earlier_coeffs[c]
            within = max(within, surprise[i, c])
        shift = (acc + half) >> coeff_frac
        total = band + context_shifts[energy[i, channel] * surprises + within]
        for j in range(means.shape[1]):
            means[i, j] = min(max(means[i, j] + shift, mean_min), mean_max)
            levels[i, j] = min(max(levels[i, j] + total, 0), top)
        memo[i, 0] = mean_d
        memo[i, 1] = shift
        memo[i, 2] = level_d
        memo[i, 3] = band


@_jit
def feedback_observe(channel, values, memo, thresholds, mean_frac, top, residual, surprise):
    """``FeedbackModel.observe``: residual and surprise of the decoded
    ``values`` of ``channel``, into column ``channel`` of the (n, C) arrays."""
    for i in range(len(values)):
        r = (values[i] << mean_frac) - memo[i, 0]
        level = min(max(memo[i, 2] + memo[i, 3], 0), top)
        miss = abs(r - memo[i, 1])
        count = 0
        for e in range(thresholds.shape[1]):
            if miss >= thresholds[level, e]:
                count += 1
        residual[i, channel] = r
        surprise[i, channel] = count
