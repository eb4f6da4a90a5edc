"""Pillow images <-> the 8-bit planes the codecs code.

A colour group (RGB, or one grey plane) is coded jointly; alpha is a
separate grey plane, always lossless.  Modes outside ``Mode`` are refused
by name rather than converted, so nothing comes back in another mode.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .container import Mode
from .errors import UnsupportedImage

SUPPORTED = {"1": Mode.BILEVEL, "L": Mode.L, "LA": Mode.LA, "RGB": Mode.RGB, "RGBA": Mode.RGBA}


@dataclass
class Planes:
    mode: Mode
    colour: np.ndarray            # (H, W, 1) grey or (H, W, 3) RGB, uint8
    alpha: np.ndarray | None      # (H, W, 1) uint8, or None

    @property
    def height(self) -> int:
        return self.colour.shape[0]

    @property
    def width(self) -> int:
        return self.colour.shape[1]


def split(image: Image.Image) -> Planes:
    mode = SUPPORTED.get(image.mode)
    if mode is None:
        raise UnsupportedImage(
            f"image mode {image.mode} is not supported (nc codes {', '.join(SUPPORTED)}); "
            f"convert it first, e.g. to RGB or RGBA")
    w, h = image.size
    if w < 1 or h < 1:
        raise UnsupportedImage(f"empty image ({w}x{h})")
    if mode is Mode.BILEVEL:
        image = image.convert("L")
    a = np.asarray(image, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if mode in (Mode.LA, Mode.RGBA):
        return Planes(mode, np.ascontiguousarray(a[:, :, :-1]), np.ascontiguousarray(a[:, :, -1:]))
    return Planes(mode, np.ascontiguousarray(a), None)


def colour_channels(mode: Mode) -> int:
    return 3 if mode in (Mode.RGB, Mode.RGBA) else 1


def merge(planes: Planes) -> Image.Image:
    a = planes.colour if planes.alpha is None else np.concatenate([planes.colour, planes.alpha], 2)
    if a.shape[2] == 1:
        a = a[:, :, 0]
    mode = planes.mode
    img = Image.fromarray(a, "L" if mode is Mode.BILEVEL else mode.name)
    if mode is Mode.BILEVEL:  # coded as L with values 0 and 255
        img = img.convert("1", dither=Image.Dither.NONE)
    return img
