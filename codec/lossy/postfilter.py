"""The decoder's post-filter: a linear filter fitted to this one image when
encoding, its coefficients sent in the file (segment kind 10, docs/FORMAT.md §7.1).

The synthesis g_s was trained on few photographs; on any given image its
output is off in ways a small linear filter corrects (edges a little soft,
colours leaking between channels).  The encoder finds that filter by least
squares against the original -- a Wiener filter, as the adaptive loop
filters of video codecs -- and sends it when the distortion it removes is
worth its bytes at the quality's lambda.  On held-out photographs it gains
0.2-0.7 dB for 40-250 bytes (docs/MODELS.md).

Each output channel c of the filtered synthesis is

    x'_c(p) = x_c(p) + sum over offsets d and channels c' of w[c, d, c'] (x_c'(p + d) - x_c'(p))
                     + u[c, 0] (x_1(p) - x_0(p)) + u[c, 1] (x_2(p) - x_0(p)) + u[c, 2]

with d over a (2r + 1)^2 square but its centre.  A symmetric filter has one
weight for each pair +-d, on x(p + d) + x(p - d) - 2 x(p): half the bytes.
Differences rather than raw values make the identity filter all zeros and
keep a coefficient's rounding error cheap, so coefficients are integers in
units of 2^-shift with a small shift.  x is the synthesis in pixel units
(0..255) before rounding, edge-replicated beyond the padded canvas; the
filter is applied before the decoder rounds to 8 bits.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from codec.entropy import range_decoder, range_encoder, stream_bytes
from codec.errors import FormatError

MAX_RADIUS = 3
SHIFTS = range(4, 14)           # coefficient units the encoder tries: 2^-4 .. 2^-13
EXTRAS = 3                      # two colour differences and a bias, per output channel
_HEAD = struct.Struct("<BBBBB")  # radius, symmetric, shift, tap level, extra level


def offsets(radius: int, symmetric: bool) -> list[tuple[int, int]]:
    """The filter's offsets d = (dy, dx), in the order of its coefficients:
    raster order over the square but its centre; symmetric filters keep the
    half after the centre (dy > 0, or dy = 0 and dx > 0)."""
    square = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
              if (dy, dx) != (0, 0)]
    return [d for d in square if d > (0, 0)] if symmetric else square


def features_per_channel(radius: int, symmetric: bool) -> int:
    return 3 * len(offsets(radius, symmetric)) + EXTRAS


def radius_for_effort(effort: int) -> int:
    """The largest filter the encoder considers (0: no filter): efforts 1-2
    skip the fit; the 7 x 7 square costs a larger fit (about 4x) for its
    last few hundredths of a dB and waits for efforts 8-9."""
    return 0 if effort < 3 else 2 if effort < 8 else MAX_RADIUS


@dataclass(frozen=True)
class PostFilter:
    radius: int
    symmetric: bool
    shift: int
    coefficients: np.ndarray      # (3, features_per_channel) integers, units 2^-shift

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The filter as one convolution (3 x 3 x k x k weights, 3 biases, float64)."""
        r = self.radius
        w = self.coefficients.astype(np.float64) / 2**self.shift
        k = np.zeros((3, 3, 2 * r + 1, 2 * r + 1))
        k[[0, 1, 2], [0, 1, 2], r, r] = 1.0
        for j, (dy, dx) in enumerate(offsets(r, self.symmetric)):
            for src in range(3):
                wt = w[:, 3 * j + src]
                pairs = ((dy, dx), (-dy, -dx)) if self.symmetric else ((dy, dx),)
                for oy, ox in pairs:
                    k[:, src, r + oy, r + ox] += wt
                    k[:, src, r, r] -= wt
        u = w[:, -EXTRAS:]
        k[:, 1, r, r] += u[:, 0]
        k[:, 2, r, r] += u[:, 1]
        k[:, 0, r, r] -= u[:, 0] + u[:, 1]
        return torch.from_numpy(k), torch.from_numpy(u[:, 2].copy())

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The filtered (3, h, w) of ``pixels`` (3, h + 2r, w + 2r): the
        synthesis (pixel units) with ``radius`` pixels of border."""
        weight, bias = self.kernel()
        x = torch.from_numpy(np.ascontiguousarray(pixels, np.float64))[None]
        with torch.no_grad():
            return F.conv2d(x, weight, bias)[0].numpy()

    # -- bytes ----------------------------------------------------------------
    def pack(self, coder) -> bytes:
        """The segment: the head, then the coefficients range-coded under one
        Gaussian table (``coder``: the lossy model's) for the taps and one
        for the extras, each the table that codes them smallest."""
        taps, extras = self.coefficients[:, :-EXTRAS], self.coefficients[:, -EXTRAS:]
        tap_level, extra_level = _best_level(coder, taps), _best_level(coder, extras)
        enc = range_encoder()
        coder.encode(enc, taps, np.full(taps.shape, tap_level))
        coder.encode(enc, extras, np.full(extras.shape, extra_level))
        return _HEAD.pack(self.radius, int(self.symmetric), self.shift, tap_level,
                          extra_level) + stream_bytes(enc)

    @classmethod
    def unpack(cls, data: bytes, coder) -> "PostFilter":
        if len(data) < _HEAD.size:
            raise FormatError("truncated filter segment")
        radius, symmetric, shift, tap_level, extra_level = _HEAD.unpack_from(data)
        if not (1 <= radius <= MAX_RADIUS and symmetric in (0, 1) and shift <= 24
                and max(tap_level, extra_level) < coder.groups):
            raise FormatError("invalid filter segment head")
        n = features_per_channel(radius, bool(symmetric))
        try:
            dec = range_decoder(data[_HEAD.size:])
            taps = coder.decode(dec, np.full((3, n - EXTRAS), tap_level))
            extras = coder.decode(dec, np.full((3, EXTRAS), extra_level))
        except FormatError:
            raise
        except Exception as e:
            raise FormatError(f"corrupt filter segment ({type(e).__name__})") from None
        return cls(radius, bool(symmetric), shift, np.concatenate([taps, extras], 1))


def _best_level(coder, values: np.ndarray) -> int:
    bits = [coder.bits(values, np.full(values.shape, g)) for g in range(coder.groups)]
    return int(np.argmin(bits))


class FilterFit:
    """The least-squares statistics of the largest filter (``radius``, not
    symmetric) over the image's pixels, gathered window by window (``add``)
    and summed (``+``); every smaller or symmetric filter's are linear maps
    of them, so one pass over the pixels serves every candidate."""

    def __init__(self, radius: int):
        self.radius = radius
        n = features_per_channel(radius, False)
        self.gram = np.zeros((n, n))          # F^T F
        self.cross = np.zeros((n, 3))         # F^T t, t = original - synthesis
        self.energy = np.zeros(3)             # t^T t
        self.pixels = 0

    def __add__(self, other: "FilterFit") -> "FilterFit":
        out = FilterFit(self.radius)
        out.gram, out.cross = self.gram + other.gram, self.cross + other.cross
        out.energy, out.pixels = self.energy + other.energy, self.pixels + other.pixels
        return out

    def add(self, pixels: np.ndarray, original: np.ndarray, rows: int = 64) -> None:
        """Gather (3, h + 2r, w + 2r) synthesis ``pixels`` (r = ``radius``)
        against the (h', w', 3) ``original`` (h' <= h, w' <= w: the image's
        pixels of the region, the rest being padding), ``rows`` at a time."""
        r = self.radius
        h, w = original.shape[:2]
        target = original.transpose(2, 0, 1).astype(np.float64)
        for top in range(0, h, rows):
            n = min(rows, h - top)
            block = pixels[:, top:top + n + 2 * r, :w + 2 * r].astype(np.float64)
            centre = block[:, r:r + n, r:r + w]
            feats = [block[:, r + dy:r + dy + n, r + dx:r + dx + w] - centre
                     for dy, dx in offsets(r, False)]
            columns = [f[c].ravel() for f in feats for c in range(3)]
            columns += [(centre[1] - centre[0]).ravel(), (centre[2] - centre[0]).ravel(),
                        np.ones(n * w)]
            a = np.stack(columns, 1)
            t = (target[:, top:top + n] - centre).reshape(3, -1).T
            self.gram += a.T @ a
            self.cross += a.T @ t
            self.energy += (t * t).sum(0)
            self.pixels += n * w

    def _restrict(self, radius: int, symmetric: bool) -> np.ndarray:
        """The map from the full filter's features to those of a smaller or
        symmetric one (full features x its features)."""
        full = {d: j for j, d in enumerate(offsets(self.radius, False))}
        mine = offsets(radius, symmetric)
        n_full, n = features_per_channel(self.radius, False), features_per_channel(radius, symmetric)
        t = np.zeros((n_full, n))
        for j, (dy, dx) in enumerate(mine):
            for src in range(3):
                t[3 * full[(dy, dx)] + src, 3 * j + src] = 1
                if symmetric:
                    t[3 * full[(-dy, -dx)] + src, 3 * j + src] = 1
        for e in range(EXTRAS):
            t[n_full - EXTRAS + e, n - EXTRAS + e] = 1
        return t

    def choose(self, lam: float, coder) -> PostFilter | None:
        """The filter of least cost, bits + lambda x 255^2 x squared error
        per pixel and channel (the loss the model was trained on, times the
        pixel count), against no filter at all; None if none pays.  The error
        of each quantized candidate comes from the statistics directly."""
        if self.pixels == 0:
            return None
        best, best_cost = None, lam * self.energy.sum() / 3
        for radius in range(1, self.radius + 1):
            for symmetric in (True, False):
                t = self._restrict(radius, symmetric)
                gram, cross = t.T @ self.gram @ t, t.T @ self.cross
                ridge = 1e-9 * np.trace(gram) / len(gram)
                exact = np.linalg.solve(gram + ridge * np.eye(len(gram)), cross)   # (n, 3)
                for shift in SHIFTS:
                    ints = np.round(exact * 2**shift)
                    w = ints / 2**shift
                    error = self.energy - 2 * (w * cross).sum(0) + np.einsum("ic,ij,jc->c", w, gram, w)
                    ints = ints.T.astype(np.int64)
                    bits = 8 * (_HEAD.size + 4)
                    for part in (ints[:, :-EXTRAS], ints[:, -EXTRAS:]):
                        bits += coder.bits(part, np.full(part.shape, _best_level(coder, part)))
                    cost = bits + lam * error.sum() / 3
                    if cost < best_cost:
                        best, best_cost = PostFilter(radius, symmetric, shift, ints), cost
        return best
