"""What nc codes: an image's samples, its mode, and everything else it carries.

A ``Picture`` is the one in-memory form every codec reads and writes.  It
exists because a Pillow image cannot hold all of it: Pillow reads 16-bit RGB
PNGs as 8-bit (so those arrive here as arrays, read with imagecodecs), and
the metadata a lossless codec must not lose (ICC profile, EXIF, XMP, PNG
text) lives in ``Image.info`` under keys that differ by format.  Reading and
writing files is ``codec/files.py``'s job; this module only converts.

Modes (``Picture.mode``), with the samples' shape and type:

====================  =================  ==========================
mode                  samples            notes
====================  =================  ==========================
``1``                 (H, W, 1) uint8    0 or 255 (bilevel)
``L`` / ``LA``        (H, W, 1|2) uint8
``RGB`` / ``RGBA``    (H, W, 3|4) uint8
``P``                 (H, W, 1) uint8    palette indices; ``palette``
``I;16``              (H, W, 1) uint16   16-bit grey
``RGB;16``/``RGBA;16``  (H, W, 3|4) uint16 16-bit colour (arrays only)
====================  =================  ==========================
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from codec.errors import UnsupportedImage

MODE_CHANNELS = {"1": 1, "L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "P": 1, "I;16": 1,
                 "RGB;16": 3, "RGBA;16": 4}
SIXTEEN_BIT = {"I;16", "RGB;16", "RGBA;16"}
# Pillow's 16-bit grey modes that hold the same samples as I;16
_I16_ALIASES = {"I;16", "I;16L", "I;16B", "I;16N"}
METADATA_KEYS = ("icc_profile", "exif", "xmp")


@dataclass
class Picture:
    """Samples (H, W, C) plus what a decoder needs to give the image back."""

    samples: np.ndarray
    mode: str
    palette: bytes | None = None          # P: packed entries, ``palette_mode`` each
    palette_mode: str = "RGB"             # P: "RGB" or "RGBA"
    transparency: int | bytes | tuple | None = None   # Pillow's info["transparency"] (tRNS)
    metadata: dict = field(default_factory=dict)  # icc_profile/exif/xmp: bytes; text: {str: str}

    @property
    def height(self) -> int:
        return self.samples.shape[0]

    @property
    def width(self) -> int:
        return self.samples.shape[1]

    @property
    def bit_depth(self) -> int:
        return 16 if self.mode in SIXTEEN_BIT else 8

    # -- conversions ------------------------------------------------------------
    @classmethod
    def from_pil(cls, image: Image.Image) -> "Picture":
        """The picture of a Pillow image: its samples, palette and metadata."""
        mode = "I;16" if image.mode in _I16_ALIASES else image.mode
        if mode not in MODE_CHANNELS or mode in ("RGB;16", "RGBA;16"):
            raise UnsupportedImage(
                f"image mode {image.mode} is not supported (nc codes "
                f"{', '.join(MODE_CHANNELS)}); convert it first, e.g. to RGB or RGBA")
        w, h = image.size
        if w < 1 or h < 1:
            raise UnsupportedImage(f"empty image ({w}x{h})")
        if mode == "1":
            a = np.asarray(image.convert("L"), dtype=np.uint8)
        elif mode == "I;16":
            a = np.asarray(image).astype(np.uint16)   # any byte order -> native
        else:
            a = np.asarray(image, dtype=np.uint8)
        pic = cls(_three_d(a), mode, metadata=metadata_of(image),
                  transparency=image.info.get("transparency"))
        if mode == "P":
            pmode, data = image.palette.getdata() if image.palette else ("RGB", b"")
            pic.palette_mode = "RGBA" if pmode.upper() == "RGBA" else "RGB"
            pic.palette = bytes(data)
        return pic

    @classmethod
    def from_array(cls, array: np.ndarray, metadata: dict | None = None) -> "Picture":
        """A picture of a bare array: uint8 with 1-4 channels (L, LA, RGB,
        RGBA) or uint16 with 1, 3 or 4 (I;16, RGB;16, RGBA;16)."""
        a = _three_d(np.asarray(array))
        c = a.shape[2]
        if a.dtype == np.uint8 and c in (1, 2, 3, 4):
            mode = ("L", "LA", "RGB", "RGBA")[c - 1]
        elif a.dtype == np.uint16 and c in (1, 3, 4):
            mode = {1: "I;16", 3: "RGB;16", 4: "RGBA;16"}[c]
        else:
            raise UnsupportedImage(f"cannot code an array of {a.dtype} with {c} channels")
        if a.shape[0] < 1 or a.shape[1] < 1:
            raise UnsupportedImage(f"empty image ({a.shape[1]}x{a.shape[0]})")
        return cls(np.ascontiguousarray(a), mode, metadata=dict(metadata or {}))

    def to_pil(self) -> Image.Image:
        """The Pillow image, metadata in ``info`` as Pillow's own readers put it.
        16-bit colour has no Pillow mode: use ``samples``."""
        if self.mode in ("RGB;16", "RGBA;16"):
            raise UnsupportedImage(f"Pillow has no mode for {self.mode} images; "
                                   f"use codec.decode_picture(...).samples")
        a = self.samples[:, :, 0] if self.samples.shape[2] == 1 else self.samples
        if self.mode == "1":
            img = Image.fromarray(a, "L").convert("1", dither=Image.Dither.NONE)
        elif self.mode == "I;16":
            img = Image.frombytes("I;16", (self.width, self.height), a.astype("<u2").tobytes())
        else:
            img = Image.fromarray(a, self.mode)
        if self.mode == "P":
            img.putpalette(self.palette or b"", self.palette_mode)
        if self.transparency is not None:
            img.info["transparency"] = self.transparency
        for key in METADATA_KEYS:
            if key in self.metadata:
                img.info[key] = self.metadata[key]
        for key, value in self.metadata.get("text", {}).items():
            img.info.setdefault(key, value)
        return img


def metadata_of(image: Image.Image) -> dict:
    """ICC profile, EXIF, XMP and text chunks of a Pillow image, as bytes
    (and ``text``: {keyword: str}); empty entries are left out."""
    info = image.info
    meta = {}
    for key in METADATA_KEYS:
        value = info.get(key)
        if isinstance(value, str):
            value = value.encode("utf-8")
        if value:
            meta[key] = bytes(value)
    text = dict(getattr(image, "text", None) or {})
    if text:
        meta["text"] = {str(k): str(v) for k, v in text.items()}
    return meta


def _three_d(a: np.ndarray) -> np.ndarray:
    return a[:, :, None] if a.ndim == 2 else a
