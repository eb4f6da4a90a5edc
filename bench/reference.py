"""The classic codecs nc is measured against, with the settings of
``shared/ANCHORS.md`` (as wrapped by imagecodecs)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ReferenceCodec:
    name: str
    suffix: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], np.ndarray]


def lossless_codecs() -> list[ReferenceCodec]:
    import imagecodecs as ic

    return [
        ReferenceCodec("PNG (level 9)", ".png", lambda a: ic.png_encode(a, level=9), ic.png_decode),
        ReferenceCodec("JPEG 2000 (reversible)", ".jp2",
                       lambda a: ic.jpeg2k_encode(a, level=0, reversible=True), ic.jpeg2k_decode),
        ReferenceCodec("WebP lossless (m6)", ".webp",
                       lambda a: ic.webp_encode(a, lossless=True, level=100, method=6),
                       ic.webp_decode),
        ReferenceCodec("JPEG XL e7", ".jxl",
                       lambda a: ic.jpegxl_encode(a, lossless=True, effort=7), ic.jpegxl_decode),
        ReferenceCodec("JPEG XL e9", ".jxl",
                       lambda a: ic.jpegxl_encode(a, lossless=True, effort=9), ic.jpegxl_decode),
    ]


@dataclass(frozen=True)
class LossyReference:
    """A classic lossy codec and the settings swept to draw its RD curve."""

    name: str
    suffix: str
    points: tuple
    encode: Callable[[np.ndarray, object], bytes]
    decode: Callable[[bytes], np.ndarray]


def _pillow_encode(fmt: str, **fixed):
    def encode(a: np.ndarray, q) -> bytes:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format=fmt, quality=q, **fixed)
        return buf.getvalue()
    return encode


def _pillow_decode(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def lossy_codecs() -> list[LossyReference]:
    import imagecodecs as ic

    return [
        LossyReference("JPEG", ".jpg", (10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
                       _pillow_encode("JPEG", subsampling="4:2:0", optimize=True), _pillow_decode),
        LossyReference("WebP", ".webp", (5, 15, 30, 50, 70, 85, 95),
                       _pillow_encode("WEBP", method=6), _pillow_decode),
        LossyReference("JPEG XL", ".jxl", (8, 6, 4, 3, 2, 1.5, 1, 0.6, 0.3),
                       lambda a, d: ic.jpegxl_encode(a, distance=d, effort=7), ic.jpegxl_decode),
        LossyReference("AVIF", ".avif", (10, 25, 40, 55, 70, 80, 90),
                       lambda a, q: ic.avif_encode(a, level=q, speed=4), ic.avif_decode),
        LossyReference("JPEG 2000", ".jp2", (25, 30, 35, 40, 45),
                       lambda a, p: ic.jpeg2k_encode(a, level=p), ic.jpeg2k_decode),
    ]
