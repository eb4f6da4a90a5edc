"""The library interface: ``encode(image) -> bytes``, ``decode(bytes) -> Image``,
``info(bytes) -> dict`` and their file helpers.

Files are written to a temporary name beside the destination and renamed
into place, so a failure never leaves a partial output behind, and an
existing file is only replaced when ``force=True``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from codec import weights
from codec.errors import NcError, UnsupportedImage
from codec.format import container
from codec.format.container import Codec
from codec.format.tiles import TileGrid
from codec.picture import Picture
from codec.pipeline import image as image_codec
from models.lossy.spec import QUALITY_SCALE

CODEC_NAMES = {"arm": Codec.ARM, "idf": Codec.IDF}
DEFAULT_LOSSLESS = "arm"
MIN_QUALITY, MAX_QUALITY = 1.0, 8.0
MIN_EFFORT, MAX_EFFORT, DEFAULT_EFFORT = 1, 9, 7


@dataclass
class EncodeResult:
    data: bytes
    ideal_bits: float   # the model's code length, -sum log2 p
    pixels: int
    quality: float | None = None   # lossy: the quality stored (chosen, with --target-bpp)

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


def as_picture(image) -> Picture:
    """A Picture of a Pillow image, a NumPy array or a Picture."""
    if isinstance(image, Picture):
        return image
    if isinstance(image, np.ndarray):
        return Picture.from_array(image)
    if isinstance(image, Image.Image):
        return Picture.from_pil(image)
    raise NcError(f"cannot encode a {type(image).__name__}: give a PIL image, an array or a Picture")


def encode_image(image, codec: str = DEFAULT_LOSSLESS, *, model: str | None = None,
                 quality: float | None = None, target_bpp: float | None = None,
                 effort: int | None = None, jobs: int | None = 1,
                 strip: bool = False, tile_size: int | None = None) -> EncodeResult:
    """Encode and report the sizes.  Lossless unless ``quality`` (1..8) or
    ``target_bpp`` is given; ``ideal_bits`` is the model's code length
    (lossless only).  ``effort`` (1..9) is how much encode time to spend;
    ``jobs`` how many processes code tiles of a large image (None: all
    cores); ``strip`` drops the metadata (ICC profile, EXIF, XMP, text);
    ``tile_size`` (a multiple of 64; default: the codec's) is for measuring
    what tiling costs."""
    pic = as_picture(image)
    pixels = pic.width * pic.height
    try:
        container.check_dimensions(pic.width, pic.height)
    except NcError as e:
        raise UnsupportedImage(str(e)) from None
    effort = DEFAULT_EFFORT if effort is None else int(effort)
    if not MIN_EFFORT <= effort <= MAX_EFFORT:
        raise NcError(f"effort must be between {MIN_EFFORT} and {MAX_EFFORT}")
    if quality is not None and target_bpp is not None:
        raise NcError("give either a quality or a target bpp, not both")
    if tile_size is not None and (tile_size < 64 or tile_size % 64):
        raise NcError(f"tile size must be a positive multiple of 64 (got {tile_size})")
    options = dict(effort=effort, jobs=jobs, strip=strip, tile_size=tile_size)
    if target_bpp is not None:
        return _encode_to_target(pic, target_bpp, model or weights.DEFAULT_MODELS["lossy"], options)
    if quality is not None:
        if not MIN_QUALITY <= quality <= MAX_QUALITY:
            raise NcError(f"quality must be between {MIN_QUALITY:g} and {MAX_QUALITY:g}")
        return _encode_lossy(pic, quality, model or weights.DEFAULT_MODELS["lossy"], options)
    c = _codec(codec)
    result = image_codec.encode_lossless(pic, c, [model] if model else weights.candidates(codec),
                                         **options)
    return EncodeResult(container.pack(result.container), result.ideal_bits, pixels)


def _encode_lossy(pic: Picture, quality: float, model_id: str, options: dict) -> EncodeResult:
    from codec.pipeline import lossy, lossy_image   # PyTorch: only lossy coding needs it
    encoded = lossy_image.encode_lossy(pic, quality, model_id, **options)
    stored = lossy.header_quality(encoded.container.header.codec_param)
    return EncodeResult(container.pack(encoded.container), 0.0, pic.width * pic.height, stored)


def _encode_to_target(pic: Picture, target_bpp: float, model_id: str, options: dict) -> EncodeResult:
    """The highest quality whose file is at most ``target_bpp`` (bisection
    over the continuous quality; file size grows with quality)."""
    def attempt(q):
        return _encode_lossy(pic, q, model_id, options)

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


def encode(image, codec: str = DEFAULT_LOSSLESS, *, model: str | None = None,
           quality: float | None = None, target_bpp: float | None = None,
           effort: int | None = None, jobs: int | None = 1, strip: bool = False) -> bytes:
    """Encode a Pillow image (or an array, or a Picture) to .nc bytes:
    lossless by default, lossy with a ``quality`` (1 smallest … 8 best,
    fractional allowed) or a ``target_bpp``."""
    return encode_image(image, codec, model=model, quality=quality, target_bpp=target_bpp,
                        effort=effort, jobs=jobs, strip=strip).data


def decode_picture(data: bytes, *, jobs: int | None = 1) -> Picture:
    """Decode .nc bytes to a Picture: samples, mode, palette, metadata."""
    data = bytes(data)
    c = container.unpack(data)
    weights.require(c.header.model_id, c.header.weights_digest)
    return image_codec.decode_container(c, data, jobs=jobs)


def decode(data: bytes, *, jobs: int | None = 1) -> Image.Image:
    """Decode .nc bytes to a Pillow image in the mode it was encoded from,
    metadata in ``info`` (16-bit colour has no Pillow mode: use
    ``decode_picture``)."""
    return decode_picture(data, jobs=jobs).to_pil()


def info(data: bytes) -> dict:
    """What the header says, without decoding: codec, model, size, mode, bpp."""
    c = container.unpack(bytes(data))
    h = c.header
    px = h.width * h.height
    facts = {"codec": h.codec.name.lower(), "model": h.model_id,
             "weights_digest": h.weights_digest.hex(), "format_version": h.version,
             "width": h.width, "height": h.height, "mode": h.mode.pil, "bit_depth": h.bit_depth,
             "bytes": len(data), "bpp": 8 * len(data) / px,
             "tiles": len(TileGrid(h.width, h.height, h.tile_width, h.tile_height)),
             "segments": {}}
    for s in c.segments:
        name = s.kind.name.lower()
        facts["segments"][name] = facts["segments"].get(name, 0) + len(s.data)
    if h.effort:
        facts["effort"] = h.effort
    if h.tile_width:
        facts["tile_size"] = [h.tile_width, h.tile_height]
    meta = c.optional(container.SegmentKind.METADATA)
    if meta is not None:
        from codec.format.metadata import unpack_metadata
        m, _ = unpack_metadata(meta.data)
        facts["metadata"] = sorted(m)
    if h.codec is Codec.LOSSY:
        facts["quality"] = h.codec_param / QUALITY_SCALE
        post_filter = c.optional(container.SegmentKind.FILTER)
        if post_filter is not None:
            from codec.lossy.postfilter import describe
            facts["post_filter"] = describe(post_filter.data)
    return facts


# -- files: moved to codec/files.py; re-exported so codec.encode_file etc. keep working
from codec.files import decode_file, encode_file, read_bytes, read_image, write_atomic  # noqa: E402,F401
