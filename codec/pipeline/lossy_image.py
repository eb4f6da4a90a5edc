"""Whole lossy images <-> containers (the lossless side is ``image.py``).

    Picture --> latents window by window (refined at efforts 5+) --> SIDE (z)
        --> the latents slice by slice, a LATENT stream per tile --> FILTER
        (the post-filter, at efforts 3+) --> per tile: ALPHA, DIGEST

Decoding rebuilds z, the latents (checking every tile's value), then
synthesises window by window and applies the post-filter.  Only this module
(and what it imports) needs PyTorch: lossless files decode without it.
"""
from __future__ import annotations

import numpy as np
import torch

from codec import weights
from codec.entropy import range_decoder, range_encoder, stream_bytes
from codec.errors import FormatError, NcError
from codec.format.container import Codec, Container, Header, Mode, Segment, SegmentKind
from codec.format.digest import tile_digest
from codec.format.tiles import LOSSY_TILE_SIZE, Tile, TileGrid
from codec.lossy import refine
from codec.lossy.postfilter import FilterFit, PostFilter, radius_for_effort
from codec.picture import Picture
from codec.pipeline import lossy
from codec.pipeline.image import Encoded, assemble, side_segments, tile_error, verify
from codec.pipeline.parallel import map_tiles


def encode_lossy(pic: Picture, quality: float, model_id: str, *, effort: int = 0,
                 jobs: int | None = 1, strip: bool = False, tile_size: int | None = None) -> Encoded:
    mode = Mode.from_name(pic.mode)
    lossy.check_mode(mode)
    code, quality = lossy.stored_quality(quality)   # what the decoder will read
    grid = TileGrid.for_image(pic.width, pic.height, tile_size or LOSSY_TILE_SIZE)
    header = Header(Codec.LOSSY, mode, pic.width, pic.height, model_id, weights.digest(model_id),
                    codec_param=code, tile_width=grid.tile_width, tile_height=grid.tile_height,
                    effort=effort)
    side = side_segments(pic, strip)
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
        raise tile_error(tile, e) from None


def _decode_alpha(model_id, segment, tile):
    try:
        return lossy.decode_alpha(model_id, segment, tile)
    except Exception as e:
        raise tile_error(tile, e) from None


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


def decode_lossy(c: Container, grid: TileGrid, per_tile: list[dict], head, jobs) -> np.ndarray:
    """The samples of a lossy file (``per_tile``: its segments by tile and
    kind; ``head``: the header bytes the check values cover)."""
    h = c.header
    lossy.check_mode(h.mode)
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
                failed[index] = tile_error(tiles[index], e)
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
                verify(head, t, per_tile[t.index], *checked)
        except FormatError as e:
            failed[t.index] = e
    if failed:
        first = failed[min(failed)]
        more = f" (and {len(failed) - 1} more tiles)" if len(failed) > 1 else ""
        raise type(first)(f"{first}{more}")
    tasks = [task + (postfilter,) for _, task in
             _synthesis_tasks(h.model_id, y_hat, quality, h.width, h.height)]
    rgb = assemble(lossy.transform_windows(h.width, h.height),
                    map_tiles(_synthesise, tasks, jobs), 3, np.uint8)
    colour = lossy.to_mode(rgb, h.mode)
    if not h.mode.has_alpha:
        return colour
    return np.concatenate([colour, assemble(grid, alphas, 1, np.uint8)], 2)
