"""The cheap fallback: a plane group deflated, for where the model loses.

A learned model pays for itself on photographs; on a 1x1 image, an icon, a
bilevel drawing or the noise-like low bytes of 16-bit samples it can cost
more than plain deflate.  Every segment of samples is therefore coded both
ways and the smaller kept (the segment's ``method``, docs/FORMAT.md §3):
zlib over the samples as they are, or after subtracting the left or the
upper neighbour (PNG's Sub and Up filters applied to the whole plane, mod
256).  Bilevel samples (0 or 255) are packed eight to a byte first, as PNG
packs 1-bit images.  The stream is zlib's, so any inflater reads it.
"""
from __future__ import annotations

import zlib

import numpy as np

from codec.errors import FormatError
from codec.format.container import Method

METHODS = (Method.DEFLATE, Method.DEFLATE_SUB, Method.DEFLATE_UP)


def _filter(a: np.ndarray, method: Method) -> np.ndarray:
    if method is Method.DEFLATE_SUB:
        return np.diff(a, axis=1, prepend=np.zeros_like(a[:, :1]))
    if method is Method.DEFLATE_UP:
        return np.diff(a, axis=0, prepend=np.zeros_like(a[:1]))
    return a


def _unfilter(a: np.ndarray, method: Method) -> np.ndarray:
    if method is Method.DEFLATE_SUB:
        return np.cumsum(a, axis=1, dtype=np.uint8)
    if method is Method.DEFLATE_UP:
        return np.cumsum(a, axis=0, dtype=np.uint8)
    return a


def _packed(samples: np.ndarray, bilevel: bool) -> np.ndarray:
    """(H, W', C) uint8: bilevel planes packed to bits along each row."""
    if not bilevel:
        return samples
    return np.packbits(samples > 0, axis=1)


def encode(samples: np.ndarray, bilevel: bool = False) -> tuple[Method, bytes]:
    """The smallest deflated form of (H, W, C) uint8 samples."""
    a = _packed(samples, bilevel)
    best = None
    for method in METHODS:
        data = zlib.compress(np.ascontiguousarray(_filter(a, method)).tobytes(), 9)
        if best is None or len(data) < len(best[1]):
            best = (method, data)
    return best


def decode(method: Method, data: bytes, shape: tuple[int, int, int],
           bilevel: bool = False) -> np.ndarray:
    h, w, c = shape
    packed_w = -(-w // 8) if bilevel else w
    expected = h * packed_w * c
    try:
        d = zlib.decompressobj()
        raw = d.decompress(data, expected)
        if len(raw) != expected or d.unconsumed_tail or not d.eof or d.unused_data:
            raise FormatError("deflated samples do not fill the tile exactly")
    except zlib.error as e:
        raise FormatError(f"corrupt deflated samples ({e})") from None
    a = _unfilter(np.frombuffer(raw, np.uint8).reshape(h, packed_w, c), method)
    if bilevel:
        a = np.unpackbits(a, axis=1, count=w) * np.uint8(255)
    return np.ascontiguousarray(a)
