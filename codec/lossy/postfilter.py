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

Flat areas and textured ones want different corrections, so a filter may
have up to four classes (as the adaptive loop filters classify by
activity): each pixel's class comes from the local activity of the rounded
synthesis -- integers, so encoder and decoder agree on it up to the rare
pixel whose rounding differs between machines -- through one of 16 fixed
logarithmic bins and the image's bin boundaries, and each class has its
own coefficients.  The encoder gathers least-squares statistics per bin in
one pass and tries one to four classes split at the bins' quantiles.
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
MAX_CLASSES = 4
ACTIVITY_BINS = 16
ACTIVITY_BORDER = 2             # pixels around a pixel its activity reads
SHIFTS = range(4, 14)           # coefficient units the encoder tries: 2^-4 .. 2^-13
EXTRAS = 3                      # two colour differences and a bias, per output channel
_HEAD = struct.Struct("<BBBBBB")  # radius, symmetric, shift, tap level, extra level, classes


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
    skip the fit; the 7 x 7 square costs a larger fit (about 2x) for its
    last few hundredths of a dB and waits for efforts 8-9."""
    return 0 if effort < 3 else 2 if effort < 8 else MAX_RADIUS


def activity_bins(pixels: np.ndarray) -> np.ndarray:
    """(h, w) activity bins 0..15 of the (3, h + 4, w + 4) synthesis
    ``pixels`` (pixel units; the activity reads it rounded to 8 bits): the
    bit length of A, the 3 x 3 sum of g = sum over channels of
    |4 x(p) - x(p + up) - x(p + down) - x(p + left) - x(p + right)|."""
    x = np.clip(np.rint(pixels), 0, 255).astype(np.int32)
    c = x[:, 1:-1, 1:-1]
    g = np.abs(4 * c - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]).sum(0)
    h, w = g.shape[0] - 2, g.shape[1] - 2
    a = sum(g[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))
    # bit_length(A): the number of powers of two at most A
    return np.minimum(np.searchsorted(2 ** np.arange(ACTIVITY_BINS), a, side="right"),
                      ACTIVITY_BINS - 1)


@dataclass(frozen=True)
class PostFilter:
    radius: int
    symmetric: bool
    shift: int
    coefficients: np.ndarray      # (classes, 3, features_per_channel) integers, units 2^-shift
    boundaries: tuple[int, ...] = ()   # classes - 1 activity bins, increasing: where classes start

    @property
    def classes(self) -> int:
        return len(self.boundaries) + 1

    @property
    def border(self) -> int:
        """Pixels around a region that ``apply`` reads."""
        return self.radius if self.classes == 1 else max(self.radius, ACTIVITY_BORDER)

    def kernel(self, k: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Class k's filter as one convolution (3 x 3 x s x s weights, 3
        biases, float64)."""
        r = self.radius
        w = self.coefficients[k].astype(np.float64) / 2**self.shift
        kern = np.zeros((3, 3, 2 * r + 1, 2 * r + 1))
        kern[[0, 1, 2], [0, 1, 2], r, r] = 1.0
        for j, (dy, dx) in enumerate(offsets(r, self.symmetric)):
            for src in range(3):
                wt = w[:, 3 * j + src]
                pairs = ((dy, dx), (-dy, -dx)) if self.symmetric else ((dy, dx),)
                for oy, ox in pairs:
                    kern[:, src, r + oy, r + ox] += wt
                    kern[:, src, r, r] -= wt
        u = w[:, -EXTRAS:]
        kern[:, 1, r, r] += u[:, 0]
        kern[:, 2, r, r] += u[:, 1]
        kern[:, 0, r, r] -= u[:, 0] + u[:, 1]
        return torch.from_numpy(kern), torch.from_numpy(u[:, 2].copy())

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """Every class's filter of (1, 3, h + 2r, w + 2r) pixels, float32
        (differentiable, for the refinement's guide): (1, 3 x classes, h, w)."""
        kernels = [self.kernel(k) for k in range(self.classes)]
        weight = torch.cat([w for w, _ in kernels]).float()
        bias = torch.cat([c for _, c in kernels]).float()
        return F.conv2d(x, weight, bias)

    def classes_of(self, pixels: np.ndarray) -> np.ndarray:
        """(h, w) class of each pixel of a region given with ``border``."""
        b = self.border - ACTIVITY_BORDER
        inner = pixels[:, b:pixels.shape[1] - b, b:pixels.shape[2] - b]
        return np.searchsorted(np.asarray(self.boundaries), activity_bins(inner), side="right")

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The filtered (3, h, w) of ``pixels`` (3, h + 2b, w + 2b): the
        synthesis (pixel units) with ``border`` pixels around the region.
        The convolutions run in float32 (ten times faster here than
        float64, and the synthesis they filter is float32 already)."""
        b, r = self.border, self.radius
        x = torch.from_numpy(np.ascontiguousarray(
            pixels[:, b - r:pixels.shape[1] - b + r, b - r:pixels.shape[2] - b + r], np.float32))
        with torch.no_grad():
            out = self.convolve(x[None])[0].numpy()
        if self.classes == 1:
            return out
        out = out.reshape(self.classes, 3, *out.shape[1:])
        return np.take_along_axis(out, self.classes_of(pixels)[None, None], 0)[0]

    # -- bytes ----------------------------------------------------------------
    def pack(self, coder) -> bytes:
        """The segment: the head and the class boundaries, then the
        coefficients range-coded under one Gaussian table (``coder``: the
        lossy model's) for the taps and one for the extras, each the table
        that codes them smallest."""
        taps, extras = self.coefficients[..., :-EXTRAS], self.coefficients[..., -EXTRAS:]
        tap_level, extra_level = coder.best_group(taps), coder.best_group(extras)
        enc = range_encoder()
        coder.encode(enc, taps, np.full(taps.shape, tap_level))
        coder.encode(enc, extras, np.full(extras.shape, extra_level))
        return (_HEAD.pack(self.radius, int(self.symmetric), self.shift, tap_level, extra_level,
                           self.classes) + bytes(self.boundaries) + stream_bytes(enc))

    @classmethod
    def unpack(cls, data: bytes, coder) -> "PostFilter":
        if len(data) < _HEAD.size:
            raise FormatError("truncated filter segment")
        radius, symmetric, shift, tap_level, extra_level, classes = _HEAD.unpack_from(data)
        if not (1 <= radius <= MAX_RADIUS and symmetric in (0, 1) and shift <= 24
                and max(tap_level, extra_level) < coder.groups and 1 <= classes <= MAX_CLASSES):
            raise FormatError("invalid filter segment head")
        boundaries = tuple(data[_HEAD.size:_HEAD.size + classes - 1])
        if (len(boundaries) != classes - 1 or list(boundaries) != sorted(set(boundaries))
                or not all(0 < b < ACTIVITY_BINS for b in boundaries)):
            raise FormatError("invalid filter class boundaries")
        n = features_per_channel(radius, bool(symmetric))
        try:
            dec = range_decoder(data[_HEAD.size + classes - 1:])
            taps = coder.decode(dec, np.full((classes, 3, n - EXTRAS), tap_level))
            extras = coder.decode(dec, np.full((classes, 3, EXTRAS), extra_level))
        except FormatError:
            raise
        except Exception as e:
            raise FormatError(f"corrupt filter segment ({type(e).__name__})") from None
        return cls(radius, bool(symmetric), shift, np.concatenate([taps, extras], -1), boundaries)


def describe(data: bytes) -> str:
    """What a filter segment holds, from its head alone (``nc info``)."""
    if len(data) < _HEAD.size:
        raise FormatError("truncated filter segment")
    radius, symmetric, _, _, _, classes = _HEAD.unpack_from(data)
    size = 2 * radius + 1
    return (f"{size}x{size}{' symmetric' if symmetric else ''}, {classes} "
            f"class{'es' if classes > 1 else ''}, {len(data)} bytes")


def _least_squares(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """The coefficients minimising the squared error, from the normal
    equations; a whisker of ridge keeps a class with few (or flat) pixels
    solvable without moving a well-posed one."""
    ridge = 1e-9 * (np.trace(gram) / len(gram) + 1)
    return np.linalg.solve(gram + ridge * np.eye(len(gram)), cross)


class FilterFit:
    """The least-squares statistics of the largest filter (``radius``, not
    symmetric) over the image's pixels, per activity bin, gathered window
    by window (``add``) and summed (``+``).  Every smaller or symmetric
    filter's statistics are linear maps of them, and every class's the sum
    of its bins', so one pass over the pixels serves every candidate."""

    def __init__(self, radius: int):
        self.radius = radius
        self.border = max(radius, ACTIVITY_BORDER)
        n = features_per_channel(radius, False)
        self.gram = np.zeros((ACTIVITY_BINS, n, n))     # F^T F
        self.cross = np.zeros((ACTIVITY_BINS, n, 3))    # F^T t, t = original - synthesis
        self.energy = np.zeros((ACTIVITY_BINS, 3))      # t^T t
        self.pixels = np.zeros(ACTIVITY_BINS, np.int64)

    def __add__(self, other: "FilterFit") -> "FilterFit":
        out = FilterFit(self.radius)
        out.gram, out.cross = self.gram + other.gram, self.cross + other.cross
        out.energy, out.pixels = self.energy + other.energy, self.pixels + other.pixels
        return out

    def add(self, pixels: np.ndarray, original: np.ndarray, rows: int = 64, every: int = 1) -> None:
        """Gather (3, h + 2b, w + 2b) synthesis ``pixels`` (b = ``border``)
        against the (h', w', 3) ``original`` (h' <= h, w' <= w: the image's
        pixels of the region, the rest being padding), ``rows`` at a time;
        only every ``every``-th band of them (a quicker, rougher fit)."""
        r, b = self.radius, self.border
        h, w = original.shape[:2]
        target = original.transpose(2, 0, 1).astype(np.float64)
        for top in range(0, h, rows * every):
            n = min(rows, h - top)
            block = pixels[:, top:top + n + 2 * b, :w + 2 * b].astype(np.float64)
            bins = activity_bins(block[:, b - ACTIVITY_BORDER:b + n + ACTIVITY_BORDER,
                                       b - ACTIVITY_BORDER:b + w + ACTIVITY_BORDER]).ravel()
            centre = block[:, b:b + n, b:b + w]
            feats = [block[:, b + dy:b + dy + n, b + dx:b + dx + w] - centre
                     for dy, dx in offsets(r, False)]
            columns = [f[c].ravel() for f in feats for c in range(3)]
            columns += [(centre[1] - centre[0]).ravel(), (centre[2] - centre[0]).ravel(),
                        np.ones(n * w)]
            a = np.stack(columns, 1)
            t = (target[:, top:top + n] - centre).reshape(3, -1).T
            order = np.argsort(bins, kind="stable")
            edges = np.searchsorted(bins[order], np.arange(ACTIVITY_BINS + 1))
            for k in range(ACTIVITY_BINS):
                idx = order[edges[k]:edges[k + 1]]
                if len(idx):
                    ak, tk = a[idx], t[idx]
                    self.gram[k] += ak.T @ ak
                    self.cross[k] += ak.T @ tk
                    self.energy[k] += (tk * tk).sum(0)
                    self.pixels[k] += len(idx)

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

    def _splits(self, max_classes: int):
        """Class boundaries to try: for 1..max_classes classes, the bins
        where the cumulative pixel count crosses each k/K (duplicates and
        empty classes dropped)."""
        cumulative = np.cumsum(self.pixels) / max(self.pixels.sum(), 1)
        seen = set()
        for k in range(1, max_classes + 1):
            cuts = tuple(sorted({int(np.searchsorted(cumulative, j / k, side="right"))
                                 for j in range(1, k)}))
            cuts = tuple(c for c in cuts if 0 < c < ACTIVITY_BINS)
            if cuts not in seen:
                seen.add(cuts)
                yield cuts

    def choose(self, lam: float, coder, max_classes: int = MAX_CLASSES) -> PostFilter | None:
        """The filter of least cost, bits + lambda x 255^2 x squared error
        per pixel and channel (the loss the model was trained on, times the
        pixel count), against no filter at all; None if none pays.  The error
        of each quantized candidate comes from the statistics directly."""
        if self.pixels.sum() == 0:
            return None
        best, best_cost = None, lam * self.energy.sum() / 3
        for boundaries in self._splits(max_classes):
            groups = np.split(np.arange(ACTIVITY_BINS), boundaries)
            gram = np.stack([self.gram[g].sum(0) for g in groups])
            cross = np.stack([self.cross[g].sum(0) for g in groups])
            energy = np.stack([self.energy[g].sum(0) for g in groups])
            for radius in range(1, self.radius + 1):
                for symmetric in (True, False):
                    t = self._restrict(radius, symmetric)
                    g_k, c_k = t.T @ gram @ t, t.T @ cross
                    exact = np.stack([_least_squares(g, c) for g, c in zip(g_k, c_k)])  # (classes, n, 3)
                    for shift in SHIFTS:
                        ints = np.round(exact * 2**shift)
                        w = ints / 2**shift
                        error = (energy - 2 * (w * c_k).sum(1)
                                 + np.einsum("kic,kij,kjc->kc", w, g_k, w)).sum()
                        ints = ints.transpose(0, 2, 1).astype(np.int64)     # (classes, 3, n)
                        bits = 8 * (_HEAD.size + len(boundaries) + 4)
                        for part in (ints[..., :-EXTRAS], ints[..., -EXTRAS:]):
                            bits += coder.bits(part, np.full(part.shape, coder.best_group(part)))
                        cost = bits + lam * error / 3
                        if cost < best_cost:
                            best = PostFilter(radius, symmetric, shift, ints, boundaries)
                            best_cost = cost
        return best
