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

from . import container, lossless, weights
from .container import Codec, Container
from .errors import NcError, UnsupportedImage
from .planes import merge, split

CODEC_NAMES = {"arm": Codec.ARM}  # the IDF joins when its weights ship
DEFAULT_LOSSLESS = "arm"


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


def _codec(name: str) -> Codec:
    try:
        return CODEC_NAMES[name]
    except KeyError:
        raise NcError(f"unknown codec '{name}' (choose from {', '.join(CODEC_NAMES)})") from None


def encode_image(image: Image.Image, codec: str = DEFAULT_LOSSLESS, *,
                 model: str | None = None) -> EncodeResult:
    """Encode and report the ideal and actual sizes."""
    c = _codec(codec)
    planes = split(image)
    model_id = model or weights.DEFAULT_MODELS[codec]
    result = lossless.encode(planes, c, model_id)
    data = container.pack(result.container)
    return EncodeResult(data, result.ideal_bits, planes.width * planes.height)


def encode(image: Image.Image, codec: str = DEFAULT_LOSSLESS, *, model: str | None = None) -> bytes:
    """Encode a Pillow image to .nc bytes (lossless)."""
    return encode_image(image, codec, model=model).data


def decode(data: bytes) -> Image.Image:
    """Decode .nc bytes to a Pillow image in the mode it was encoded from."""
    c = container.unpack(bytes(data))
    weights.require(c.header.model_id, c.header.weights_digest)
    return merge(lossless.decode(c))


def info(data: bytes) -> dict:
    """What the header says, without decoding: codec, model, size, mode, bpp."""
    c = container.unpack(bytes(data))
    h = c.header
    px = h.width * h.height
    return {"codec": h.codec.name.lower(), "model": h.model_id,
            "weights_digest": h.weights_digest.hex(), "format_version": h.version,
            "width": h.width, "height": h.height, "mode": h.mode.pil, "bit_depth": h.bit_depth,
            "bytes": len(data), "bpp": 8 * len(data) / px,
            "segments": {s.kind.name.lower(): len(s.data) for s in c.segments}}


# -- files --------------------------------------------------------------------
def read_image(path: str | os.PathLike) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except FileNotFoundError:
        raise NcError(f"no such file: {path}") from None
    except UnidentifiedImageError:
        raise UnsupportedImage(f"{path}: not an image Pillow can read") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UnsupportedImage(f"{path}: cannot read image ({e})") from None


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise NcError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise NcError(f"{path} is a directory") from None


def write_atomic(path: str | os.PathLike, write, force: bool = False) -> None:
    """Call ``write(tmp_path)``, then rename into ``path``; no partial file ever."""
    path = Path(path)
    if path.exists() and not force:
        raise NcError(f"{path} exists (use --force to overwrite)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise NcError(f"output folder {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_file(src, dst, codec: str = DEFAULT_LOSSLESS, *, force: bool = False,
                model: str | None = None) -> EncodeResult:
    result = encode_image(read_image(src), codec, model=model)
    write_atomic(dst, lambda tmp: Path(tmp).write_bytes(result.data), force)
    return result


def decode_file(src, dst, *, force: bool = False) -> Image.Image:
    image = decode(read_bytes(src))
    fmt = Image.registered_extensions().get(Path(dst).suffix.lower())
    if fmt is None:
        raise NcError(f"cannot tell the image format from '{dst}' (use e.g. .png)")
    write_atomic(dst, lambda tmp: image.save(tmp, format=fmt), force)
    return image
