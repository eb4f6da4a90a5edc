"""Whole images <-> containers: the header, the whole-image segments, the
tiles (on all cores) and their check values.

    Picture --> header, METADATA, PALETTE --> per tile (parallel.map_tiles):
        lossless.encode_tile + DIGEST --> container.pack

Decoding mirrors it and compares every tile's check value (``codec/format/digest.py``)
before it returns anything, so what comes back is either the image that
was encoded or an error naming the tile.  Lossy images go through
``lossy_image.py``, imported only for them: it brings PyTorch, whose import
alone costs a lossless decode process about 1.4 s here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codec import weights
from codec.errors import FormatError, NcError
from codec.format import container as container_format
from codec.format import metadata
from codec.format.container import Codec, Container, Header, Mode, Segment, SegmentKind
from codec.format.digest import tile_digest
from codec.format.tiles import TILE_SIZE, Tile, TileGrid
from codec.picture import Picture
from codec.pipeline import lossless
from codec.pipeline.parallel import map_tiles


@dataclass
class Encoded:
    container: Container
    ideal_bits: float   # the model's code length, -sum log2 p (lossless; 0 for lossy)


def side_segments(pic: Picture, strip: bool) -> list[Segment]:
    segments = []
    meta = {} if strip else pic.metadata
    if meta or pic.transparency is not None:
        segments.append(Segment(SegmentKind.METADATA, metadata.pack_metadata(meta, pic.transparency)))
    if pic.mode == "P":
        segments.append(Segment(SegmentKind.PALETTE,
                                metadata.pack_palette(pic.palette_mode, pic.palette or b"")))
    return segments


# -- lossless -------------------------------------------------------------------
def encode_lossless(pic: Picture, codec: Codec, model_ids: list[str], *, effort: int = 0,
                    jobs: int | None = 1, strip: bool = False,
                    tile_size: int | None = None) -> Encoded:
    """The image coded with the model ``lossless.models_to_try`` names or,
    where it names two (at effort 7, the default model fitted to the image
    and the one the estimate picked, as shipped), the smaller of the two
    files.  They run in turn: only one of them fits, on every core (side
    by side, one PyTorch thread each, took 40 s a 768x512 photograph
    against 35 s)."""
    mode = Mode.from_name(pic.mode)
    grid = TileGrid.for_image(pic.width, pic.height, tile_size or TILE_SIZE)
    colour = lossless.plane_groups(mode)[0].take(pic.samples)
    encoded = [_encode_lossless_with(pic, codec, model_id, mode, grid, effort, coding_effort, jobs,
                                     strip)
               for model_id, coding_effort in lossless.models_to_try(colour, codec, model_ids, effort)]
    if len(encoded) == 1:
        return encoded[0]
    return min(encoded, key=lambda e: len(container_format.pack(e.container)))


def _encode_lossless_with(pic: Picture, codec: Codec, model_id: str, mode: Mode, grid: TileGrid,
                          effort: int, coding_effort: int, jobs, strip: bool) -> Encoded:
    """The image coded with ``model_id`` at ``coding_effort``, its header
    saying ``effort`` (what the user asked for)."""
    pc = lossless.plane_codec(codec, model_id)
    header = Header(codec, mode, pic.width, pic.height, model_id, weights.digest(model_id),
                    codec_param=pc.codec_param, bit_depth=mode.bit_depth,
                    tile_width=grid.tile_width, tile_height=grid.tile_height, effort=effort)
    side = side_segments(pic, strip)
    head = header.pack(len(side) + len(grid) * (len(lossless.plane_groups(mode)) + 1))
    tasks = [(codec, model_id, mode, np.ascontiguousarray(t.crop(pic.samples)), t.index, head,
              coding_effort) for t in grid]
    segments, ideal = list(side), 0.0
    for tile_segments, bits in map_tiles(_encode_lossless_tile, tasks, jobs):
        segments += tile_segments
        ideal += bits
    return Encoded(Container(header, segments), ideal)


def _encode_lossless_tile(codec, model_id, mode, samples, index, head, effort):
    segments, bits = lossless.encode_tile(codec, model_id, mode, samples, index, effort=effort)
    digest = tile_digest(head, index, samples)
    return segments + [Segment(SegmentKind.DIGEST, digest, index)], bits


def tile_error(tile: Tile, e: Exception) -> Exception:
    """The one-line error a tile's failure becomes: the codec's own errors
    name the tile; running out of memory stays MemoryError; any other
    exception from a dependency (constriction, PyTorch, NumPy) on bad data
    is a corrupt file."""
    if isinstance(e, NcError):
        return type(e)(f"{tile}: {e}")
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and "alloc" in str(e)):
        return MemoryError(f"{tile}: out of memory")
    return FormatError(f"{tile}: corrupt data ({type(e).__name__})")


def _decode_lossless_tile(codec, model_id, mode, segments, tile: Tile, codec_param, head):
    try:
        samples = lossless.decode_tile(codec, model_id, mode, segments, tile.height, tile.width,
                                       codec_param)
    except Exception as e:
        raise tile_error(tile, e) from None
    verify(head, tile, segments, samples)
    return samples


# -- decode -----------------------------------------------------------------------
def verify(head: bytes | None, tile: Tile, segments: dict, *arrays) -> None:
    if head is None:          # version 1 files carry no check values
        return
    if SegmentKind.DIGEST not in segments:
        raise FormatError(f"{tile}: missing check value")
    if segments[SegmentKind.DIGEST].data != tile_digest(head, tile.index, *arrays):
        raise FormatError(f"{tile}: decoded data does not match the encoder's check value "
                          f"(corrupt file, or a decoder that disagrees with the encoder)")


def _tile_segments(c: Container, grid: TileGrid) -> list[dict]:
    """Each tile's segments by kind; refuses kinds the codec and mode do
    not have, a segment twice, and tiles the image does not have."""
    h = c.header
    whole = {SegmentKind.METADATA}
    if h.mode is Mode.P:
        whole.add(SegmentKind.PALETTE)
    if h.codec is Codec.LOSSY:
        whole |= {SegmentKind.SIDE, SegmentKind.FILTER}
        per = {SegmentKind.LATENT, SegmentKind.DIGEST} | ({SegmentKind.ALPHA} if h.mode.has_alpha
                                                            else set())
    else:
        per = {g.kind for g in lossless.plane_groups(h.mode)} | {SegmentKind.DIGEST}
    seen, per_tile = set(), [{} for _ in range(len(grid))]
    for s in c.segments:
        if s.kind in whole:
            if s.tile or s.kind in seen:
                raise FormatError(f"misplaced {s.kind.name.lower()} segment")
            seen.add(s.kind)
            continue
        if s.kind not in per:
            raise FormatError(f"a {s.kind.name.lower()} segment does not belong in a "
                              f"{h.codec.name.lower()} {h.mode.pil} file")
        if s.tile >= len(grid):
            raise FormatError(f"segment for tile {s.tile}, but the image has {len(grid)} tiles")
        if s.kind in per_tile[s.tile]:
            raise FormatError(f"two {s.kind.name.lower()} segments for tile {s.tile}")
        per_tile[s.tile][s.kind] = s
    return per_tile


def decode_container(c: Container, data: bytes, *, jobs: int | None = 1) -> Picture:
    """The picture of a parsed container (``data``: the file's bytes, whose
    header the check values cover)."""
    h = c.header
    grid = TileGrid(h.width, h.height, h.tile_width, h.tile_height)
    head = data[:64] if h.version >= 2 else None
    per_tile = _tile_segments(c, grid)
    if h.codec is Codec.LOSSY:
        from codec.pipeline import lossy_image  # PyTorch: only lossy files need it
        samples = lossy_image.decode_lossy(c, grid, per_tile, head, jobs)
    else:
        tasks = [(h.codec, h.model_id, h.mode, per_tile[t.index], t, h.codec_param, head)
                 for t in grid]
        tiles = map_tiles(_decode_lossless_tile, tasks, jobs)
        samples = assemble(grid, tiles, tiles[0].shape[2], tiles[0].dtype)
    pic = Picture(samples, h.mode.pil)
    meta = c.optional(SegmentKind.METADATA)
    if meta is not None:
        pic.metadata, pic.transparency = metadata.unpack_metadata(meta.data)
    if h.mode is Mode.P:
        pic.palette_mode, pic.palette = metadata.unpack_palette(c.segment(SegmentKind.PALETTE))
    return pic


def assemble(grid: TileGrid, tiles: list[np.ndarray], channels: int, dtype) -> np.ndarray:
    out = np.empty((grid.height, grid.width, channels), dtype)
    for t, samples in zip(grid, tiles):
        out[t.y:t.y + t.height, t.x:t.x + t.width] = samples
    return out
