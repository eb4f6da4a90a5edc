"""The library interface: ``encode(image) -> bytes``, ``decode(bytes) -> Image``,
``info(bytes) -> dict`` and their file helpers.

Files are written to a temporary name beside the destination and renamed
into place, so a failure never leaves a partial output behind, and an
existing file is only replaced when ``force=True``.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from . import container, lossless, lossy, weights
from .container import Codec, Container
from .errors import NcError, UnsupportedImage
from .picture import Picture
from .planes import merge, split

CODEC_NAMES = {"arm": Codec.ARM, "idf": Codec.IDF}
DEFAULT_LOSSLESS = "arm"
MIN_QUALITY, MAX_QUALITY = 1.0, 8.0


@dataclass
class EncodeResult:
    data: bytes
    ideal_bits: float   # the model's code length, -sum log2 p
    pixels: int

    @property
    def bpp(self) -> float:
        return 8 * len(self.data) / self.pixels

    @property
    def overhead(self) -> float:
        """Actual size over the model's ideal size, minus one."""
        return 8 * len(self.data) / self.ideal_bits - 1 if self.ideal_bits else 0.0


def installed_codecs() -> list[str]:
    """Lossless codecs whose default weights are installed."""
    return [n for n in CODEC_NAMES if weights.weights_path(weights.DEFAULT_MODELS[n]).exists()]


def _codec(name: str) -> Codec:
    try:
        return CODEC_NAMES[name]
    except KeyError:
        raise NcError(f"unknown codec '{name}' (choose from {', '.join(CODEC_NAMES)})") from None


def encode_image(image: Image.Image, codec: str = DEFAULT_LOSSLESS, *, model: str | None = None,
                 quality: float | None = None, target_bpp: float | None = None,
                 effort: int | None = None, jobs: int = 1, strip: bool = False) -> EncodeResult:
    """Encode and report the sizes.  Lossless unless ``quality`` (1..8) or
    ``target_bpp`` is given; ``ideal_bits`` is the model's code length
    (lossless only)."""
    # cli branch stand-in (the lead's version replaces this): effort, jobs and
    # strip are accepted and ignored; a Picture is coded as its Pillow image.
    if isinstance(image, Picture):
        image = image.to_pil()
    planes = split(image)
    pixels = planes.width * planes.height
    try:
        container.check_dimensions(planes.width, planes.height)
    except NcError as e:
        raise UnsupportedImage(str(e)) from None
    if quality is not None and target_bpp is not None:
        raise NcError("give either a quality or a target bpp, not both")
    if target_bpp is not None:
        return _encode_to_target(planes, target_bpp, model or weights.DEFAULT_MODELS["lossy"])
    if quality is not None:
        if not MIN_QUALITY <= quality <= MAX_QUALITY:
            raise NcError(f"quality must be between {MIN_QUALITY:g} and {MAX_QUALITY:g}")
        c = lossy.encode(planes, quality, model or weights.DEFAULT_MODELS["lossy"])
        return EncodeResult(container.pack(c), 0.0, pixels)
    c = _codec(codec)
    result = lossless.encode(planes, c, [model] if model else weights.candidates(codec))
    return EncodeResult(container.pack(result.container), result.ideal_bits, pixels)


def _encode_to_target(planes, target_bpp: float, model_id: str) -> EncodeResult:
    """The highest quality whose file is at most ``target_bpp`` (bisection
    over the continuous quality; file size grows with quality)."""
    pixels = planes.width * planes.height

    def attempt(q):
        return EncodeResult(container.pack(lossy.encode(planes, q, model_id)), 0.0, pixels)

    best = attempt(MIN_QUALITY)
    if best.bpp > target_bpp:
        raise NcError(f"target {target_bpp} bpp is below the smallest file "
                      f"({best.bpp:.3f} bpp at quality {MIN_QUALITY:g})")
    top = attempt(MAX_QUALITY)
    if top.bpp <= target_bpp:
        return top
    lo, hi = MIN_QUALITY, MAX_QUALITY
    for _ in range(7):
        mid = (lo + hi) / 2
        r = attempt(mid)
        if r.bpp <= target_bpp:
            lo, best = mid, r
        else:
            hi = mid
    return best


def encode(image: Image.Image, codec: str = DEFAULT_LOSSLESS, *, model: str | None = None,
           quality: float | None = None, target_bpp: float | None = None,
           effort: int | None = None, jobs: int = 1, strip: bool = False) -> bytes:
    """Encode a Pillow image to .nc bytes: lossless by default, lossy with a
    ``quality`` (1 smallest … 8 best, fractional allowed) or a ``target_bpp``."""
    return encode_image(image, codec, model=model, quality=quality, target_bpp=target_bpp,
                        effort=effort, jobs=jobs, strip=strip).data


def decode(data: bytes, *, jobs: int = 1) -> Image.Image:
    """Decode .nc bytes to a Pillow image in the mode it was encoded from."""
    c = container.unpack(bytes(data))
    weights.require(c.header.model_id, c.header.weights_digest)
    if c.header.codec is Codec.LOSSY:
        return merge(lossy.decode(c))
    return merge(lossless.decode(c))


def decode_picture(data: bytes, *, jobs: int = 1) -> Picture:
    """Decode .nc bytes to a Picture (cli branch stand-in: the Pillow image's picture)."""
    return Picture.from_pil(decode(data, jobs=jobs))


def info(data: bytes) -> dict:
    """What the header says, without decoding: codec, model, size, mode, bpp."""
    c = container.unpack(bytes(data))
    h = c.header
    px = h.width * h.height
    facts = {"codec": h.codec.name.lower(), "model": h.model_id,
            "weights_digest": h.weights_digest.hex(), "format_version": h.version,
            "width": h.width, "height": h.height, "mode": h.mode.pil, "bit_depth": h.bit_depth,
            "bytes": len(data), "bpp": 8 * len(data) / px,
            "segments": {s.kind.name.lower(): len(s.data) for s in c.segments}}
    if h.codec is Codec.LOSSY:
        facts["quality"] = h.codec_param / lossy.QUALITY_SCALE
    return facts


# -- files: moved to codec/files.py; re-exported so codec.encode_file etc. keep working
from .files import decode_file, encode_file, read_bytes, read_image, write_atomic  # noqa: E402,F401
