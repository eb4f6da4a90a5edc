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
