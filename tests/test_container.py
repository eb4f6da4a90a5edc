"""The .nc container: round trip and every refusal, before any decoding."""
import struct
import zlib

import pytest

from codec import container
from codec.container import Codec, Container, FormatError, Header, Mode, Segment, SegmentKind


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
    (lambda d: d[:-6] + bytes([d[-6] ^ 1]) + d[-5:], "payload"),
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
