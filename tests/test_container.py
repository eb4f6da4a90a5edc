"""The .nc container: round trip and every refusal, before any decoding."""
import struct
import zlib

import pytest

from codec.format import container
from codec.format.container import (
    Codec,
    Container,
    FormatError,
    Header,
    Mode,
    Segment,
    SegmentKind,
)


def make(width=5, height=3, segments=None) -> bytes:
    h = Header(Codec.ARM, Mode.RGB, width, height, "arm-test", b"\x01" * 8)
    segs = segments if segments is not None else [Segment(SegmentKind.COLOUR, b"abcd" * 3)]
    return container.pack(Container(h, segs))


def test_round_trip_keeps_every_field():
    data = make(segments=[Segment(SegmentKind.COLOUR, b"x" * 8), Segment(SegmentKind.ALPHA, b"y" * 4)])
    c = container.unpack(data)
    h = c.header
    assert (h.codec, h.mode, h.width, h.height, h.model_id) == (Codec.ARM, Mode.RGB, 5, 3, "arm-test")
    assert h.weights_digest == b"\x01" * 8
    assert c.segment(SegmentKind.COLOUR) == b"x" * 8
    assert c.segment(SegmentKind.ALPHA) == b"y" * 4


def test_header_is_64_bytes_and_starts_with_magic():
    data = make()
    assert data[:8] == container.MAGIC
    assert struct.unpack_from("<I", data, 60)[0] == zlib.crc32(data[:60])


def _rehash_header(data: bytearray) -> bytes:
    data[60:64] = struct.pack("<I", zlib.crc32(bytes(data[:60])))
    return bytes(data)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"\x89PNG\r\n\x1a\n" + d[8:], "bad magic"),
    (lambda d: d[:30], "truncated"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"\0", "trailing"),
    (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "header"),
    (lambda d: d[:-6] + bytes([d[-6] ^ 1]) + d[-5:], "corrupt file"),
    # an edited width whose header CRC was recomputed: the file CRC covers the header too
    (lambda d: _rehash_header(bytearray(d[:12]) + struct.pack("<I", 4) + d[16:]), "corrupt file"),
    (lambda d: _rehash_header(bytearray(d[:10]) + bytes([1]) + d[11:]), "corrupt file"),
    (lambda d: _rehash_header(bytearray(d[:8]) + bytes([9]) + d[9:]), "version 9"),
    (lambda d: _rehash_header(bytearray(d[:9]) + bytes([77]) + d[10:]), "codec id 77"),
    (lambda d: _rehash_header(bytearray(d[:12]) + struct.pack("<I", 0) + d[16:]), "size"),
    (lambda d: _rehash_header(bytearray(d[:12]) + struct.pack("<II", 60000, 60000) + d[20:]), "limit"),
    (lambda d: b"", "bad magic"),
])
def test_refusals(mutate, message):
    with pytest.raises(FormatError, match=message):
        container.unpack(mutate(make()))


def test_error_messages_are_one_line():
    for bad in (b"", b"junk", make()[:40]):
        with pytest.raises(FormatError) as e:
            container.unpack(bad)
        assert "\n" not in str(e.value)


def test_pack_refuses_impossible_dimensions():
    with pytest.raises(FormatError):
        make(width=0)


def _rehash_table(data: bytearray, nseg: int) -> bytes:
    end = 64 + 8 * nseg
    data[end:end + 4] = struct.pack("<I", zlib.crc32(bytes(data[64:end])))
    return bytes(data)


def test_segment_length_games_with_a_recomputed_table_crc_are_refused():
    data = bytearray(make(segments=[Segment(SegmentKind.COLOUR, b"x" * 8),
                                    Segment(SegmentKind.ALPHA, b"y" * 4)]))
    data[64 + 4:64 + 8] = struct.pack("<I", 4)     # colour 8 -> 4 bytes, alpha 4 -> 8
    data[72 + 4:72 + 8] = struct.pack("<I", 8)
    with pytest.raises(FormatError, match="corrupt file"):
        container.unpack(_rehash_table(data, 2))


def test_version_1_files_are_still_read_and_their_crc_covers_the_payload_only():
    h = Header(Codec.ARM, Mode.RGB, 5, 3, "arm-test", b"\x01" * 8, version=1)
    data = container.pack(Container(h, [Segment(SegmentKind.COLOUR, b"abcd")]))
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(b"abcd")
    assert container.unpack(data).header.version == 1


def test_version_2_fields_round_trip():
    h = Header(Codec.ARM, Mode.RGBA16, 3000, 20, "arm-test", b"\x01" * 8, bit_depth=16,
               tile_width=1024, tile_height=1024, effort=9)
    segs = [Segment(SegmentKind.COLOUR, b"ab", tile=2, method=container.Method.DEFLATE_UP)]
    c = container.unpack(container.pack(Container(h, segs)))
    assert (c.header.mode, c.header.bit_depth, c.header.tile_width, c.header.effort) == \
        (Mode.RGBA16, 16, 1024, 9)
    assert (c.segments[0].tile, c.segments[0].method) == (2, container.Method.DEFLATE_UP)


def test_a_bit_depth_that_does_not_match_the_mode_is_refused():
    data = bytearray(make())
    data[11] = 16
    with pytest.raises(FormatError, match="bit depth"):
        container.unpack(_rehash_header(data))
