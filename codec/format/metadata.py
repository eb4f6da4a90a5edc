"""The whole-image side segments: metadata (ICC, EXIF, XMP, text,
transparency) and the palette of mode P (docs/FORMAT.md §3.2).

Both are plain tagged records, no model involved: a lossless codec must
give back what it was given, and a colour profile is as much the image as
its pixels.  ``nc encode --strip`` leaves the metadata segment out.
"""
from __future__ import annotations

import struct

from codec.errors import FormatError

# metadata record tags
ICC, EXIF, XMP, TEXT, TRANSPARENCY = 1, 2, 3, 4, 5
_BYTES_TAGS = {ICC: "icc_profile", EXIF: "exif", XMP: "xmp"}
# transparency value kinds
_T_INDEX, _T_BYTES, _T_TUPLE = 1, 2, 3


def _record(tag: int, value: bytes) -> bytes:
    return struct.pack("<BI", tag, len(value)) + value


def _records(data: bytes):
    pos = 0
    while pos < len(data):
        if pos + 5 > len(data):
            raise FormatError("truncated metadata record")
        tag, n = struct.unpack_from("<BI", data, pos)
        pos += 5
        if pos + n > len(data):
            raise FormatError("truncated metadata record")
        yield tag, data[pos:pos + n]
        pos += n


def pack_metadata(metadata: dict, transparency=None) -> bytes:
    out = b""
    for tag, key in _BYTES_TAGS.items():
        if metadata.get(key):
            out += _record(tag, bytes(metadata[key]))
    for k, v in metadata.get("text", {}).items():
        out += _record(TEXT, k.encode("utf-8") + b"\0" + v.encode("utf-8"))
    if transparency is not None:
        out += _record(TRANSPARENCY, _pack_transparency(transparency))
    return out


def unpack_metadata(data: bytes) -> tuple[dict, object]:
    """(metadata dict as ``Picture.metadata``, transparency or None)."""
    meta, transparency = {}, None
    for tag, value in _records(data):
        if tag in _BYTES_TAGS:
            meta[_BYTES_TAGS[tag]] = value
        elif tag == TEXT:
            key, sep, text = value.partition(b"\0")
            if not sep:
                raise FormatError("text record without a keyword")
            try:
                meta.setdefault("text", {})[key.decode("utf-8")] = text.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError("text record is not UTF-8") from None
        elif tag == TRANSPARENCY:
            transparency = _unpack_transparency(value)
        else:
            raise FormatError(f"unknown metadata record {tag}")
    return meta, transparency


def _pack_transparency(t) -> bytes:
    if isinstance(t, (bytes, bytearray)):
        return bytes([_T_BYTES]) + bytes(t)
    if isinstance(t, tuple):
        return bytes([_T_TUPLE]) + struct.pack(f"<{len(t)}I", *t)
    return bytes([_T_INDEX]) + struct.pack("<I", int(t))


def _unpack_transparency(v: bytes):
    if not v:
        raise FormatError("empty transparency record")
    kind, body = v[0], v[1:]
    if kind == _T_BYTES:
        return bytes(body)
    if kind in (_T_TUPLE, _T_INDEX) and len(body) % 4 == 0 and body:
        values = struct.unpack(f"<{len(body) // 4}I", body)
        if kind == _T_INDEX and len(values) == 1:
            return values[0]
        if kind == _T_TUPLE:
            return tuple(values)
    raise FormatError("invalid transparency record")


def pack_palette(mode: str, entries: bytes) -> bytes:
    size = 4 if mode == "RGBA" else 3
    if len(entries) % size or len(entries) > 256 * size:
        raise FormatError(f"palette of {len(entries)} bytes is not whole {mode} entries")
    return bytes([size]) + entries


def unpack_palette(data: bytes) -> tuple[str, bytes]:
    if not data or data[0] not in (3, 4) or (len(data) - 1) % data[0] or len(data) - 1 > 256 * data[0]:
        raise FormatError("invalid palette segment")
    return ("RGBA" if data[0] == 4 else "RGB"), bytes(data[1:])
