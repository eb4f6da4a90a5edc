"""Lossless coding of 8-bit planes with the pixel autoregressive model.

Order of coding.  Pixel (y, x) is conditioned on the causal neighbourhood of
the ARM (``models/arm/spec.py``), which only reaches pixels with a smaller
wavefront index ``t = x + 2 y``.  All pixels of one wavefront are therefore
independent given the earlier ones, and the decoder handles them as one
batch: it evaluates the network for just those pixels (their contexts are
complete), then decodes their R, then their G (means shifted by R), then
their B.  A 768x512 image takes 1 790 such steps instead of 393 216
pixel-by-pixel passes.  The encoder knows every pixel, so it evaluates the
network once over the whole image and codes the symbols in the decoder's
order.

Grey planes use the same network with the grey value in all three context
channels and code only the first channel.

Scale calibration.  A static model is too confident on some images (grain,
noise) and too cautious on others, and not by the same factor at every
scale.  So the encoder fits a small table: for each channel and each band of
predicted scale levels, the shift of the scale level that codes that band's
symbols in the fewest bits.  The table (C x 32 bytes) follows the segment's
prefix and costs under 0.001 bpp on a Kodak-sized image; the decoder applies
the same shifts.  (Files from before the table have one shift per segment in
the prefix; they decode as they always did.)

Error feedback (``feedback.py``).  On top of the table, the encoder fits
corrections from the residuals of already-coded neighbours: a linear bias of
the means and a scale shift per local error-energy context.  They follow the
table (layout 2) where they save more than they cost.

Online context bias (``online.py``, layout byte flag ONLINE).  Last, a
bias per context of the neighbours' residuals, learnt while coding by
encoder and decoder alike, moves the means; only the flag is sent.

Online head (``online_head.py``, layout byte flag LEARN).  The decoder
also trains the head's logit, mean and log-scale outputs on the pixels it
has decoded; the encoder replays the decoder's loop (``_wavefronts``) with
the values it knows to get the same mixtures, and sets the flag where
they code smaller.

Per-image change (``adaptation.py``).  At efforts 7 and up the encoder also
fits low-rank changes of the network's last two hidden layers to an RGB
image and codes them first in the stream (prefix bytes 2 and 3) when the
image codes smaller with them (before nc 0.33 a change of the last layer
too, which decoders still read).

Decoding runs the network per wavefront (BLAS) and everything per channel
in compiled integer kernels (``kernels.py``); encoding uses the NumPy forms
of the same arithmetic over the whole image at once.  Symbols are coded in
32-value windows around their dominant component's mean, with an escape to
the values outside (``codec/entropy/window.py``; segments before nc 0.26
use full 256-entry rows): the same bits, a seventh of the rows.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from codec import weights
from codec.arm import adaptation
from codec.arm import feedback as arm_feedback
from codec.arm import kernels
from codec.arm import online as arm_online
from codec.arm import online_head as arm_online_head
from codec.arm import side_tables
from codec.arm.feedback import BAND_SHIFT, ErrorFeedback, FeedbackModel, pick
from codec.entropy import SymbolDecoder, SymbolEncoder, window
from codec.entropy.logistic import LogisticMixtureTables
from codec.errors import FormatError
from codec.pipeline.lossless import CodedPlanes
from models.arm.integer import IntegerARM, MixtureParams, clip, shifted_means
from models.arm.spec import WAVEFRONT_SKEW, ARMSpec

SCALE_OFFSETS = range(-3, 9)   # layout 0: the one shift of the scale level (1/8 log-scale)
CALIBRATION_OFFSETS = range(-8, 14)  # layout 1: the shift of each band
CALIBRATION_SAMPLE = 1 << 17   # symbols the encoder judges the shifts on
SEGMENT_PREFIX = 4
LAYOUT_SINGLE_OFFSET, LAYOUT_CALIBRATION, LAYOUT_FEEDBACK = 0, 1, 2
PAD_VALUE = 128        # outside the image, context pixels read as 128 (input 0)
NETWORK_BATCH = 1 << 11  # pixels per network evaluation when encoding (cache-sized)
SYMBOL_BATCH = 1 << 12   # pixels per batch of the ideal code length
WINDOWED = 16          # layout byte flag: symbols coded in windows (entropy/window.py; nc 0.26)
ONLINE = 32            # layout byte flag: the online context bias moves the means (online.py; nc 0.31)
LEARN = 64             # layout byte flag: the online head learns while coding (online_head.py; nc 0.32)
STEADY = 8             # layout byte flag, with LEARN: ... at nc 0.33's rates (online_head.RATES)
CODED_TABLES = 4       # layout byte flag, layouts 1 and 2: their tables open the stream, range-coded
                       # (side_tables.py; nc 0.34); before: raw bytes after the prefix


class _Prefix(NamedTuple):
    """What a segment's prefix (and raw tables) say (``ARMPlaneCodec._read_prefix``)."""

    layout: int
    calibration: np.ndarray | None  # (C, bands); None: coded in the stream (coded_tables)
    feedback: ErrorFeedback | None
    head_byte: int       # prefix byte 2: the head change's form (0: none, UNCHANGED_HEAD: none sent)
    rank: int            # prefix byte 3: the hidden layers' change (0: none)
    windowed: bool       # symbols coded in windows (WINDOWED, nc 0.26; before: full rows)
    online: bool         # the online context bias moves the means (ONLINE, nc 0.31)
    learn: tuple | None  # the online head's learning rates (LEARN, nc 0.32; STEADY, nc 0.33)
    coded_tables: bool   # the tables open the stream (CODED_TABLES, nc 0.34)
    body: bytes          # the range coder's stream


@dataclass
class _Plan:
    """What the encoder settled on for one plane group (``ARMPlaneCodec._plan``)."""

    layout: int
    calibration: np.ndarray
    feedback: ErrorFeedback | None
    change: adaptation.ImageChange | None
    change_levels: tuple | None      # the change's tables, one per column of its integers
    means: np.ndarray
    levels: np.ndarray
    mix: np.ndarray
    bits: float          # estimated: the symbols and all side information
    online: bool = False  # the means include the online context bias
    ideal: float | None = None  # the symbols' ideal bits under these means, where known
    learn: bool = False   # the mixtures are the online head's (online_head.py)


class Wavefronts:
    """Raster geometry of one plane: the padded buffer, the neighbourhood as
    flat offsets, and the pixels of each wavefront."""

    def __init__(self, height: int, width: int, spec: ARMSpec):
        nb = spec.neighbourhood
        self.top = -min(dy for dy, _ in nb)
        self.left = -min(dx for _, dx in nb)
        right = max(0, max(dx for _, dx in nb))
        self.height, self.width = height, width
        self.stride = width + self.left + right
        self.offsets = np.array([dy * self.stride + dx for dy, dx in nb], np.int64)
        ys, xs = np.divmod(np.arange(height * width, dtype=np.int64), width)
        t = xs + WAVEFRONT_SKEW * ys
        order = np.lexsort((ys, t))
        self.ys, self.xs = ys[order], xs[order]
        # flat index of each pixel (in coding order) in the padded buffer
        self.flat = (self.ys + self.top) * self.stride + self.xs + self.left
        counts = np.bincount(t)
        counts = counts[counts > 0]  # narrow images have empty wavefronts
        self.bounds = np.concatenate([[0], np.cumsum(counts)])

    def new_buffer(self) -> np.ndarray:
        """Padded (rows * stride, 3) buffer, every pixel PAD_VALUE."""
        return np.full(((self.height + self.top) * self.stride, 3), PAD_VALUE, np.int64)

    def context(self, buffer: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """(n, len(nb) * 3) integers, pixel - 128, ordered (offset, channel)."""
        ctx = buffer[flat[:, None] + self.offsets[None, :]]
        return (ctx - 128).reshape(len(flat), -1)


class ARMPlaneCodec:
    """The ARM codec for one image plane group: grey (1 channel) or RGB (3)."""

    codec_param = 0            # the ARM uses none: its layouts are in each segment

    def __init__(self, model_id: str):
        w = weights.load(model_id, "arm")
        tensors = w.tensors
        self.model_id = model_id
        self.spec = ARMSpec.from_dict(w.spec)
        n_layers = self.spec.hidden_layers + 1
        self.net = IntegerARM(self.spec, [(tensors[f"layer{i}.weight"], tensors[f"layer{i}.bias"])
                                          for i in range(n_layers)], tensors["skip.weight"])
        self.tables = LogisticMixtureTables(tensors["entropy.cdf"], tensors["entropy.mix_weights"],
                                            self.spec.mean_frac, self.spec.mean_max)

    # -- shared ---------------------------------------------------------------
    def _channel_model(self, p: MixtureParams, channel: int, r=None, g=None):
        means = shifted_means(p.means, p.coeffs, channel, r, g, self.spec)
        return means, p.levels[:, channel], self.tables.weights(p.logits[:, channel])

    # -- encode ---------------------------------------------------------------
    def encode(self, pixels: np.ndarray, layout: int | None = None, effort: int = 0,
               online: bool = True, learn: bool | None = None) -> CodedPlanes:
        """pixels: (H, W, C) uint8 with C = 1 (grey) or 3 (RGB).  ``layout``
        forces a segment layout (tests, measurements); by default the encoder
        writes the one with the fewest estimated bits.  At efforts 7 and up
        the network is adapted to RGB planes (``adaptation.py``) where that
        pays.  The online context bias (``online.py``) is used where it
        saves bits, never with ``online=False`` (tests, measurements); the
        online head (``online_head.py``) where it saves bits, always with
        ``learn=True``, never with ``learn=False``."""
        # cache-sized batches run fastest on one BLAS thread (measured)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._encode(pixels, layout, effort, online, learn)

    def _encode(self, pixels: np.ndarray, layout: int | None, effort: int = 0,
                online: bool = True, learn: bool | None = None) -> CodedPlanes:
        c = pixels.shape[2]
        geo, buf, values = self._layout(pixels)
        plan = self._plan(geo, buf, values, c, layout, online=online)
        fits = adaptation.fits_for_effort(effort)
        if c == 3 and fits and len(geo.flat) >= adaptation.MIN_PIXELS:
            # the plans under the changes side by side, as the fits ran
            changes = self._fit_change(geo, buf, values, fits)
            for adapted in adaptation.side_by_side(
                    lambda change: self._plan(geo, buf, values, c, layout, change, online), changes):
                if adapted.bits < plan.bits:
                    plan = adapted
        if learn is not False:
            plan = self._with_learning(geo, buf, values, c, plan, always=bool(learn))
        return self._write(geo, values, c, plan)

    def _with_learning(self, geo: Wavefronts, buf, values, c: int, plan: "_Plan",
                       always: bool = False) -> "_Plan":
        """``plan`` with the online head (``online_head.py``) where it
        codes the symbols in fewer ideal bits (``always``: whatever it
        costs): the decoder's loop replayed on the known values, since every
        mixture depends on what the head learnt from the ones before."""
        n, k = len(geo.flat), self.spec.mixtures
        means, levels, mix = (np.empty((n, c, k), np.int64) for _ in range(3))

        def replay(ch, a, m, l, w):
            b = a + len(m)
            means[a:b, ch], levels[a:b, ch], mix[a:b, ch] = m, l, w
            return values[a:b, ch]

        net = self.net if plan.change is None else plan.change.apply(self.net)
        self._wavefronts(geo, buf.copy(), net, plan.calibration, plan.feedback, plan.online,
                         arm_online_head.RATES, c, replay)
        ideal = self._ideal_bits(values, c, means, levels, mix)
        before = plan.ideal if plan.ideal is not None else self._ideal_bits(
            values, c, plan.means, plan.levels, plan.mix)
        if ideal >= before and not always:
            return plan
        return replace(plan, means=means, levels=levels, mix=mix, learn=True, ideal=ideal,
                       bits=plan.bits - (before - ideal))

    def _plan(self, geo: Wavefronts, buf, values, c: int, layout: int | None,
              change: adaptation.ImageChange | None = None, online: bool = True) -> "_Plan":
        """How to code the image under the model (changed by ``change``):
        every pixel's mixture, the layout with the fewest estimated bits
        (or ``layout``), its side information, and whether the online
        context bias (``online.py``; ``online=False``: never) moves the means."""
        net = self.net if change is None else change.apply(self.net)
        means, levels, mix = self._parameters(geo, buf, values, np.arange(len(geo.flat)), c, net)
        options = self._fit_calibration(values[:, :c], means, levels, mix)
        feedback = None
        # error feedback builds on the table
        if layout in (None, LAYOUT_FEEDBACK):
            model = FeedbackModel(ErrorFeedback.zero(c), options[LAYOUT_CALIBRATION][0], self.spec,
                                  geo, c)
            feedback, fb_means, fb_levels, fb_bits = arm_feedback.fit(
                model, values[:, :c], means, levels, mix, self.tables)
            side = side_tables.table_bits(options[LAYOUT_CALIBRATION][0], feedback, self.tables)
            options[LAYOUT_FEEDBACK] = (options[LAYOUT_CALIBRATION][0], fb_bits + side)
        if layout is None:
            layout = min(options, key=lambda k: options[k][1])
        calibration, bits = options[layout]
        if layout == LAYOUT_FEEDBACK:
            means, levels = fb_means, fb_levels
        else:
            feedback = None
            levels = self._calibrate(levels, mix, calibration)
        # the online context bias on top, where it saves bits (it nearly always does)
        ideal = None
        if online:
            online_means = arm_online.OnlineBias(self.spec, geo, c).apply_all(values, means, levels,
                                                                               mix)
            without = self._ideal_bits(values, c, means, levels, mix)
            ideal = self._ideal_bits(values, c, online_means, levels, mix)
            online = ideal < without
            if online:
                means, bits = online_means, bits - (without - ideal)
            else:
                ideal = without
        change_levels = None
        if change is not None:
            change_levels, change_bits = change.table(self.tables)
            bits += change_bits
        return _Plan(layout, calibration, feedback, change, change_levels, means, levels, mix, bits,
                     online, ideal)

    def _ideal_bits(self, values, c: int, means, levels, mix) -> float:
        """The ideal code length of the symbols under these mixtures (any order)."""
        total = 0.0
        k = means.shape[-1]
        for a in range(0, len(means), SYMBOL_BATCH):
            sl = slice(a, a + SYMBOL_BATCH)
            total -= float(self.tables.log2_probabilities(
                values[sl, :c].ravel(), means[sl].reshape(-1, k), levels[sl].reshape(-1, k),
                mix[sl].reshape(-1, k)).sum())
        return total

    def _write(self, geo: Wavefronts, values, c: int, plan: "_Plan") -> CodedPlanes:
        """The segment: prefix, then the stream (the tables, the network's
        change, the symbols)."""
        layout, calibration, feedback, change = plan.layout, plan.calibration, plan.feedback, plan.change
        means, levels, mix = plan.means, plan.levels, plan.mix
        enc = SymbolEncoder()
        head_byte = rank = 0
        coded_tables = layout in (LAYOUT_CALIBRATION, LAYOUT_FEEDBACK)
        if coded_tables:          # first in the stream; side information
            side_tables.encode(enc, self.tables, calibration, feedback)
        if change is not None:     # next; its bits count as side information too
            change.encode(enc, self.tables, plan.change_levels)
            head_byte, rank = change.head_byte, change.prefix_byte
        # the decoder's order: wavefront by wavefront (pixels are stored in
        # coding order, so a wavefront is a slice), channel by channel
        for a, b in zip(geo.bounds[:-1], geo.bounds[1:]):
            for ch in range(c):
                window.encode(enc, values[a:b, ch], self.tables, means[a:b, ch], levels[a:b, ch],
                              mix[a:b, ch])
        ideal = plan.ideal if plan.ideal is not None else self._ideal_bits(values, c, means, levels,
                                                                           mix)
        flags = WINDOWED | (ONLINE if plan.online else 0) | (LEARN | STEADY if plan.learn else 0)
        if coded_tables:
            side = np.array([0, layout | flags | CODED_TABLES, head_byte, rank], np.int8).tobytes()
        else:
            side = np.array([calibration[0, 0], layout | flags, head_byte, rank], np.int8).tobytes()
        return CodedPlanes(side + enc.finish(), ideal, len(side))

    def estimate_bits(self, pixels: np.ndarray, sample: int = 8) -> float:
        """Ideal bits of coding ``pixels``, estimated from every ``sample``-th
        pixel (in coding order) with its calibration: what an encoder choosing
        between models needs, at 1/sample of the network's cost."""
        with threadpool_limits(limits=1, user_api="blas"):
            geo, buf, values = self._layout(pixels)
            return self._estimated_bits(geo, buf, values, pixels.shape[2], self.net, sample)

    def _estimated_bits(self, geo, buf, values, c: int, net: IntegerARM, sample: int = 8) -> float:
        index = np.arange(0, len(geo.flat), sample)
        means, levels, mix = self._parameters(geo, buf, values, index, c, net)
        options = self._fit_calibration(values[index, :c], means, levels, mix)
        return min(bits for _, bits in options.values()) * len(geo.flat) / len(index)

    def _fit_change(self, geo: Wavefronts, buf, values, fits):
        """The network's changes fitted to this image, one per entry of
        ``fits`` (``adaptation.fit``, on a seeded sample of its pixels),
        leaving out those that change nothing."""
        n = len(geo.flat)
        rng = np.random.default_rng(adaptation.SEED)
        sample = np.sort(rng.choice(n, min(n, adaptation.FEATURE_PIXELS), replace=False))
        changes = adaptation.fit(self.net, geo.context(buf, geo.flat[sample]), values[sample],
                                 fits, n)
        return [change for change in changes if change.changes_anything]

    def _layout(self, pixels: np.ndarray) -> tuple[Wavefronts, np.ndarray, np.ndarray]:
        """The wavefront geometry, the padded buffer holding the image, and the
        pixel values (n, 3) in coding order."""
        h, w, c = pixels.shape
        geo = Wavefronts(h, w, self.spec)
        buf = geo.new_buffer()
        full = pixels if c == 3 else np.repeat(pixels, 3, axis=2)
        buf[(geo.ys + geo.top) * geo.stride + geo.xs + geo.left] = full[geo.ys, geo.xs]
        return geo, buf, buf[geo.flat]

    def _parameters(self, geo: Wavefronts, buf, values, index: np.ndarray, c: int,
                    net: IntegerARM | None = None):
        """Means, levels and mixture weights, each (len(index), c, K), of the
        pixels ``index`` (in coding order), all of whose contexts are known,
        under ``net`` (the model's, by default)."""
        net = self.net if net is None else net
        shape = (len(index), c, self.spec.mixtures)
        means, levels, mix = (np.empty(shape, np.int64) for _ in range(3))
        for a in range(0, len(index), NETWORK_BATCH):
            sl = slice(a, min(len(index), a + NETWORK_BATCH))
            p = net(geo.context(buf, geo.flat[index[sl]]))
            r, g = values[index[sl], 0], values[index[sl], 1]
            for ch in range(c):
                means[sl, ch], levels[sl, ch], mix[sl, ch] = self._channel_model(p, ch, r, g)
        return means, levels, mix

    @property
    def bands(self) -> int:
        return (self.spec.log_scale_levels - 1 >> BAND_SHIFT) + 1

    def _band_index(self, levels: np.ndarray, mix: np.ndarray) -> np.ndarray:
        """(n, C) band of each symbol: its dominant component's level >> BAND_SHIFT
        (dominant: the largest mixture weight, the first on ties)."""
        dominant = np.argmax(mix, axis=-1)[..., None]
        return pick(levels, dominant) >> BAND_SHIFT

    def _calibrate(self, levels: np.ndarray, mix: np.ndarray, calibration: np.ndarray):
        """levels (n, C, K) shifted by calibration[channel, band] (C, bands)."""
        bands = self._band_index(levels, mix)
        shift = calibration[np.arange(levels.shape[1])[None, :], bands]
        return clip(levels + shift[..., None], 0, self.spec.log_scale_levels - 1)

    def _fit_calibration(self, values, means, levels, mix) -> dict[int, tuple[np.ndarray, float]]:
        """The (C, bands) shifts of layouts 0 and 1, each with the estimated
        bits of these symbols and of its side information.  Layout 1: per
        channel and band, the shift with the fewest ideal bits on an evenly
        spread sample of the symbols; layout 0: the one shift best for all."""
        n, c, k = means.shape
        # every stride-th pixel, all its channels (a stride over symbols could
        # fall on one channel only)
        stride = max(1, n * c // CALIBRATION_SAMPLE)
        v = values[::stride].reshape(-1)
        m, lv, w = (a[::stride].reshape(-1, k) for a in (means, levels, mix))
        group = (np.tile(np.arange(c), len(v) // c) * self.bands
                 + self._band_index(lv[:, None], w[:, None])[:, 0])
        top = self.spec.log_scale_levels - 1
        bits = arm_feedback.level_shift_bits(v, m, lv, w, group, c * self.bands, self.tables,
                                             top, CALIBRATION_OFFSETS)
        offsets = np.asarray(CALIBRATION_OFFSETS)
        best = offsets[np.argmin(bits, axis=0)]
        # a band without symbols in the sample keeps shift 0 (argmin of zeros is the first)
        best[bits.max(axis=0) == 0] = 0
        single = np.isin(offsets, SCALE_OFFSETS)
        totals = bits.sum(axis=1)[single]
        one = offsets[single][np.argmin(totals)]
        return {
            LAYOUT_SINGLE_OFFSET: (np.full((c, self.bands), one), stride * float(totals.min())),
            LAYOUT_CALIBRATION: (best.reshape(c, self.bands), stride * float(bits.min(axis=0).sum())
                                 + side_tables.table_bits(best.reshape(c, self.bands), None,
                                                          self.tables)),
        }

    # -- decode ---------------------------------------------------------------
    def decode(self, data: bytes, height: int, width: int, channels: int,
               codec_param: int = 0) -> np.ndarray:
        if codec_param != 0:
            raise FormatError(f"unknown codec parameter {codec_param} for the ARM codec")
        # the wavefront batches are small: BLAS threads only add synchronisation
        with threadpool_limits(limits=1, user_api="blas"):
            return self._decode(data, height, width, channels)

    def _decode(self, data: bytes, height: int, width: int, channels: int) -> np.ndarray:
        """Wavefront by wavefront: the network over its pixels (BLAS), then
        per channel the compiled kernels (``kernels.py``) derive the mixture
        and its frequency rows, the range coder decodes the values, and the
        error feedback records what they tell the next wavefronts."""
        prefix = self._read_prefix(data, channels)
        tables = self.tables
        geo = Wavefronts(height, width, self.spec)
        buf = geo.new_buffer()
        dec = SymbolDecoder(prefix.body)
        calibration, feedback = prefix.calibration, prefix.feedback
        if prefix.coded_tables:
            calibration, feedback = self._read_tables(dec, channels, prefix.layout)
        net = self.net
        if prefix.head_byte:
            try:
                net = adaptation.ImageChange.decode(dec, tables, prefix.head_byte, prefix.rank,
                                                    net).apply(net)
            except ValueError:
                raise FormatError("ARM segment has an invalid network change") from None
        if prefix.windowed:
            def decode_symbols(ch, a, m, l, w):
                return window.decode(dec, tables, m, l, w)
        else:                      # segments of nc 0.25 and before
            def decode_symbols(ch, a, m, l, w):
                return dec.decode(tables.frequencies(m, l, w))
        self._wavefronts(geo, buf, net, calibration, feedback, prefix.online, prefix.learn, channels,
                         decode_symbols)
        out = buf.reshape(height + geo.top, geo.stride, 3)[geo.top:, geo.left:geo.left + width]
        return out[:, :, :channels].astype(np.uint8)

    def _wavefronts(self, geo: Wavefronts, buf, net, calibration, feedback, online: bool,
                    learn: tuple | None, channels: int, code_symbols) -> None:
        """The decoder's loop, which the encoder replays where the means
        depend on what was coded before (the online head): wavefront by
        wavefront, the network over its pixels (BLAS), then per channel the
        compiled kernels (``kernels.py``) derive the mixture, the error
        feedback, the online bias and the online head correct it,
        ``code_symbols(channel, first pixel, means, levels, weights)``
        codes the values (or decodes them) and returns them, and the
        corrections record what they tell the next wavefronts.  ``buf``
        receives the values."""
        spec, tables = self.spec, self.tables
        model = (FeedbackModel(feedback, calibration, self.spec, geo, channels)
                 if feedback is not None else None)
        k, top = spec.mixtures, spec.log_scale_levels - 1
        widest = int(np.diff(geo.bounds).max())
        context = np.empty((widest, len(geo.offsets) * 3))
        means, levels, mix = (np.empty((widest, k), np.int64) for _ in range(3))
        dominant = np.empty(widest, np.int64)
        decoded = np.zeros((widest, 3), np.int64)
        if model is not None:
            acc, energy, residual, surprise = (np.empty((widest, channels), np.int64)
                                               for _ in range(4))
            memo = np.empty((widest, 4), np.int64)
            nf = len(arm_feedback.FEEDBACK_OFFSETS)
            earlier = [np.ascontiguousarray(c[nf:]) for c in feedback.coeffs]
            neighbour_coeffs = np.ascontiguousarray(model.neighbour_coeffs)
        bias = arm_online.OnlineBias(spec, geo, channels) if online else None
        head = arm_online_head.OnlineHead(spec, widest, tables, learn) if learn else None
        adjust = head.adjust if head is not None else None
        for a, b in zip(geo.bounds[:-1], geo.bounds[1:]):
            n = b - a
            flat = geo.flat[a:b]
            kernels.gather_context(buf, flat, geo.offsets, context)
            p = net(context[:n], adjust)
            if model is not None:
                kernels.feedback_neighbours(model.buffer, flat, model.offsets, neighbour_coeffs,
                                            channels, arm_feedback.ENERGY_NEIGHBOURS, acc, energy)
            for ch in range(channels):
                kernels.channel_mixture(ch, p.logits, p.means, p.levels, p.coeffs, decoded,
                                        tables.mix_weights, spec.coeff_frac, spec.mean_frac,
                                        spec.mean_min, spec.mean_max, means, levels, mix, dominant)
                m, l = means[:n], levels[:n]
                if model is None:
                    kernels.calibrate(l, dominant, calibration[ch], BAND_SHIFT, top)
                else:
                    kernels.feedback_correct(
                        ch, m, l, dominant, calibration[ch], BAND_SHIFT, acc, energy, residual,
                        surprise, earlier[ch], model.fb.context_shift[ch], arm_feedback.SURPRISES,
                        arm_feedback.COEFF_FRAC, spec.mean_min, spec.mean_max, top, memo)
                if bias is not None:
                    arm_online.shift(ch, flat, bias.buffer, bias.offsets, bias.within, m, l,
                                     dominant[:n], bias.fine, bias.coarse, bias.scale,
                                     spec.mean_min, spec.mean_max, bias.memo)
                v = code_symbols(ch, a, m, l, mix[:n])
                decoded[:n, ch] = v
                if model is not None:
                    kernels.feedback_observe(ch, v, memo, model.thresholds, spec.mean_frac, top,
                                             residual, surprise)
                if bias is not None:
                    arm_online.observe(ch, v, bias.memo, bias.inv, spec.mean_frac, bias.fine,
                                       bias.coarse, bias.within)
                if head is not None:
                    head.channel(ch, decoded[:n], m, l, mix[:n])
            buf[flat] = decoded[:n] if channels == 3 else decoded[:n, :1]
            if model is not None:
                model.store_residuals(flat, residual[:n])
                model.store_surprises(flat, surprise[:n])
            if bias is not None:
                arm_online.end_wavefront(flat, bias.within[:n], channels, bias.buffer, bias.fine,
                                         bias.coarse)
            if head is not None:
                head.observe()

    def _read_prefix(self, data: bytes, channels: int) -> _Prefix:
        """What a segment's prefix says (``_Prefix``), and its tables where
        they are raw bytes after it (layouts 1 and 2 before nc 0.34)."""
        if len(data) < SEGMENT_PREFIX:
            raise FormatError("ARM segment too short")
        offset, layout = (int(b) for b in np.frombuffer(data[:2], np.int8))
        windowed = layout >= 0 and bool(layout & WINDOWED)
        if windowed:
            layout -= WINDOWED
        learn = None                 # the online head's rates, if it learns
        if windowed and layout & LEARN:
            layout -= LEARN
            learn = arm_online_head.RATES_V1
            if layout & STEADY:
                layout -= STEADY
                learn = arm_online_head.RATES
        online = windowed and bool(layout & ONLINE)
        if online:
            layout -= ONLINE
        coded_tables = windowed and bool(layout & CODED_TABLES)
        if coded_tables:
            layout -= CODED_TABLES
        head_byte, rank = data[2], data[3]
        single_levels = self.tables.cdf.shape[0]       # bytes 1 ... 64: one scale level (nc 0.15, 0.16)
        if not adaptation.valid_change_bytes(head_byte, rank, channels, self.spec.hidden_layers,
                                             single_levels):
            raise FormatError("ARM segment has an invalid prefix")
        if layout == LAYOUT_SINGLE_OFFSET and offset in SCALE_OFFSETS and not coded_tables:
            return _Prefix(layout, np.full((channels, self.bands), offset, np.int64), None,
                           head_byte, rank, windowed, online, learn, False, data[SEGMENT_PREFIX:])
        end = SEGMENT_PREFIX + (0 if coded_tables else channels * self.bands)
        if layout not in (LAYOUT_CALIBRATION, LAYOUT_FEEDBACK) or offset != 0 or len(data) < end:
            raise FormatError("ARM segment has an invalid prefix")
        if coded_tables:
            return _Prefix(layout, None, None, head_byte, rank, windowed, online, learn, True,
                           data[end:])
        table = self._checked_calibration(np.frombuffer(data[SEGMENT_PREFIX:end], np.int8))
        feedback = None
        if layout == LAYOUT_FEEDBACK:
            start, end = end, end + ErrorFeedback.size(channels)
            if len(data) < end:
                raise FormatError("ARM segment has a truncated feedback table")
            feedback = ErrorFeedback.from_bytes(data[start:end], channels)
        return _Prefix(layout, table.reshape(channels, self.bands), feedback, head_byte, rank,
                       windowed, online, learn, False, data[end:])

    def _read_tables(self, dec: SymbolDecoder, channels: int, layout: int):
        """(calibration table (C, bands), error feedback or None) from the
        head of the stream (layout byte flag CODED_TABLES, nc 0.34)."""
        try:
            calibration, values = side_tables.decode(dec, self.tables, channels, self.bands,
                                                     layout == LAYOUT_FEEDBACK)
        except ValueError:
            raise FormatError("ARM segment has an invalid calibration or feedback table") from None
        calibration = self._checked_calibration(calibration)
        feedback = None if values is None else ErrorFeedback.from_values(values, channels)
        return calibration.reshape(channels, self.bands), feedback

    @staticmethod
    def _checked_calibration(table: np.ndarray) -> np.ndarray:
        """The calibration table as int64; FormatError where a shift is out of range."""
        table = np.asarray(table, np.int64)
        if table.min() < CALIBRATION_OFFSETS[0] or table.max() > CALIBRATION_OFFSETS[-1]:
            raise FormatError("ARM segment has an invalid calibration table")
        return table
