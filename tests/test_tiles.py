"""Tiles: the grid, exact round trips across tile borders, the same bytes
on one core or several, damage confined to and named by its tile, and a
lossy synthesis that is the same with tiles as without."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import codec
from codec import api
from codec.format import container
from codec.format.tiles import TileGrid

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "sample.png"


@pytest.fixture(scope="module")
def sample() -> Image.Image:
    with Image.open(SAMPLE) as im:
        return im.convert("RGB").crop((0, 0, 200, 150))


def test_grid_covers_the_image_once_in_raster_order():
    grid = TileGrid.for_image(2500, 1100)
    assert (grid.columns, grid.rows, len(grid)) == (3, 2, 6)
    cover = np.zeros((1100, 2500), int)
    for i, t in enumerate(grid):
        assert t.index == i
        cover[t.y:t.y + t.height, t.x:t.x + t.width] += 1
    assert (cover == 1).all()
    assert len(TileGrid.for_image(1024, 1024)) == 1 and TileGrid.for_image(1024, 1024).tile_width == 0


@pytest.mark.parametrize("name", ["arm", "idf"])
def test_tiled_lossless_is_exact_and_the_same_bytes_on_any_number_of_jobs(sample, name):
    one = api.encode_image(sample, name, tile_size=64, jobs=1)
    two = api.encode_image(sample, name, tile_size=64, jobs=2)
    assert one.data == two.data
    facts = codec.info(one.data)
    assert facts["tiles"] == 12 and facts["tile_size"] == [64, 64]
    for jobs in (1, 2):
        assert np.array_equal(np.asarray(codec.decode(one.data, jobs=jobs)), np.asarray(sample))


def _recrc(data: bytearray) -> bytes:
    """Recompute every CRC of a version 2 file (what a corruption that
    slipped past them would look like)."""
    import struct
    import zlib

    n = struct.unpack_from("<H", data, 56)[0]
    table_end = 64 + 8 * n
    data[60:64] = struct.pack("<I", zlib.crc32(bytes(data[:60])))
    data[table_end:table_end + 4] = struct.pack("<I", zlib.crc32(bytes(data[64:table_end])))
    crc = zlib.crc32(bytes(data[table_end + 4:-4]), zlib.crc32(bytes(data[64:table_end]),
                                                                 zlib.crc32(bytes(data[:60]))))
    data[-4:] = struct.pack("<I", crc)
    return bytes(data)


def _segment_offset(data: bytes, tile: int, kind) -> int:
    c = container.unpack(data)
    pos = 64 + 8 * len(c.segments) + 4
    for s in c.segments:
        if s.tile == tile and s.kind == kind:
            return pos
        pos += len(s.data)
    raise AssertionError("no such segment")


@pytest.mark.parametrize("kind", [container.SegmentKind.COLOUR, container.SegmentKind.DIGEST])
def test_damage_that_passes_the_crcs_is_caught_by_the_tile_check_and_names_the_tile(sample, kind):
    data = bytearray(api.encode_image(sample, "arm", tile_size=64).data)
    pos = _segment_offset(bytes(data), 5, kind)
    data[pos + 6] ^= 0x10
    with pytest.raises(codec.FormatError, match="tile 5 .x 64..127, y 64..127."):
        codec.decode(_recrc(data))


def test_an_edited_header_with_every_crc_recomputed_is_caught_by_the_check_values(sample):
    import struct

    data = bytearray(api.encode_image(sample.crop((0, 0, 48, 40)), "arm").data)
    data[12:16] = struct.pack("<I", 47)          # width 48 -> 47, as in the issue
    with pytest.raises(codec.FormatError, match="check value|corrupt"):
        codec.decode(_recrc(data))


@pytest.mark.parametrize("quality", [1.5, 6.0])
def test_lossy_tiles_decode_to_exactly_the_untiled_image(sample, quality):
    """The latents are coded over the whole map whatever the tiles (only the
    streams are split), so a tiled file decodes to the same pixels as one
    tile: no seam can show at a border."""
    # effort 3: the post-filter considered, no refinement (which tiles do not touch)
    tiled = api.encode_image(sample, quality=quality, tile_size=64, effort=3)
    whole = api.encode_image(sample, quality=quality, effort=3)
    assert codec.info(tiled.data)["tiles"] == 12 and codec.info(whole.data)["tiles"] == 1
    a = np.asarray(codec.decode(tiled.data, jobs=1))
    assert np.array_equal(a, np.asarray(codec.decode(whole.data, jobs=1)))
    # float32 synthesis: other thread counts may move a pixel by one level, never more
    b = np.asarray(codec.decode(tiled.data, jobs=2)).astype(int)
    assert np.abs(a.astype(int) - b).max() <= 1
    assert len(tiled.data) - len(whole.data) <= 30 * 12    # per tile: entries, digest, a stream end


def test_damage_in_a_lossy_tile_is_named(sample):
    data = bytearray(api.encode_image(sample, quality=4, tile_size=64, effort=1).data)
    pos = _segment_offset(bytes(data), 7, container.SegmentKind.LATENT)
    data[pos + 2] ^= 0x40
    # later slices of the neighbours read its latents: they fail too, and are named with it
    with pytest.raises(codec.FormatError, match=r"^tile \d+ .*(and \d+ more tiles)?"):
        codec.decode(_recrc(data))


def test_a_tile_size_that_is_not_a_multiple_of_64_is_refused(sample):
    with pytest.raises(codec.NcError, match="multiple of 64"):
        api.encode_image(sample, tile_size=100)


def test_lossy_bytes_do_not_depend_on_the_blocks_the_entropy_networks_run_in(sample, monkeypatch):
    """Means and scales (and the hyper features) are computed in windows
    that hold the networks' receptive fields, so any block size gives the
    same integers, hence the same bytes, as one pass over the whole map."""
    from codec.pipeline import lossy

    # effort 3: refinement (efforts 5 and up) runs before the blocks and does not see them
    whole = api.encode_image(sample, quality=3, tile_size=64, effort=3).data
    monkeypatch.setattr(lossy, "NET_BLOCK", 4)
    assert api.encode_image(sample, quality=3, tile_size=64, effort=3).data == whole
    monkeypatch.setattr(lossy, "NET_BLOCK", 3)
    assert np.array_equal(np.asarray(codec.decode(whole, jobs=1)),
                          np.asarray(codec.decode(api.encode_image(sample, quality=3, effort=3).data,
                                                  jobs=1)))
