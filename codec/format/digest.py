"""Check values that make a wrong image impossible to accept silently.

Every tile carries the first 8 bytes of the SHA-256 of the header (bytes
0..59), the tile's index and the tile's decoded samples (lossless: the
pixels; lossy: the integer latents and lossless alpha the encoder coded,
which every machine decodes bit for bit, unlike the float synthesis that
follows).  The decoder recomputes it before anything is written, as FLAC
checks the MD5 of the source audio: a decoder bug, a cross-CPU mismatch or
an edited header ends in an error, never in a wrong picture.
"""
from __future__ import annotations

import hashlib
import struct

import numpy as np

DIGEST_SIZE = 8


def tile_digest(header: bytes, tile: int, *arrays: np.ndarray) -> bytes:
    h = hashlib.sha256(header[:60])
    h.update(struct.pack("<H", tile))
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(struct.pack("<B", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape))
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.digest()[:DIGEST_SIZE]
