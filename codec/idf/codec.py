"""Lossless coding of 8-bit planes with the integer discrete flow.

    x (padded to a multiple of 2^levels) --integer flow--> z_1 .. z_L
    coded coarsest first: z_L under its per-channel prior, then each z_l
    under the prior computed from the level's kept part, which the decoder
    has just rebuilt by inverting level l+1.

A few whole-image network passes, no pixel loop.  Grey planes are coded as
three equal channels.  Residuals ``z - floor(mean)`` are grouped by (scale
level, mean fraction) so each group is one constriction call.

Files with codec parameter 1 (all this version writes) start each segment
with a layout byte: bit 0 says the per-image corrections of the prior
follow (``codec/idf/feedback.py``; each level is then coded channel by
channel), bit 1 that a change of the priors' last layers fitted to the
image does (``codec/idf/adaptation.py``, from effort 7; nc 0.18), bit 2
that the corrections and the change's row levels are range-coded at the
head of the stream rather than sent as bytes before it
(``codec/idf/side_tables.py``; nc 0.35, what the encoder writes).

The integer flow is NumPy (``models/idf/integer.py``): neither decoding
nor encoding below the adapted sizes imports PyTorch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codec import weights
from codec.entropy import ResidualCoder, range_decoder, range_encoder, stream_bytes
from codec.errors import FormatError
from codec.idf import adaptation, side_tables
from codec.idf.rows import RowCoder
from codec.idf import feedback as idf_feedback
from codec.idf.feedback import IDFFeedback
from codec.pipeline.lossless import CodedPlanes
from models.idf.integer import IntegerCoupling, IntegerIDF, IntegerNet, IntegerPrior
from models.idf.spec import IDFSpec, anchors

PLAIN, FEEDBACK = 0, 1     # the segment's first byte, when the codec parameter is 1 ...
CHANGED = 2                # ... with this bit set when a prior change follows (nc 0.18)
CODED_TABLES = 4           # ... and this when the tables are range-coded (nc 0.35)


@dataclass
class _Plan:
    """What the encoder settled on (``IDFPlaneCodec._plan``)."""

    flow: IntegerIDF
    coded: list                # per level, coarsest first: (z, means, levels)
    feedback: IDFFeedback | None
    change: adaptation.PriorChange | None
    change_levels: np.ndarray | None
    bits: float                # estimated: the latents and all side information


def integer_flow(tensors: dict, spec: IDFSpec, float64: bool = False) -> IntegerIDF:
    """The exact flow and priors of shipped IDF weights (the names
    ``models/idf/export.py`` writes); ``float64`` as ``IntegerNet`` takes it."""

    def net(prefix):
        return IntegerNet([(tensors[f"{prefix}.{i}.weight"], tensors[f"{prefix}.{i}.bias"])
                           for i in range(3)], spec, float64)

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
    return IntegerIDF(spec, flows, priors)


class IDFPlaneCodec:
    codec_param = 1            # segments begin with a layout byte (FORMAT.md §6)

    def __init__(self, model_id: str):
        w = weights.load(model_id, "idf")
        tensors = w.tensors
        self.model_id = model_id
        spec = self.spec = IDFSpec.from_dict(w.spec)
        self.flow = integer_flow(tensors, spec)
        sizes = tensors["entropy.logistic_sizes"]
        self.coder = ResidualCoder(np.split(tensors["entropy.logistic"], np.cumsum(sizes)[:-1]))
        self.rows = RowCoder(self.coder, spec.mean_frac)
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
        default the one with the fewer estimated bits.  From effort 7 the
        priors are also adapted to the image (``adaptation.py``) where that
        codes smaller."""
        h, w, c = pixels.shape
        rgb = pixels if c == 3 else np.repeat(pixels, 3, axis=2)
        hp, wp = -(-h // self.multiple) * self.multiple, -(-w // self.multiple) * self.multiple
        padded = np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
        latents = self.flow.forward(padded.astype(np.float32).transpose(2, 0, 1))
        plan = self._plan(self.flow, latents, layout)
        fits = adaptation.fits_for_effort(effort)
        if fits and sum(z.size for z, _ in latents) >= adaptation.MIN_LATENTS:
            for change in adaptation.fit(self.flow, latents, fits):
                if change.any():
                    adapted = self._plan(change.apply(self.flow), latents, layout, change)
                    if adapted.bits < plan.bits:
                        plan = adapted
        return self._write(plan)

    def _plan(self, flow: IntegerIDF, latents, layout: int | None,
              change: adaptation.PriorChange | None = None) -> "_Plan":
        """How to code the latents under ``flow``'s priors (changed by
        ``change``): every latent's mean and scale level, with or without
        the corrections (or as ``layout`` forces), and the estimated bits."""
        coded = []  # per level, coarsest first: (z, means, levels), each (C, H, W) int
        for level in reversed(range(self.spec.levels)):
            z, kept = latents[level]
            means, levels = flow.priors[level](kept, z)
            coded.append((z.astype(np.int64), means, levels))
        bits = sum(self._bits(*level) for level in coded) + 8
        feedback = None
        if layout != PLAIN:
            fits = [idf_feedback.fit_level(z, m, l, self.spec.mean_frac, self._bits)
                    for z, m, l in coded]
            candidate = IDFFeedback([f for f, _ in reversed(fits)])
            with_feedback = sum(b for _, b in fits) + 8 + side_tables.table_bits(self.rows, candidate, None)
            if layout == FEEDBACK or with_feedback < bits:
                feedback, bits = candidate, with_feedback
        change_levels = None
        if change is not None:
            change_levels, change_bits = change.table(self.rows)
            bits += change_bits + side_tables.table_bits(self.rows, None, change_levels)
        return _Plan(flow, coded, feedback, change, change_levels, bits)

    def _write(self, plan: "_Plan") -> CodedPlanes:
        """The segment: the layout byte, then the stream: the corrections
        and the change's row levels, the change's rows, the latents."""
        enc = range_encoder()
        ideal = 0.0
        feedback = plan.feedback
        layout = (PLAIN if feedback is None else FEEDBACK) | (CHANGED if plan.change is not None else 0)
        if layout:
            layout |= CODED_TABLES
        prefix = bytes([layout])
        # first in the stream; their bits count as side information, not as ideal bits
        side_tables.encode(enc, self.rows, feedback, plan.change_levels)
        if plan.change is not None:
            plan.change.encode(enc, self.rows, plan.change_levels)
        for i, (z, means, levels) in enumerate(plan.coded):
            # as they decode: channel groups in turn, each half by half, with
            # corrections channel by channel within a half; positions flattened
            k = plan.flow.priors[self.spec.levels - 1 - i].group_size
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
        return CodedPlanes(prefix + stream_bytes(enc), ideal, len(prefix))

    def _bits(self, z, means, levels) -> float:
        levels = np.clip(levels, 0, self.top_level)
        base, groups = self._groups(means, levels)
        return self.coder.bits(z - base, groups)

    def _corrected(self, fb, ch: int, means, levels, residual):
        """Channel ch's means and levels after the level's corrections."""
        return means + fb.shift(ch, residual), np.clip(levels + fb.scale_shift, 0, self.top_level)

    def _read_tables(self, data: bytes, codec_param: int):
        """(the corrections or None, the change's row levels or None, the
        range decoder just past them): from bytes before the stream (nc
        0.34 and before) or from its head (layout bit CODED_TABLES)."""
        feedback = rows = None
        layout = PLAIN
        if codec_param == 1:
            layout = data[0] if data else 0xFF
            if layout > (FEEDBACK | CHANGED | CODED_TABLES) or layout == CODED_TABLES:
                raise FormatError("IDF segment has an invalid layout byte")
            at = 1
            if not layout & CODED_TABLES:
                if layout & FEEDBACK:
                    end = at + IDFFeedback.size(self.z_channels)
                    feedback = IDFFeedback.from_bytes(data[at:end], self.z_channels)
                    at = end
                if layout & CHANGED:
                    n = adaptation.PriorChange.row_count(self.flow)
                    rows = self._checked_rows(np.frombuffer(data[at:at + n], np.uint8), n)
                    at += n
            data = data[at:]
        elif codec_param != 0:
            raise FormatError(f"unknown IDF codec parameter {codec_param}")
        dec = range_decoder(data)
        if layout & CODED_TABLES:
            n = adaptation.PriorChange.row_count(self.flow) if layout & CHANGED else None
            try:
                feedback, rows = side_tables.decode(dec, self.rows, self.z_channels, bool(layout & FEEDBACK), n)
            except ValueError:
                raise FormatError("IDF segment has invalid coded tables") from None
            if rows is not None:
                rows = self._checked_rows(rows, n)
        return feedback, rows, dec

    def _checked_rows(self, rows: np.ndarray, n: int) -> np.ndarray:
        """The change's row levels, refused unless all ``n`` are there and in range."""
        if len(rows) != n or rows.min() < 0 or rows.max() > self.top_level:
            raise FormatError("IDF segment has an invalid prior change")
        return rows

    def estimate_bits(self, pixels: np.ndarray) -> float:
        """Ideal bits of coding ``pixels``: a flow's encode is a few parallel
        passes, so this simply encodes."""
        return self.encode(pixels).ideal_bits

    def decode(self, data: bytes, height: int, width: int, channels: int,
               codec_param: int = 0) -> np.ndarray:
        """The planes (H, W, C) of one segment (codec parameter 0: the bare
        stream; 1: a layout byte first, docs/FORMAT.md §6)."""
        feedback, rows, dec = self._read_tables(data, codec_param)
        flow = self.flow
        if rows is not None:
            try:
                flow = adaptation.PriorChange.decode(dec, self.rows, rows, self.flow).apply(self.flow)
            except ValueError as e:
                raise FormatError(f"IDF segment has an invalid prior change ({e})") from None
        m, s = self.multiple, self.spec
        hp, wp = -(-height // m) * m, -(-width // m) * m
        kept = None
        for level in reversed(range(s.levels)):
            side = 2**(level + 1)
            shape = (self.z_channels[level], hp // side, wp // side)
            fb = None if feedback is None else feedback.levels[level]
            z = self._decode_level(dec, flow.priors[level], kept, shape, fb)
            kept = flow.inverse_level(level, z if kept is None else np.concatenate([z, kept]))
        x = np.clip(kept + 128, 0, 255).transpose(1, 2, 0).astype(np.uint8)
        return np.ascontiguousarray(x[:height, :width, :channels])

    def _decode_level(self, dec, prior: IntegerPrior, kept, shape, fb) -> np.ndarray:
        """One level's latents (C, H, W) as float32: its channel groups in
        turn, each group's prior computed from the kept part and the groups
        decoded before it (with a checkerboard prior, its anchors first, then
        the rest given them); with corrections, channel by channel."""
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
