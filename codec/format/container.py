"""The .nc container: framing, lengths and checksums (spec: docs/FORMAT.md).

This module knows nothing about pixels or models; it packs a header and a
list of coded segments, and refuses anything malformed *before* a decoder
allocates memory or runs a model.

Layout (all integers little-endian)::

    header  (HEADER_SIZE = 64 bytes)
      0  magic            8  b"\\x89NC\\r\\n\\x1a\\n\\x00"[:8]
      8  version          u8   (2; 1 is still read)
      9  codec            u8   (Codec)
     10  mode             u8   (Mode)
     11  bit_depth        u8   (8, or 16 for the 16-bit modes)
     12  width            u32
     16  height           u32
     20  tile_width       u32  (0 = one tile: the whole image)
     24  tile_height      u32
     28  model_id         16 bytes ASCII, NUL-padded
     44  weights_digest   8 bytes (SHA-256 prefix of the weights file)
     52  codec_param      u32  (codec-specific, e.g. lossy quality * 1000)
     56  segment_count    u16
     58  effort           u8   (the encoder's effort, 1..9; 0 = not recorded)
     59  reserved         u8   (0)
     60  header_crc32     u32  (CRC-32 of bytes 0..59)
    segment table: segment_count x (kind u8, method u8, tile u16, length u32)
    table_crc32    u32
    payload: the segments' bytes, in table order
    file_crc32     u32  (version 2: CRC-32 of header bytes 0..59, the table
                         entries and the payload; version 1: of the payload only)

The last CRC covering the header and the table too is what ties them to the
payload: an edited header whose own CRC was recomputed is still refused.
"""
from __future__ import annotations

import enum
import re
import struct
import zlib
from dataclasses import dataclass, field

from codec.errors import FormatError

MAGIC = b"\x89NC\r\n\x1a\n\x00"[:8]
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
HEADER_SIZE = 64
MAX_DIMENSION = 1 << 16           # width and height each at most 65536
MAX_PIXELS = 1 << 26              # 67 megapixels
MAX_SEGMENTS = 4096
_MODEL_ID = re.compile(rb"[A-Za-z0-9._-]{1,16}")
_HEADER = struct.Struct("<8sBBBBIIII16s8sIHBB")
_SEGMENT = struct.Struct("<BBHI")
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
    P = 6        # palette indices (version 2)
    I16 = 7      # 16-bit grey, Pillow "I;16" (version 2)
    RGB16 = 8    # 16-bit RGB (version 2)
    RGBA16 = 9   # 16-bit RGBA (version 2)

    @property
    def pil(self) -> str:
        """The mode's name as Pillow (or ``codec.picture``) spells it."""
        return _MODE_NAMES.get(self, self.name)

    @classmethod
    def from_name(cls, name: str) -> "Mode":
        return {v: k for k, v in _MODE_NAMES.items()}.get(name) or cls[name]

    @property
    def bit_depth(self) -> int:
        return 16 if self in (Mode.I16, Mode.RGB16, Mode.RGBA16) else 8

    @property
    def has_alpha(self) -> bool:
        return self in (Mode.LA, Mode.RGBA, Mode.RGBA16)

    @property
    def colour_channels(self) -> int:
        return 3 if self in (Mode.RGB, Mode.RGBA, Mode.RGB16, Mode.RGBA16) else 1


_MODE_NAMES = {Mode.BILEVEL: "1", Mode.I16: "I;16", Mode.RGB16: "RGB;16",
               Mode.RGBA16: "RGBA;16"}


class SegmentKind(enum.IntEnum):
    COLOUR = 1   # the colour or grey planes
    ALPHA = 2    # the alpha plane, always lossless
    LATENT = 3   # lossy: quantized latents
    SIDE = 4     # lossy: side information (hyper-latents)
    COLOUR_LOW = 5  # 16-bit modes: the low bytes of the colour samples
    ALPHA_LOW = 6   # 16-bit modes: the low bytes of the alpha samples
    PALETTE = 7     # mode P: the palette and its transparency (whole image)
    METADATA = 8    # ICC profile, EXIF, XMP, text (whole image)
    DIGEST = 9      # a tile's check value, compared before anything is written
    FILTER = 10     # lossy: the post-filter fitted to this image (whole image; nc 0.14)


class Method(enum.IntEnum):
    """How a segment's samples are coded (version 2; version 1 has only MODEL)."""

    MODEL = 0          # the header's codec
    DEFLATE = 1        # zlib, samples as they are  (codec/pipeline/fallback.py)
    DEFLATE_SUB = 2    # zlib, each sample minus its left neighbour
    DEFLATE_UP = 3     # zlib, each sample minus the one above


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
    effort: int = 0
    segment_count: int = 0  # filled in when parsed

    def pack(self, segment_count: int) -> bytes:
        """The 64 header bytes, CRC included."""
        check_dimensions(self.width, self.height)
        model_id = self.model_id.encode("ascii")
        if len(model_id) > 16 or len(self.weights_digest) != 8:
            raise ValueError("model id longer than 16 bytes or digest not 8 bytes")
        head = _HEADER.pack(MAGIC, self.version, int(self.codec), int(self.mode), self.bit_depth,
                            self.width, self.height, self.tile_width, self.tile_height,
                            model_id.ljust(16, b"\0"), self.weights_digest, self.codec_param,
                            segment_count, self.effort, 0)
        return head + struct.pack("<I", zlib.crc32(head))


@dataclass
class Segment:
    kind: SegmentKind
    data: bytes
    tile: int = 0                  # which tile (raster order); 0 for whole-image segments
    method: Method = Method.MODEL


@dataclass
class Container:
    header: Header
    segments: list[Segment] = field(default_factory=list)

    def segment(self, kind: SegmentKind, tile: int = 0) -> bytes:
        return self.find(kind, tile).data

    def find(self, kind: SegmentKind, tile: int = 0) -> Segment:
        for s in self.segments:
            if s.kind == kind and s.tile == tile:
                return s
        where = f" for tile {tile}" if tile else ""
        raise FormatError(f"file has no {kind.name.lower()} segment{where}")

    def optional(self, kind: SegmentKind, tile: int = 0) -> Segment | None:
        for s in self.segments:
            if s.kind == kind and s.tile == tile:
                return s
        return None


def check_dimensions(width: int, height: int) -> None:
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise FormatError(f"image size {width}x{height} is outside 1..{MAX_DIMENSION} per side")
    if width * height > MAX_PIXELS:
        raise FormatError(f"image of {width * height} pixels exceeds the limit of {MAX_PIXELS}")


def pack(c: Container) -> bytes:
    if len(c.segments) > MAX_SEGMENTS:
        raise FormatError(f"too many segments ({len(c.segments)}; at most {MAX_SEGMENTS})")
    head = c.header.pack(len(c.segments))
    table = b"".join(_SEGMENT.pack(int(s.kind), int(s.method), s.tile, len(s.data))
                     for s in c.segments)
    payload = b"".join(s.data for s in c.segments)
    crc = (_file_crc(head, table, payload) if c.header.version >= 2 else zlib.crc32(payload))
    return head + table + struct.pack("<I", zlib.crc32(table)) + payload + struct.pack("<I", crc)


def _file_crc(head: bytes, table: bytes, payload: bytes) -> int:
    """Version 2's last CRC: header bytes 0..59, the table entries and the
    payload, leaving out the two CRCs between them (a message followed by
    its own CRC-32 has the same CRC whatever the message, so including
    them would let an edited header through)."""
    return zlib.crc32(payload, zlib.crc32(table, zlib.crc32(head[:60])))


def unpack_header(data: bytes) -> Header:
    """Parse and validate the fixed header only (enough for ``nc info``)."""
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise FormatError("not an .nc file (bad magic bytes)")
    if len(data) < HEADER_SIZE:
        raise FormatError("truncated file (incomplete header)")
    fields = _HEADER.unpack_from(data)
    (_, version, codec, mode, depth, width, height, tw, th, model_id, digest, param,
     nseg, effort, _reserved) = fields
    (crc,) = struct.unpack_from("<I", data, _HEADER.size)
    if zlib.crc32(data[:_HEADER.size]) != crc:
        raise FormatError("corrupt header (CRC mismatch)")
    if version not in READABLE_VERSIONS:
        raise FormatError(f"unsupported format version {version} (this nc reads "
                          f"{', '.join(map(str, READABLE_VERSIONS))})")
    try:
        codec, mode = Codec(codec), Mode(mode)
    except ValueError:
        raise FormatError(f"unknown codec id {codec} or mode id {mode}") from None
    if version == 1 and (mode > Mode.BILEVEL or effort or _reserved):
        raise FormatError(f"mode id {int(mode)} or a reserved field in a version 1 file")
    if depth != mode.bit_depth:
        raise FormatError(f"bit depth {depth} does not match mode {mode.pil}")
    if _reserved or effort > 9:
        raise FormatError("reserved header field is not zero or effort above 9")
    check_dimensions(width, height)
    if version == 1 and (tw or th):
        raise FormatError("tiles in a version 1 file")
    if (tw == 0) != (th == 0) or (tw and (tw % 64 or th % 64)):
        raise FormatError(f"invalid tile size {tw}x{th}")
    if nseg > MAX_SEGMENTS:
        raise FormatError(f"too many segments ({nseg})")
    mid = model_id.rstrip(b"\0")
    if not _MODEL_ID.fullmatch(mid):
        raise FormatError("model id is not a name of letters, digits, '.', '_' and '-'")
    mid = mid.decode("ascii")
    return Header(codec, mode, width, height, mid, digest, param, depth, tw, th, version, effort, nseg)


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
    total = sum(entry[-1] for entry in kinds_lengths)
    if len(data) < payload_start + total + 4:
        raise FormatError(f"truncated file ({len(data)} bytes, header says "
                          f"{payload_start + total + 4})")
    if len(data) > payload_start + total + 4:
        raise FormatError("trailing bytes after the payload")
    payload = data[payload_start:payload_start + total]
    (crc,) = struct.unpack_from("<I", data, payload_start + total)
    expected = (_file_crc(data[:HEADER_SIZE], data[HEADER_SIZE:table_end], payload)
                if h.version >= 2 else zlib.crc32(payload))
    if expected != crc:
        raise FormatError("corrupt file (CRC mismatch)" if h.version >= 2
                          else "corrupt payload (CRC mismatch)")
    segments, off = [], 0
    for kind, method, tile, n in kinds_lengths:
        try:
            kind, method = SegmentKind(kind), Method(method)
        except ValueError:
            raise FormatError(f"unknown segment kind {kind} or method {method}") from None
        if h.version == 1 and (method or tile or kind > SegmentKind.SIDE):
            raise FormatError("segment fields of version 2 in a version 1 file")
        segments.append(Segment(kind, payload[off:off + n], tile, method))
        off += n
    return Container(h, segments)
