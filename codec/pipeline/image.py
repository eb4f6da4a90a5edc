"""Whole images <-> containers: the header, the whole-image segments, the
tiles (on all cores) and their check values.

    Picture --> header, METADATA, PALETTE --> per tile (parallel.map_tiles):
        lossless.encode_tile / lossy.encode_tile + DIGEST --> container.pack

Decoding mirrors it and compares every tile's check value (``codec/format/digest.py``)
before it returns anything, so what comes back is either the image that
was encoded or an error naming the tile.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from codec import weights
from codec.entropy import range_decoder, range_encoder, stream_bytes
from codec.errors import FormatError, NcError
from codec.format import metadata
from codec.format.container import Codec, Container, Header, Mode, Segment, SegmentKind
from codec.format.digest import tile_digest
from codec.format.tiles import LOSSY_TILE_SIZE, TILE_SIZE, Tile, TileGrid
from codec.lossy import refine
from codec.lossy.postfilter import FilterFit, PostFilter, radius_for_effort
from codec.picture import Picture
from codec.pipeline import lossless, lossy
from codec.pipeline.parallel import map_tiles


@dataclass
class Encoded:
    container: Container
    ideal_bits: float   # the model's code length, -sum log2 p (lossless; 0 for lossy)


def _side_segments(pic: Picture, strip: bool) -> list[Segment]:
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
    mode = Mode.from_name(pic.mode)
    grid = TileGrid.for_image(pic.width, pic.height, tile_size or TILE_SIZE)
    colour = lossless.plane_groups(mode)[0].take(pic.samples)
    model_id = lossless.choose_model(colour, codec, model_ids)
    pc = lossless.plane_codec(codec, model_id)
    header = Header(codec, mode, pic.width, pic.height, model_id, weights.digest(model_id),
                    codec_param=pc.codec_param, bit_depth=mode.bit_depth,
                    tile_width=grid.tile_width, tile_height=grid.tile_height, effort=effort)
    side = _side_segments(pic, strip)
    head = header.pack(len(side) + len(grid) * (len(lossless.plane_groups(mode)) + 1))
    tasks = [(codec, model_id, mode, np.ascontiguousarray(t.crop(pic.samples)), t.index, head)
             for t in grid]
    segments, ideal = list(side), 0.0
    for tile_segments, bits in map_tiles(_encode_lossless_tile, tasks, jobs):
        segments += tile_segments
        ideal += bits
    return Encoded(Container(header, segments), ideal)


def _encode_lossless_tile(codec, model_id, mode, samples, index, head):
    segments, bits = lossless.encode_tile(codec, model_id, mode, samples, index)
    digest = tile_digest(head, index, samples)
    return segments + [Segment(SegmentKind.DIGEST, digest, index)], bits


def _tile_error(tile: Tile, e: Exception) -> Exception:
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
        raise _tile_error(tile, e) from None
    _verify(head, tile, segments, samples)
    return samples


# -- lossy ----------------------------------------------------------------------
def encode_lossy(pic: Picture, quality: float, model_id: str, *, effort: int = 0,
                 jobs: int | None = 1, strip: bool = False, tile_size: int | None = None) -> Encoded:
    mode = Mode.from_name(pic.mode)
    lossy.check_mode(mode)
    code, quality = lossy.stored_quality(quality)   # what the decoder will read
    grid = TileGrid.for_image(pic.width, pic.height, tile_size or LOSSY_TILE_SIZE)
    header = Header(Codec.LOSSY, mode, pic.width, pic.height, model_id, weights.digest(model_id),
                    codec_param=code, tile_width=grid.tile_width, tile_height=grid.tile_height,
                    effort=effort)
    side = _side_segments(pic, strip)
    padded = lossy.padded_rgb(pic.samples[:, :, :mode.colour_channels])
    # 1. the latents, window by window (each with its context, positions relative
    #    to it), refined to this image at efforts that spend time on it
    steps = refine.steps_for_effort(effort)
    windows = lossy.transform_windows(pic.width, pic.height)
    tasks = []
    for t in windows:
        y0, x0 = max(0, t.y - lossy.MARGIN), max(0, t.x - lossy.MARGIN)
        window = padded[y0:t.y + lossy.padded_size(t.height) + lossy.MARGIN,
                        x0:t.x + lossy.padded_size(t.width) + lossy.MARGIN]
        local = Tile(t.index, t.x - x0, t.y - y0, t.width, t.height)
        valid = (pic.height - y0, pic.width - x0)      # the image's pixels, not padding
        tasks.append((model_id, np.ascontiguousarray(window), local, quality, steps, valid,
                      radius_for_effort(effort)))
    analysed = map_tiles(lossy.analyse_tile, tasks, jobs)
    y = _assemble_latents(windows, [y for y, _ in analysed])
    z_refined = (None if steps == 0 else
                 torch.from_numpy(_assemble_latents(windows, [z for _, z in analysed], 4)))
    del padded, tasks, analysed                # memory: the latents are all that is needed now
    # 2. the hyper-latents of the whole latent map: one side segment
    lc = lossy.lossy_codec(model_id)
    side_stream, z = lc.encode_side(torch.from_numpy(y), z_refined)
    side.append(Segment(SegmentKind.SIDE, side_stream))
    # 3. the latents, slice by slice over the whole map, a stream per tile
    tiles = list(grid)
    streams = [range_encoder() for _ in tiles]
    per_slice = lc.spec.m // lc.spec.slices

    def code_tile(index, i, means, levels, where):
        rows, cols = lossy.latent_rect(tiles[index])
        y_part = y[:, i * per_slice:(i + 1) * per_slice, rows, cols].astype(np.float64) \
            * 2**lc.spec.mean_frac
        r = np.floor((y_part - means) / 2**lc.spec.mean_frac + 0.5).astype(np.int64)
        lc.coder.encode(streams[index], r[where], levels[where])
        return r

    y_hat = lossy.walk_latents(lc, tiles, z, code, code_tile)
    # 4. the post-filter of the synthesis the decoder will compute, if it pays
    fitted = _fit_postfilter(pic, model_id, y_hat, quality, effort, jobs)
    if fitted is not None:
        side.append(Segment(SegmentKind.FILTER, fitted.pack(lc.coder)))
    head = header.pack(len(side) + len(grid) * (2 + mode.has_alpha))
    segments = list(side)
    alphas = [np.ascontiguousarray(t.crop(pic.samples)[:, :, -1:]) for t in tiles] \
        if mode.has_alpha else [None] * len(tiles)
    alpha_segments = (map_tiles(lossy.encode_alpha, [(model_id, a, t.index) for t, a in
                                                      zip(tiles, alphas)], jobs)
                      if mode.has_alpha else [None] * len(tiles))
    for t, stream, alpha, alpha_segment in zip(tiles, streams, alphas, alpha_segments):
        rows, cols = lossy.latent_rect(t)
        segments.append(Segment(SegmentKind.LATENT, stream_bytes(stream), t.index))
        checked = [z, y_hat[:, :, rows, cols]]
        if alpha is not None:
            segments.append(alpha_segment)
            checked.append(alpha)
        segments.append(Segment(SegmentKind.DIGEST, tile_digest(head, t.index, *checked), t.index))
    return Encoded(Container(header, segments), 0.0)


def _fit_postfilter(pic: Picture, model_id: str, y_hat: np.ndarray, quality: float,
                    effort: int, jobs) -> PostFilter | None:
    """The post-filter that pays most at this quality's lambda
    (``codec/lossy/postfilter.py``), fitted window by window to the
    synthesis the decoder will compute; None at low efforts or if none pays."""
    radius = radius_for_effort(effort)
    if radius == 0:
        return None
    rgb = lossy.as_rgb(pic.samples[:, :, :Mode.from_name(pic.mode).colour_channels])
    tasks = [task + (rgb[t.y:t.y + t.height, t.x:t.x + t.width], radius)
             for t, task in _synthesis_tasks(model_id, y_hat, quality, pic.width, pic.height)]
    fit = sum(map_tiles(lossy.filter_statistics, tasks, jobs), FilterFit(radius))
    lc = lossy.lossy_codec(model_id)
    return fit.choose(lc.spec.lam(quality), lc.coder)


def _synthesis_tasks(model_id: str, y_hat: np.ndarray, quality: float, width: int, height: int):
    """(window, (model id, latent window, window, quality, latent offset))
    for each window the synthesis runs in."""
    for t in lossy.transform_windows(width, height):
        rows, cols = lossy.latent_window(t, y_hat.shape[2:])
        yield t, (model_id, np.ascontiguousarray(y_hat[:, :, rows, cols]), t, quality,
                  (rows.start, cols.start))


def _synthesise(model_id, y_window, tile, quality, offset, postfilter=None):
    try:
        return lossy.synthesise_tile(model_id, y_window, tile, quality, offset, postfilter)
    except Exception as e:
        raise _tile_error(tile, e) from None


def _decode_alpha(model_id, segment, tile):
    try:
        return lossy.decode_alpha(model_id, segment, tile)
    except Exception as e:
        raise _tile_error(tile, e) from None


def _assemble_latents(grid: TileGrid, tiles: list[np.ndarray], down: int = 1) -> np.ndarray:
    """The whole latent map (1, M, Hp/16, Wp/16) from the tiles' parts (with
    ``down`` 4: the hyper-latent map, Hp/64 x Wp/64)."""
    s = lossy.LATENT_STRIDE
    hp, wp = lossy.padded_size(grid.height) // s, lossy.padded_size(grid.width) // s
    out = np.zeros((1, tiles[0].shape[1], hp // down, wp // down), tiles[0].dtype)
    for t, y in zip(grid, tiles):
        rows, cols = lossy.latent_rect(t)
        out[:, :, rows.start // down:rows.stop // down, cols.start // down:cols.stop // down] = y
    return out


# -- decode -----------------------------------------------------------------------
def _verify(head: bytes | None, tile: Tile, segments: dict, *arrays) -> None:
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
        lossy.check_mode(h.mode)
        samples = _decode_lossy(c, grid, per_tile, head, jobs)
    else:
        tasks = [(h.codec, h.model_id, h.mode, per_tile[t.index], t, h.codec_param, head)
                 for t in grid]
        tiles = map_tiles(_decode_lossless_tile, tasks, jobs)
        samples = _assemble(grid, tiles, tiles[0].shape[2], tiles[0].dtype)
    pic = Picture(samples, h.mode.pil)
    meta = c.optional(SegmentKind.METADATA)
    if meta is not None:
        pic.metadata, pic.transparency = metadata.unpack_metadata(meta.data)
    if h.mode is Mode.P:
        pic.palette_mode, pic.palette = metadata.unpack_palette(c.segment(SegmentKind.PALETTE))
    return pic


def _decode_lossy(c: Container, grid: TileGrid, per_tile: list[dict], head, jobs) -> np.ndarray:
    h = c.header
    quality = lossy.header_quality(h.codec_param)
    lc = lossy.lossy_codec(h.model_id)
    s = lossy.LATENT_STRIDE
    hp, wp = lossy.padded_size(h.height) // s, lossy.padded_size(h.width) // s
    tiles = list(grid)
    for t in tiles:
        for kind in (SegmentKind.LATENT, SegmentKind.ALPHA) if h.mode.has_alpha else (SegmentKind.LATENT,):
            if kind not in per_tile[t.index]:
                raise FormatError(f"{t}: missing {kind.name.lower()} segment")
    filter_segment = c.optional(SegmentKind.FILTER)
    postfilter = (None if filter_segment is None
                  else PostFilter.unpack(filter_segment.data, lc.coder))
    try:
        z = lc.decode_side(c.segment(SegmentKind.SIDE), hp, wp)
        streams = [range_decoder(per_tile[t.index][SegmentKind.LATENT].data) for t in tiles]
    except NcError:
        raise
    except Exception as e:
        raise FormatError(f"corrupt side segment ({type(e).__name__})") from None

    failed = {}    # damage spreads to the neighbours' later slices: report every tile hit

    def code_tile(index, i, means, levels, where):
        r = np.zeros(means.shape, np.int64)
        if index not in failed:
            try:
                r[where] = lc.coder.decode(streams[index], levels[where])
            except Exception as e:
                failed[index] = _tile_error(tiles[index], e)
        return r

    y_hat = lossy.walk_latents(lc, tiles, z, lossy.quality_code(quality), code_tile)
    alphas = (map_tiles(_decode_alpha, [(h.model_id, per_tile[t.index][SegmentKind.ALPHA], t)
                                        for t in tiles], jobs)
              if h.mode.has_alpha else [None] * len(tiles))
    for t, alpha in zip(tiles, alphas):
        rows, cols = lossy.latent_rect(t)
        checked = [z, y_hat[:, :, rows, cols]] + ([alpha] if alpha is not None else [])
        try:
            if t.index not in failed:
                _verify(head, t, per_tile[t.index], *checked)
        except FormatError as e:
            failed[t.index] = e
    if failed:
        first = failed[min(failed)]
        more = f" (and {len(failed) - 1} more tiles)" if len(failed) > 1 else ""
        raise type(first)(f"{first}{more}")
    tasks = [task + (postfilter,) for _, task in
             _synthesis_tasks(h.model_id, y_hat, quality, h.width, h.height)]
    rgb = _assemble(lossy.transform_windows(h.width, h.height),
                    map_tiles(_synthesise, tasks, jobs), 3, np.uint8)
    colour = lossy.to_mode(rgb, h.mode)
    if not h.mode.has_alpha:
        return colour
    return np.concatenate([colour, _assemble(grid, alphas, 1, np.uint8)], 2)


def _assemble(grid: TileGrid, tiles: list[np.ndarray], channels: int, dtype) -> np.ndarray:
    out = np.empty((grid.height, grid.width, channels), dtype)
    for t, samples in zip(grid, tiles):
        out[t.y:t.y + t.height, t.x:t.x + t.width] = samples
    return out
