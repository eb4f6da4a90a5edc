"""The .nc container: framing, lengths and checksums (spec: docs/FORMAT.md).

This module knows nothing about pixels or models; it packs a header and a
list of coded segments, and refuses anything malformed *before* a decoder
allocates memory or runs a model.

Layout (all integers little-endian)::

    header  (HEADER_SIZE = 64 bytes)
      0  magic            8  b"\\x89NC\\r\\n\\x1a\\n\\x00"[:8]
      8  version          u8
      9  codec            u8   (Codec)
     10  mode             u8   (Mode)
     11  bit_depth        u8   (8)
     12  width            u32
     16  height           u32
     20  tile_width       u32  (0 = one tile: the whole image)
     24  tile_height      u32
     28  model_id         16 bytes ASCII, NUL-padded
     44  weights_digest   8 bytes (SHA-256 prefix of the weights file)
     52  codec_param      u32  (codec-specific, e.g. lossy quality * 1000)
     56  segment_count    u16
     58  reserved         u16  (0)
     60  header_crc32     u32  (CRC-32 of bytes 0..59)
    segment table: segment_count x (kind u8, reserved u8[3], length u32)
    table_crc32    u32
    payload: the segments' bytes, in table order
    payload_crc32  u32  (CRC-32 of the payload)
"""
from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass, field

from .errors import FormatError

MAGIC = b"\x89NC\r\n\x1a\n\x00"[:8]
FORMAT_VERSION = 1
HEADER_SIZE = 64
MAX_DIMENSION = 1 << 16           # width and height each at most 65536
MAX_PIXELS = 1 << 26              # 67 megapixels
MAX_SEGMENTS = 4096
_HEADER = struct.Struct("<8sBBBBIIII16s8sIHH")
_SEGMENT = struct.Struct("<B3xI")
assert _HEADER.size + 4 == HEADER_SIZE


class Codec(enum.IntEnum):
    ARM = 1      # lossless, pixel autoregressive model
    IDF = 2      # lossless, integer discrete flow
    LOSSY = 3    # quantizing autoencoder


class Mode(enum.IntEnum):
    """Image modes, as Pillow names them."""

    L = 1
    LA = 2
    RGB = 3
    RGBA = 4
    BILEVEL = 5  # Pillow "1"

    @property
    def pil(self) -> str:
        return "1" if self is Mode.BILEVEL else self.name


class SegmentKind(enum.IntEnum):
    COLOUR = 1   # the colour or grey planes
    ALPHA = 2    # the alpha plane, always lossless
    LATENT = 3   # lossy: quantized latents
    SIDE = 4     # lossy: side information (hyper-latents)


@dataclass
class Header:
    codec: Codec
    mode: Mode
    width: int
    height: int
    model_id: str
    weights_digest: bytes
    codec_param: int = 0
    bit_depth: int = 8
    tile_width: int = 0
    tile_height: int = 0
    version: int = FORMAT_VERSION
    segment_count: int = 0  # filled in when parsed


@dataclass
class Segment:
    kind: SegmentKind
    data: bytes


@dataclass
class Container:
    header: Header
    segments: list[Segment] = field(default_factory=list)

    def segment(self, kind: SegmentKind) -> bytes:
        for s in self.segments:
            if s.kind == kind:
                return s.data
        raise FormatError(f"file has no {kind.name.lower()} segment")


def check_dimensions(width: int, height: int) -> None:
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise FormatError(f"image size {width}x{height} is outside 1..{MAX_DIMENSION} per side")
    if width * height > MAX_PIXELS:
        raise FormatError(f"image of {width * height} pixels exceeds the limit of {MAX_PIXELS}")


def pack(c: Container) -> bytes:
    h = c.header
    check_dimensions(h.width, h.height)
    model_id = h.model_id.encode("ascii")
    if len(model_id) > 16 or len(h.weights_digest) != 8:
        raise ValueError("model id longer than 16 bytes or digest not 8 bytes")
    head = _HEADER.pack(MAGIC, h.version, int(h.codec), int(h.mode), h.bit_depth, h.width,
                        h.height, h.tile_width, h.tile_height, model_id.ljust(16, b"\0"),
                        h.weights_digest, h.codec_param, len(c.segments), 0)
    head += struct.pack("<I", zlib.crc32(head))
    table = b"".join(_SEGMENT.pack(int(s.kind), len(s.data)) for s in c.segments)
    table += struct.pack("<I", zlib.crc32(table))
    payload = b"".join(s.data for s in c.segments)
    return head + table + payload + struct.pack("<I", zlib.crc32(payload))


def unpack_header(data: bytes) -> Header:
    """Parse and validate the fixed header only (enough for ``nc info``)."""
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise FormatError("not an .nc file (bad magic bytes)")
    if len(data) < HEADER_SIZE:
        raise FormatError("truncated file (incomplete header)")
    fields = _HEADER.unpack_from(data)
    (_, version, codec, mode, depth, width, height, tw, th, model_id, digest, param,
     nseg, _reserved) = fields
    (crc,) = struct.unpack_from("<I", data, _HEADER.size)
    if zlib.crc32(data[:_HEADER.size]) != crc:
        raise FormatError("corrupt header (CRC mismatch)")
    if version != FORMAT_VERSION:
        raise FormatError(f"unsupported format version {version} (this nc reads {FORMAT_VERSION})")
    try:
        codec, mode = Codec(codec), Mode(mode)
    except ValueError:
        raise FormatError(f"unknown codec id {codec} or mode id {mode}") from None
    if depth != 8:
        raise FormatError(f"unsupported bit depth {depth}")
    check_dimensions(width, height)
    if nseg > MAX_SEGMENTS:
        raise FormatError(f"too many segments ({nseg})")
    try:
        mid = model_id.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("model id is not ASCII") from None
    return Header(codec, mode, width, height, mid, digest, param, depth, tw, th, version, nseg)


def unpack(data: bytes) -> Container:
    h = unpack_header(data)
    nseg = h.segment_count
    pos = HEADER_SIZE
    table_end = pos + nseg * _SEGMENT.size
    if len(data) < table_end + 4:
        raise FormatError("truncated file (incomplete segment table)")
    (crc,) = struct.unpack_from("<I", data, table_end)
    if zlib.crc32(data[pos:table_end]) != crc:
        raise FormatError("corrupt segment table (CRC mismatch)")
    kinds_lengths = [_SEGMENT.unpack_from(data, pos + i * _SEGMENT.size) for i in range(nseg)]
    payload_start = table_end + 4
    total = sum(n for _, n in kinds_lengths)
    if len(data) < payload_start + total + 4:
        raise FormatError(f"truncated file ({len(data)} bytes, header says "
                          f"{payload_start + total + 4})")
    if len(data) > payload_start + total + 4:
        raise FormatError("trailing bytes after the payload")
    payload = data[payload_start:payload_start + total]
    (crc,) = struct.unpack_from("<I", data, payload_start + total)
    if zlib.crc32(payload) != crc:
        raise FormatError("corrupt payload (CRC mismatch)")
    segments, off = [], 0
    for kind, n in kinds_lengths:
        try:
            kind = SegmentKind(kind)
        except ValueError:
            raise FormatError(f"unknown segment kind {kind}") from None
        segments.append(Segment(kind, payload[off:off + n]))
        off += n
    return Container(h, segments)
