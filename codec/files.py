"""Images and .nc files on disk and on the standard streams.

The codec (``api.py``) works on bytes and pictures and never sees a path;
this module decides everything that depends on where they come from and go:

* which library reads an image: Pillow, except for 16-bit colour PNG and
  TIFF, which Pillow narrows to 8 bits and so are read with imagecodecs;
* what an output format can hold (modes, ICC profile, EXIF, XMP, text), so
  that an image either leaves exactly as it was decoded or not at all;
* getting a whole file into place or nothing: outputs are written to a
  temporary name beside the destination and renamed, with the permissions a
  new file gets under the umask, and an existing file is only replaced with
  ``force=True``.

``-`` names stdin (reading) or stdout (writing) wherever a path is taken.
"""
from __future__ import annotations

import io
import os
import struct
import sys
import tempfile
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from codec import api
from codec.errors import NcError, UnsupportedImage
from codec.picture import Picture, metadata_of

STDIO = "-"
DEFAULT_FORMAT = "PNG"       # what a decoded image becomes when no suffix says otherwise
SIXTEEN_BIT_COLOUR = ("RGB;16", "RGBA;16")

# The modes each output format stores exactly (Pillow converts others silently
# or refuses with a message naming its internals).  Formats not listed are
# written as Pillow writes them.
FORMAT_MODES = {
    "PNG": {"1", "L", "LA", "RGB", "RGBA", "P", "I;16", "RGB;16", "RGBA;16"},
    "TIFF": {"1", "L", "LA", "RGB", "RGBA", "P", "I;16", "RGB;16", "RGBA;16"},
    "WEBP": {"RGB", "RGBA"},
    "PPM": {"1", "L", "RGB", "I;16"},
    "BMP": {"1", "L", "P", "RGB"},
    "GIF": set(),      # modes and palettes come back changed
}
# The suffix a decoded file gets when only its format is known.
FORMAT_SUFFIX = {"PNG": ".png", "TIFF": ".tiff", "WEBP": ".webp", "PPM": ".ppm", "BMP": ".bmp",
                 "JPEG": ".jpg"}
XMP_PNG_KEY = "XML:com.adobe.xmp"   # the PNG text chunk that holds XMP


def is_stdio(path) -> bool:
    return str(path) == STDIO


def display_name(path) -> str:
    return "stdin" if is_stdio(path) else str(path)


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


# -- reading ------------------------------------------------------------------
def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a file, or of stdin for ``-``."""
    if is_stdio(path):
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise NcError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise NcError(f"{path} is a directory") from None
    except PermissionError:
        raise NcError(f"{path}: permission denied") from None


@contextmanager
def _reading(name: str):
    """Pillow's and imagecodecs' many failure types as one-line errors; the
    decompression-bomb warning becomes an error instead of a multi-line warning."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (NcError, MemoryError):
        raise
    except UnidentifiedImageError:
        raise UnsupportedImage(f"{name}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnsupportedImage(f"{name}: too large to read safely ({_one_line(e)})") from None
    except Exception as e:  # truncated or malformed files raise all sorts
        raise UnsupportedImage(f"{name}: cannot read image ({_one_line(e)})") from None


def read_image(path: str | os.PathLike) -> Image.Image:
    """A Pillow image, fully loaded (``-``: from stdin)."""
    name = display_name(path)
    data = read_bytes(path)
    with _reading(name):
        im = Image.open(io.BytesIO(data))
        im.load()
        return im


def _rawmode(im: Image.Image) -> str:
    if not im.tile:
        return ""
    args = im.tile[0].args
    return args if isinstance(args, str) else str(args[0]) if args else ""


def read_picture(path: str | os.PathLike) -> Picture:
    """The picture in an image file (``-``: stdin), metadata included.

    16-bit colour PNG and TIFF are read with imagecodecs (Pillow would give
    8 bits); everything else with Pillow.  Animated images are refused rather
    than coded as their first frame.
    """
    name = display_name(path)
    data = read_bytes(path)
    with _reading(name):
        with Image.open(io.BytesIO(data)) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise UnsupportedImage(f"{name} holds {frames} frames; nc codes one image")
            raw = _rawmode(im)           # e.g. RGB;16B: what the file holds, before Pillow narrows it
            sixteen = im.format in ("PNG", "TIFF") and ";16" in raw
            stored = raw.split(";")[0]
            if sixteen and stored in ("RGB", "RGBA"):
                # metadata_of reads PNG text that follows the pixels by loading them (as 8 bits)
                return Picture.from_array(_decode_16bit(data, im.format, im.size, name),
                                          metadata_of(im))
            if sixteen and not im.mode.startswith("I;16"):
                raise UnsupportedImage(f"{name}: 16-bit {stored} images are not supported "
                                       f"(nc codes 16 bits as I;16, RGB;16 or RGBA;16)")
            im.load()
            return Picture.from_pil(im)


def _decode_16bit(data: bytes, fmt: str, size: tuple[int, int], name: str):
    import imagecodecs
    import numpy as np

    a = np.asarray(imagecodecs.png_decode(data) if fmt == "PNG" else imagecodecs.tiff_decode(data))
    if a.dtype != np.uint16 or a.ndim != 3 or a.shape[:2] != (size[1], size[0]):
        raise UnsupportedImage(f"{name}: unexpected 16-bit layout {a.dtype} {a.shape}")
    return a


# -- writing ------------------------------------------------------------------
def _umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output(path: str | os.PathLike, force: bool = False) -> None:
    """Refuse an output that could not be written, before any work is done."""
    if is_stdio(path):
        return
    path = Path(path)
    if path.is_dir():
        raise NcError(f"{path} is a directory")
    if path.exists() and not force:
        raise NcError(f"{path} exists (use --force to overwrite)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise NcError(f"output folder {parent} does not exist")


def write_atomic(path: str | os.PathLike, write, force: bool = False) -> None:
    """Call ``write(tmp_path)``, then rename into ``path``; no partial file
    ever.  The file gets the mode a new file gets (0o666 less the umask)."""
    path = Path(path)
    check_output(path, force)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    except PermissionError:
        raise NcError(f"cannot write in {parent}: permission denied") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(path: str | os.PathLike, data: bytes, force: bool = False) -> None:
    """Put ``data`` into ``path`` atomically, or onto stdout for ``-``."""
    if is_stdio(path):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    write_atomic(path, lambda tmp: Path(tmp).write_bytes(data), force)


def image_format(path, format: str | None = None) -> tuple[str, str]:
    """The Pillow format to write and the suffix it goes with: ``format``
    (a format name like ``tiff`` or a suffix like ``pgm``) if given, else the
    suffix of ``path``; stdout gets PNG."""
    extensions = Image.registered_extensions()
    if format:
        token = format.lower().lstrip(".")
        if token.upper() in Image.SAVE:
            fmt = token.upper()
            return fmt, FORMAT_SUFFIX.get(fmt) or _first_suffix(fmt, extensions)
        fmt = extensions.get("." + token)
        if fmt in Image.SAVE:
            return fmt, "." + token
        raise NcError(f"unknown output format '{format}' (e.g. png, tiff, webp, ppm, pgm, bmp)")
    if is_stdio(path):
        return DEFAULT_FORMAT, FORMAT_SUFFIX[DEFAULT_FORMAT]
    suffix = Path(path).suffix.lower()
    fmt = extensions.get(suffix)
    if fmt is None or fmt not in Image.SAVE or fmt == "NC":
        raise NcError(f"cannot tell the image format from '{path}' (use e.g. .png or --format)")
    return fmt, suffix


def _first_suffix(fmt: str, extensions: dict) -> str:
    return next((ext for ext, f in extensions.items() if f == fmt), "." + fmt.lower())


def encode_picture_file(picture: Picture, format: str) -> bytes:
    """The bytes of ``picture`` as an image file in Pillow format ``format``,
    with the metadata that format can hold."""
    fmt = format.upper()
    allowed = FORMAT_MODES.get(fmt)
    if allowed is not None and picture.mode not in allowed:
        holds = f"it holds {', '.join(sorted(allowed))}; " if allowed else ""
        raise UnsupportedImage(f"{fmt} cannot hold a {picture.mode} image exactly "
                               f"({holds}use PNG or TIFF)")
    if picture.mode in SIXTEEN_BIT_COLOUR:
        if fmt == "PNG":
            return _png_16bit(picture)
        if fmt == "TIFF":
            return _tiff_16bit(picture)
        raise UnsupportedImage(f"{fmt} cannot hold 16-bit colour; use PNG or TIFF")
    buf = io.BytesIO()
    try:
        picture.to_pil().save(buf, format=fmt, **_metadata_options(fmt, picture.metadata))
    except (OSError, ValueError, KeyError) as e:
        raise UnsupportedImage(f"cannot write a {picture.mode} image as {fmt} "
                               f"({_one_line(e)})") from None
    return buf.getvalue()


def write_picture(picture: Picture, path_or_fileobj, format: str | None = None, *,
                  force: bool = False) -> None:
    """Write ``picture`` as an image file: to a file object, to stdout (``-``),
    or atomically to a path.  The format is ``format`` or the path's suffix."""
    if hasattr(path_or_fileobj, "write"):
        path_or_fileobj.write(encode_picture_file(picture, format or DEFAULT_FORMAT))
        return
    fmt, _ = image_format(path_or_fileobj, format)
    write_output(path_or_fileobj, encode_picture_file(picture, fmt), force)


def _metadata_options(fmt: str, meta: dict) -> dict:
    """Pillow save options that carry ``meta`` into format ``fmt``."""
    icc, exif, xmp = meta.get("icc_profile"), meta.get("exif"), meta.get("xmp")
    if fmt == "PNG":
        opts = {"pnginfo": _png_text(meta)}
    elif fmt == "TIFF":
        opts = {"compression": "tiff_adobe_deflate"}
        if exif or xmp:
            tags = Image.Exif()
            if exif:
                tags.load(exif)
            if xmp:
                tags[700] = xmp            # TIFF's XMP tag
            opts["tiffinfo"] = tags
    elif fmt == "WEBP":
        opts = {"lossless": True, "exact": True, "quality": 100}
        if xmp:
            opts["xmp"] = xmp
    elif fmt in ("PPM", "BMP"):
        return {}
    else:
        opts = {"xmp": xmp} if xmp else {}
    if icc:
        opts["icc_profile"] = icc
    if exif and fmt != "TIFF":
        opts["exif"] = exif
    return opts


def _png_text(meta: dict) -> PngImagePlugin.PngInfo:
    """PNG text chunks: the picture's text, and XMP once (PNG readers show it
    both as ``xmp`` and as the text chunk it lives in)."""
    info = PngImagePlugin.PngInfo()
    for key, value in meta.get("text", {}).items():
        if key == XMP_PNG_KEY and meta.get("xmp"):
            continue
        info.add_text(key, value)
    if meta.get("xmp"):
        info.add_itxt(XMP_PNG_KEY, meta["xmp"].decode("utf-8", "replace"))
    return info


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_16bit(picture: Picture) -> bytes:
    """16-bit colour PNG with imagecodecs, its metadata chunks put in after IHDR."""
    import imagecodecs

    png = bytes(imagecodecs.png_encode(picture.samples))
    meta = picture.metadata
    chunks = []
    if meta.get("icc_profile"):
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(meta["icc_profile"])))
    if meta.get("exif"):
        exif = meta["exif"]
        chunks.append(_png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
    chunks += [_png_chunk(kind, data) for kind, data, *_ in _png_text(meta).chunks]
    ihdr_end = 8 + 8 + 13 + 4      # signature, IHDR length+type, IHDR data, CRC
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def _tiff_16bit(picture: Picture) -> bytes:
    """16-bit colour TIFF with imagecodecs; it can carry the ICC profile only."""
    import imagecodecs

    extra = {"extrasample": 2} if picture.mode == "RGBA;16" else {}   # unassociated alpha
    return bytes(imagecodecs.tiff_encode(picture.samples, photometric="rgb",
                                         compression="deflate",
                                         iccprofile=picture.metadata.get("icc_profile"), **extra))


# -- whole files ----------------------------------------------------------------
def encode_file(src, dst, codec: str = api.DEFAULT_LOSSLESS, *, force: bool = False,
                model: str | None = None, quality: float | None = None,
                target_bpp: float | None = None, effort: int | None = None, jobs: int = 1,
                strip: bool = False) -> "api.EncodeResult":
    """Encode the image file ``src`` into the .nc file ``dst`` (``-``: stdin/stdout)."""
    check_output(dst, force)
    result = api.encode_image(read_picture(src), codec, model=model, quality=quality,
                              target_bpp=target_bpp, effort=effort, jobs=jobs, strip=strip)
    write_output(dst, result.data, force)
    return result


def decode_file(src, dst, *, force: bool = False, format: str | None = None,
                jobs: int = 1) -> Picture:
    """Decode the .nc file ``src`` into an image file ``dst`` (``-``: stdin/stdout),
    in the format ``format`` names or ``dst``'s suffix says."""
    fmt, _ = image_format(dst, format)      # refuse a bad name before decoding
    check_output(dst, force)
    picture = api.decode_picture(read_bytes(src), jobs=jobs)
    write_output(dst, encode_picture_file(picture, fmt), force)
    return picture
