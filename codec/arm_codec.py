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

Scale offset.  Before coding, the encoder tries shifting every predicted
scale level by a few steps (one shift per segment) and keeps the shift with
the fewest ideal bits; it is stored in the segment's 4-byte prefix.  This
lets one model adapt to images noisier or cleaner than its training photos.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from models.arm.integer import IntegerARM, MixtureParams, shifted_means
from models.arm.spec import WAVEFRONT_SKEW, ARMSpec

from . import weights
from .entropy import LogisticMixtureTables, SymbolDecoder, SymbolEncoder
from .errors import FormatError

SCALE_OFFSETS = range(-3, 9)   # candidate shifts of the scale level, in 1/8 log-scale
SEGMENT_PREFIX = 4
PAD_VALUE = 128        # outside the image, context pixels read as 128 (input 0)
NETWORK_BATCH = 1 << 11  # pixels per network evaluation when encoding (cache-sized)
SYMBOL_BATCH = 1 << 12   # symbols per frequency-table build and coder call


@dataclass
class CodedPlanes:
    data: bytes
    ideal_bits: float     # -log2 of the probabilities the model gave the symbols


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
    def encode(self, pixels: np.ndarray) -> CodedPlanes:
        """pixels: (H, W, C) uint8 with C = 1 (grey) or 3 (RGB)."""
        # cache-sized batches run fastest on one BLAS thread (measured)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._encode(pixels)

    def _encode(self, pixels: np.ndarray) -> CodedPlanes:
        h, w, c = pixels.shape
        geo = Wavefronts(h, w, self.spec)
        buf = geo.new_buffer()
        full = pixels if c == 3 else np.repeat(pixels, 3, axis=2)
        buf[(geo.ys + geo.top) * geo.stride + geo.xs + geo.left] = full[geo.ys, geo.xs]
        values = buf[geo.flat]                           # (n, 3) in coding order
        n = len(geo.flat)
        # per pixel and coded channel: means, levels, weights (each (n, K))
        means = np.empty((n, c, self.spec.mixtures), np.int64)
        levels = np.empty_like(means)
        mix = np.empty_like(means)
        for a in range(0, n, NETWORK_BATCH):
            sl = slice(a, min(n, a + NETWORK_BATCH))
            p = self.net(geo.context(buf, geo.flat[sl]))
            r, g = values[sl, 0], values[sl, 1]
            for ch in range(c):
                means[sl, ch], levels[sl, ch], mix[sl, ch] = self._channel_model(p, ch, r, g)
        offset = self._best_scale_offset(values[:, :c], means, levels, mix)
        levels = self._offset_levels(levels, offset)
        # symbol order: wavefront by wavefront, channel by channel, pixel by pixel
        step = np.repeat(np.arange(len(geo.bounds) - 1), np.diff(geo.bounds))
        pix = np.repeat(np.arange(n), c)
        chan = np.tile(np.arange(c), n)
        order = np.lexsort((pix, chan, step[pix]))
        pix, chan = pix[order], chan[order]
        enc = SymbolEncoder()
        ideal = 0.0
        for a in range(0, len(pix), SYMBOL_BATCH):
            pi, ci = pix[a:a + SYMBOL_BATCH], chan[a:a + SYMBOL_BATCH]
            m, l, wt = means[pi, ci], levels[pi, ci], mix[pi, ci]
            sym = values[pi, ci]
            enc.encode(sym, self.tables.frequencies(m, l, wt))
            ideal -= float(self.tables.log2_probabilities(sym, m, l, wt).sum())
        prefix = np.array([offset, 0, 0, 0], np.int8).tobytes()
        return CodedPlanes(prefix + enc.finish(), ideal)

    def _offset_levels(self, levels: np.ndarray, offset: int) -> np.ndarray:
        return np.clip(levels + offset, 0, self.spec.log_scale_levels - 1) if offset else levels

    def _best_scale_offset(self, values, means, levels, mix) -> int:
        """The scale shift with the fewest ideal bits, judged on a sample."""
        stride = max(1, values.size // 60000)
        k = means.shape[-1]
        v = values.reshape(-1)[::stride]
        m, lv, w = (a.reshape(-1, k)[::stride] for a in (means, levels, mix))
        bits = {o: -self.tables.log2_probabilities(v, m, self._offset_levels(lv, o), w).sum()
                for o in SCALE_OFFSETS}
        return min(bits, key=bits.get)

    # -- decode ---------------------------------------------------------------
    def decode(self, data: bytes, height: int, width: int, channels: int) -> np.ndarray:
        # the wavefront batches are small: BLAS threads only add synchronisation
        with threadpool_limits(limits=1, user_api="blas"):
            return self._decode(data, height, width, channels)

    def _decode(self, data: bytes, height: int, width: int, channels: int) -> np.ndarray:
        if len(data) < SEGMENT_PREFIX:
            raise FormatError("ARM segment too short")
        offset = int(np.frombuffer(data[:1], np.int8)[0])
        if offset not in SCALE_OFFSETS or data[1:SEGMENT_PREFIX] != b"\0\0\0":
            raise FormatError("ARM segment has an invalid prefix")
        geo = Wavefronts(height, width, self.spec)
        buf = geo.new_buffer()
        dec = SymbolDecoder(data[SEGMENT_PREFIX:])
        tables = self.tables
        for a, b in zip(geo.bounds[:-1], geo.bounds[1:]):
            flat = geo.flat[a:b]
            p = self.net(geo.context(buf, flat))
            r = g = None
            for ch in range(channels):
                m, l, wt = self._channel_model(p, ch, r, g)
                l = self._offset_levels(l, offset)
                v = dec.decode(tables.frequencies(m, l, wt))
                if channels == 1:
                    buf[flat] = v[:, None]
                else:
                    buf[flat, ch] = v
                if ch == 0:
                    r = v
                elif ch == 1:
                    g = v
        out = buf.reshape(height + geo.top, geo.stride, 3)[geo.top:, geo.left:geo.left + width]
        return out[:, :, :channels].astype(np.uint8)
