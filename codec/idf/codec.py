"""Lossless coding of 8-bit planes with the integer discrete flow.

    x (padded to a multiple of 2^levels) --integer flow--> z_1 .. z_L
    coded coarsest first: z_L under its per-channel prior, then each z_l
    under the prior computed from the level's kept part, which the decoder
    has just rebuilt by inverting level l+1.

A few whole-image network passes, no pixel loop.  Grey planes are coded as
three equal channels.  Residuals ``z - floor(mean)`` are grouped by (scale
level, mean fraction) so each group is one constriction call.

Files with codec parameter 1 (all this version writes) start each segment
with a byte: 0, or 1 followed by the per-image corrections of the prior
(``codec/idf/feedback.py``), after which each level is coded channel by channel.
"""
from __future__ import annotations

import numpy as np

from codec import weights
from codec.arm.codec import CodedPlanes
from codec.entropy import ResidualCoder, range_decoder, range_encoder, stream_bytes
from codec.errors import FormatError
from codec.idf import feedback as idf_feedback
from codec.idf.feedback import IDFFeedback
from models.idf.integer import IntegerCoupling, IntegerIDF, IntegerNet, IntegerPrior
from models.idf.spec import IDFSpec, anchors

PLAIN, FEEDBACK = 0, 1     # the segment's first byte, when the codec parameter is 1


class IDFPlaneCodec:
    codec_param = 1            # segments begin with a layout byte (FORMAT.md §6)

    def __init__(self, model_id: str):
        w = weights.load(model_id, "idf")
        tensors = w.tensors
        self.model_id = model_id
        spec = self.spec = IDFSpec.from_dict(w.spec)

        def net(prefix):
            return IntegerNet([(tensors[f"{prefix}.{i}.weight"], tensors[f"{prefix}.{i}.bias"])
                               for i in range(3)], spec)

        updated = [1] if spec.partitions == 2 else list(range(spec.partitions))
        flows, priors = [], []
        for l in range(spec.levels):
            flows.append([IntegerCoupling(spec.partitions, {i: net(f"flow{l}.{c}.{i}") for i in updated})
                          for c in range(spec.couplings)])
            nets = [net(f"prior{l}") if f"prior{l}.0.weight" in tensors else None]
            nets += [net(f"prior{l}.g{g}") for g in range(1, spec.prior_groups)]
            spatial = ([net(f"prior{l}.s{g}") for g in range(spec.prior_groups)]
                       if spec.prior_checkerboard else None)
            priors.append(IntegerPrior(nets, tensors[f"prior{l}.bias"], spec, spatial))
        self.flow = IntegerIDF(spec, flows, priors)
        sizes = tensors["entropy.logistic_sizes"]
        self.coder = ResidualCoder(np.split(tensors["entropy.logistic"], np.cumsum(sizes)[:-1]))
        self.top_level = self.coder.groups // (1 << spec.mean_frac) - 1   # highest scale level
        self.multiple = 2**spec.levels
        self.z_channels, c = [], 3
        for level in range(spec.levels):
            c *= 4
            self.z_channels.append(c if level == spec.levels - 1 else c // 2)
            c -= self.z_channels[-1]

    def _halves(self, height: int, width: int) -> list:
        """Indices (into a level's flattened positions) of the positions of a
        channel group coded together, in coding order: all of them, or with a
        checkerboard prior the anchors and then the rest."""
        if not self.spec.prior_checkerboard:
            return [slice(None)]
        first = anchors(height, width).ravel()
        return [np.flatnonzero(first), np.flatnonzero(~first)]

    def _groups(self, means, levels):
        f = self.spec.mean_frac
        return means >> f, levels * (1 << f) + (means & ((1 << f) - 1))

    def encode(self, pixels: np.ndarray, layout: int | None = None, effort: int = 0) -> CodedPlanes:
        """``layout`` forces PLAIN or FEEDBACK (tests, measurements); by
        default the one with the fewer estimated bits.  ``effort`` changes
        nothing yet: the flow has no per-image adaptation."""
        h, w, c = pixels.shape
        rgb = pixels if c == 3 else np.repeat(pixels, 3, axis=2)
        hp, wp = -(-h // self.multiple) * self.multiple, -(-w // self.multiple) * self.multiple
        padded = np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
        latents = self.flow.forward(padded.astype(np.float32).transpose(2, 0, 1))
        coded = []  # per level, coarsest first: (z, means, levels), each (C, H, W) int
        for level in reversed(range(self.spec.levels)):
            z, kept = latents[level]
            means, levels = self.flow.priors[level](kept, z)
            coded.append((z.astype(np.int64), means, levels))
        plain = sum(self._bits(*level) for level in coded)
        feedback = None
        if layout != PLAIN:
            fits = [idf_feedback.fit_level(z, m, l, self.spec.mean_frac, self._bits)
                    for z, m, l in coded]
            side = 8 * IDFFeedback.size(self.z_channels)
            if layout == FEEDBACK or sum(b for _, b in fits) + side < plain:
                feedback = IDFFeedback([f for f, _ in reversed(fits)])
        enc = range_encoder()
        ideal = 0.0
        for i, (z, means, levels) in enumerate(coded):
            # as they decode: channel groups in turn, each half by half, with
            # corrections channel by channel within a half; positions flattened
            k = self.flow.priors[self.spec.levels - 1 - i].group_size
            halves = self._halves(*z.shape[1:])
            z, means, levels = (a.reshape(len(a), -1) for a in (z, means, levels))
            if feedback is None:
                base, groups = self._groups(means, levels)
                residual = z - base
                for g in range(0, len(z), k):
                    for half in halves:
                        ideal += self.coder.encode(enc, residual[g:g + k, half], groups[g:g + k, half])
                continue
            fb = feedback.levels[self.spec.levels - 1 - i]
            residual = (z << self.spec.mean_frac) - means
            residual_by_half = [residual[:, half] for half in halves]
            for g in range(0, len(z), k):
                for half, residual_here in zip(halves, residual_by_half):
                    for ch in range(g, g + k):
                        m, l = self._corrected(fb, ch, means[ch, half], levels[ch, half], residual_here)
                        base, groups = self._groups(m, l)
                        ideal += self.coder.encode(enc, z[ch, half] - base, groups)
        prefix = bytes([PLAIN]) if feedback is None else bytes([FEEDBACK]) + feedback.to_bytes()
        return CodedPlanes(prefix + stream_bytes(enc), ideal, len(prefix))

    def _bits(self, z, means, levels) -> float:
        levels = np.clip(levels, 0, self.top_level)
        base, groups = self._groups(means, levels)
        return self.coder.bits(z - base, groups)

    def _corrected(self, fb, ch: int, means, levels, residual):
        """Channel ch's means and levels after the level's corrections."""
        return means + fb.shift(ch, residual), np.clip(levels + fb.scale_shift, 0, self.top_level)

    def estimate_bits(self, pixels: np.ndarray) -> float:
        """Ideal bits of coding ``pixels``: a flow's encode is a few parallel
        passes, so this simply encodes."""
        return self.encode(pixels).ideal_bits

    def decode(self, data: bytes, height: int, width: int, channels: int,
               codec_param: int = 0) -> np.ndarray:
        feedback = None
        if codec_param == 1:
            if not data or data[0] not in (PLAIN, FEEDBACK):
                raise FormatError("IDF segment has an invalid layout byte")
            if data[0] == FEEDBACK:
                end = 1 + IDFFeedback.size(self.z_channels)
                feedback = IDFFeedback.from_bytes(data[1:end], self.z_channels)
                data = data[end:]
            else:
                data = data[1:]
        elif codec_param != 0:
            raise FormatError(f"unknown IDF codec parameter {codec_param}")
        dec = range_decoder(data)
        m, s = self.multiple, self.spec
        hp, wp = -(-height // m) * m, -(-width // m) * m
        kept = None
        for level in reversed(range(s.levels)):
            side = 2**(level + 1)
            shape = (self.z_channels[level], hp // side, wp // side)
            fb = None if feedback is None else feedback.levels[level]
            z = self._decode_level(dec, level, kept, shape, fb)
            kept = self.flow.inverse_level(level, z if kept is None else np.concatenate([z, kept]))
        x = np.clip(kept + 128, 0, 255).transpose(1, 2, 0).astype(np.uint8)
        return np.ascontiguousarray(x[:height, :width, :channels])

    def _decode_level(self, dec, level: int, kept, shape, fb) -> np.ndarray:
        """One level's latents (C, H, W) as float32: its channel groups in
        turn, each group's prior computed from the kept part and the groups
        decoded before it (with a checkerboard prior, its anchors first, then
        the rest given them); with corrections, channel by channel."""
        prior = self.flow.priors[level]
        k = prior.group_size
        channels, height, width = shape
        z = np.zeros((channels, height * width), np.int64)      # positions flattened
        residual = np.zeros_like(z)
        halves = self._halves(height, width)
        parts = []
        for g in range(prior.groups):
            rows = slice(g * k, (g + 1) * k)
            for h, half in enumerate(halves):
                # the second half's network reads the first (zero elsewhere)
                given = None if h == 0 else z[rows].reshape(k, height, width).astype(np.float32)
                means, levels = (a.reshape(k, -1)[:, half]
                                 for a in prior.group(g, kept, parts, shape, given))
                if fb is None:
                    base, groups = self._groups(means, levels)
                    z[rows, half] = self.coder.decode(dec, groups) + base
                    continue
                residual_here = residual[:, half]
                for i in range(k):
                    ch = g * k + i
                    m, l = self._corrected(fb, ch, means[i], levels[i], residual_here)
                    base, groups = self._groups(m, l)
                    decoded = self.coder.decode(dec, groups) + base
                    z[ch, half] = decoded
                    residual_here[ch] = (decoded << self.spec.mean_frac) - means[i]
                residual[rows, half] = residual_here[rows]
            parts.append(z[rows].reshape(k, height, width).astype(np.float32))
        return z.reshape(channels, height, width).astype(np.float32)
