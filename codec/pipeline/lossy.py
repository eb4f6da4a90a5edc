"""Lossy coding of one tile, and the seamless synthesis of a tiled image.

Colour goes through the autoencoder (grey images as three equal channels,
decoded back to grey); alpha stays lossless, coded by the ARM model the
lossy weights name (metadata ``alpha_model``).  The quality is stored in the
header's codec parameter (quality x 1000).

Tiles and windows.  The image is padded to a multiple of 64 by edge
replication.  The transforms run window by window (``WINDOW`` pixels
square, which bounds their memory, whatever the tile size): the latents y
of each window come from the window plus ``MARGIN`` pixels around it; the hyper-latents z of the whole y map are one side
segment, decoded first.  The latents are then coded slice by slice over the
whole map (``walk_latents``), each tile's residuals in a stream of its own,
with means and scales that read across tile borders: a tile cut into the
networks' context would cost rate and, at low rates, visible errors along
its borders.  Decoding rebuilds z, then the latents, then synthesises
each window from the whole latent map reaching ``MARGIN`` / 16 latents
beyond it, which covers g_s's receptive field: the pixels are those of one
synthesis of the whole image (windows are not part of the format).
"""
from __future__ import annotations

import numpy as np
import torch

from codec import weights
from codec.errors import FormatError, UnsupportedImage, WeightsMismatch
from codec.format.container import Codec, Mode, Segment, SegmentKind
from codec.format.tiles import Tile, TileGrid
from codec.lossy.codec import to_pixels
from codec.lossy.postfilter import FilterFit, PostFilter
from codec.pipeline import lossless
from models.lossy.network import anchor_mask
from models.lossy.spec import QUALITY_SCALE, quality_code  # noqa: F401 (re-exported)

PAD_MULTIPLE = 64
MARGIN = 64          # pixels of context around a window, for analysis and synthesis
WINDOW = 1024        # transform windows (pixels, a multiple of 64)
LATENT_STRIDE = 16
NET_MARGIN = 4       # latents of context around a tile for the slice and context networks
HYPER_MARGIN = 3     # hyper-latents of context for h_s (its receptive field: 2)
NET_BLOCK = 64       # latents: the blocks the entropy networks run in (not part of the format)


def lossy_codec(model_id: str):
    from codec.lossy.codec import LossyCodec
    return weights.codec_instance(LossyCodec, model_id)


def alpha_model(model_id: str) -> str:
    try:
        return weights.load(model_id, "lossy").meta["alpha_model"]
    except KeyError:
        raise WeightsMismatch(f"lossy model '{model_id}' names no ARM model for alpha") from None


def check_mode(mode: Mode) -> None:
    if mode not in (Mode.L, Mode.LA, Mode.RGB, Mode.RGBA):
        name = "bilevel" if mode is Mode.BILEVEL else mode.pil
        raise UnsupportedImage(f"mode {mode.pil} ({name}) images are coded losslessly only; "
                               f"omit --quality and --target-bpp")


def stored_quality(quality: float) -> tuple[int, float]:
    """(header code, the quality the decoder will read from it)."""
    code = quality_code(quality)
    return code, code / QUALITY_SCALE


def header_quality(codec_param: int) -> float:
    quality = codec_param / QUALITY_SCALE
    if not 1.0 <= quality <= 8.0:
        raise FormatError(f"lossy quality {quality} outside 1..8")
    return quality


def padded_size(n: int) -> int:
    """n rounded up to the padding multiple (64)."""
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE


def as_rgb(colour: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour planes: grey as three equal channels."""
    return colour if colour.shape[2] == 3 else np.repeat(colour, 3, axis=2)


def padded_rgb(colour: np.ndarray) -> np.ndarray:
    """(Hp, Wp, 3) uint8: grey as three channels, edges replicated to a
    multiple of 64."""
    rgb = as_rgb(colour)
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, padded_size(h) - h), (0, padded_size(w) - w), (0, 0)), mode="edge")


def transform_windows(width: int, height: int) -> TileGrid:
    """The windows the transforms run in (a grid like the tiles', not stored)."""
    return TileGrid.for_image(width, height, WINDOW)


def tile_latents(y: np.ndarray, tile: Tile) -> np.ndarray:
    """The tile's part of the whole latent map."""
    rows, cols = latent_rect(tile)
    return y[:, :, rows, cols]


def analyse_tile(model_id: str, window: np.ndarray, tile: Tile, quality: float,
                 refine_steps: int = 0, valid: tuple[int, int] | None = None,
                 guide_radius: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """The tile's latents y (1, M, h, w) from ``window``, a part of the padded
    image that holds the tile and MARGIN pixels around it where they exist
    (``tile`` positioned relative to the window), and its hyper-latents z
    (1, hyper, h/4, w/4) when ``refine_steps`` > 0: then y and z are
    refined over the whole window (``codec/lossy/refine.py``), counting the
    distortion of its first ``valid`` (rows, columns) only, the image's
    pixels (the rest is padding), through a guide post-filter of radius up
    to ``guide_radius`` (0: none); else z is None, for h_a to derive."""
    lc = lossy_codec(model_id)
    x = torch.from_numpy(np.ascontiguousarray(window)).permute(2, 0, 1)[None].float() / 255
    y = lc.analysis(x, quality)
    if refine_steps <= 0:
        return np.ascontiguousarray(tile_latents(y.numpy(), tile)), None
    mask = torch.zeros((1, 1, *x.shape[2:]))
    rows, cols = valid if valid is not None else x.shape[2:]
    mask[:, :, :rows, :cols] = 1
    y, z = lc.refiner().refine(x, mask, y, quality, refine_steps, guide_radius)
    lat_rows, lat_cols = latent_rect(tile)
    z_rows = slice(lat_rows.start // 4, lat_rows.stop // 4)
    z_cols = slice(lat_cols.start // 4, lat_cols.stop // 4)
    return (np.ascontiguousarray(tile_latents(y.numpy(), tile)),
            np.ascontiguousarray(z.numpy()[:, :, z_rows, z_cols]))


def latent_rect(tile: Tile) -> tuple[slice, slice]:
    """The tile's rows and columns of the latent map."""
    s = LATENT_STRIDE
    th, tw = padded_size(tile.height) // s, padded_size(tile.width) // s
    return slice(tile.y // s, tile.y // s + th), slice(tile.x // s, tile.x // s + tw)


def walk_latents(lc, tiles: list[Tile], z: np.ndarray, code: int, code_tile) -> np.ndarray:
    """The whole latent map y_hat (1/16 units), slice by slice, each tile's
    residuals in its own stream.  ``code_tile(index, slice, means, levels,
    where)`` writes (or reads) tile ``index``'s residuals of one slice half
    at ``where`` and returns them (the tile's shape, meaningful at
    ``where``).  Means and scales are computed block by block (``NET_BLOCK``
    latents square, whatever the tiles) in windows that reach
    ``NET_MARGIN`` latents into the neighbours, which holds the slice and
    context networks' receptive fields: they are exactly what the networks
    give the whole map, so a tiled image is coded as it would be in one
    piece (no seams) and only its streams are split, and the networks'
    memory is bounded by a block's.  The hyper features h_s(z) are likewise
    computed block by block (z reaching ``HYPER_MARGIN`` positions further)."""
    s = lc.spec
    hp, wp = z.shape[2] * 4, z.shape[3] * 4
    tile_rects = [latent_rect(t) for t in tiles]
    blocks = TileGrid.for_image(wp, hp, NET_BLOCK)
    rects = [(slice(b.y, b.y + b.height), slice(b.x, b.x + b.width)) for b in blocks]
    windows = [_grow(r, c, hp, wp, NET_MARGIN) for r, c in rects]
    feats = [_window_features(lc, z, wr, wc) for wr, wc in windows]
    previous: list[np.ndarray] = []

    def params(i, context=None):
        means = np.empty((1, s.m // s.slices, hp, wp), np.int64)
        levels = np.empty_like(means)
        for (r, c), (wr, wc), f in zip(rects, windows, feats):
            ctx = None if context is None else lc.params.context_features(i, context[:, :, wr, wc])
            m, lv = lc.params.slice_params(i, f.double(), [p[:, :, wr, wc] for p in previous],
                                           code, ctx)
            inner = (slice(None), slice(None), slice(r.start - wr.start, r.stop - wr.start),
                     slice(c.start - wc.start, c.stop - wc.start))
            means[:, :, r, c], levels[:, :, r, c] = m[inner], lv[inner]
        return means, levels

    def code_half(i, means, levels, where):
        r_map = np.zeros(means.shape, np.int64)
        for index, (r, c) in enumerate(tile_rects):
            w = ... if where is ... else where[:, :, r, c]
            r_map[:, :, r, c] = code_tile(index, i, means[:, :, r, c], levels[:, :, r, c], w)
        return r_map

    for i in range(s.slices):
        means, levels = params(i)
        if not s.checkerboard_channels:
            r = code_half(i, means, levels, ...)
        else:
            anchor = np.broadcast_to(anchor_mask(hp, wp).numpy() > 0, means.shape)
            r = code_half(i, means, levels, anchor)
            anchors = np.where(anchor, r * 2**s.mean_frac + means, 0)
            means_n, levels_n = params(i, anchors)
            r = np.where(anchor, r, code_half(i, means_n, levels_n, ~anchor))
            means = np.where(anchor, means, means_n)
        previous.append(r * 2**s.mean_frac + means)
    return np.concatenate(previous, 1)


def _window_features(lc, z: np.ndarray, rows: slice, cols: slice):
    """h_s(z) at latent rows and columns ``rows``, ``cols``, from a window of
    z that holds their receptive field: exactly the whole map's values."""
    zr = slice(max(0, rows.start // 4 - HYPER_MARGIN), min(z.shape[2], -(-rows.stop // 4) + HYPER_MARGIN))
    zc = slice(max(0, cols.start // 4 - HYPER_MARGIN), min(z.shape[3], -(-cols.stop // 4) + HYPER_MARGIN))
    f = lc.hyper_features(z[:, :, zr, zc])
    return f[:, :, rows.start - 4 * zr.start:rows.stop - 4 * zr.start,
             cols.start - 4 * zc.start:cols.stop - 4 * zc.start].clone()


def _grow(rows: slice, cols: slice, height: int, width: int, margin: int) -> tuple[slice, slice]:
    """``rows``, ``cols`` reaching ``margin`` further, within height x width."""
    return (slice(max(0, rows.start - margin), min(height, rows.stop + margin)),
            slice(max(0, cols.start - margin), min(width, cols.stop + margin)))


def encode_alpha(model_id: str, alpha: np.ndarray, index: int) -> Segment:
    arm = lossless.plane_codec(Codec.ARM, alpha_model(model_id))
    method, data, _ = lossless.encode_group(arm, alpha)
    return Segment(SegmentKind.ALPHA, data, index, method)


def decode_alpha(model_id: str, segment: Segment, tile: Tile) -> np.ndarray:
    return lossless.decode_group(lambda: lossless.plane_codec(Codec.ARM, alpha_model(model_id)),
                                 segment, (tile.height, tile.width, 1), 0)


def synthesise_tile(model_id: str, y_window: np.ndarray, tile: Tile, quality: float,
                    offset: tuple[int, int], postfilter: PostFilter | None = None) -> np.ndarray:
    """The tile's (h, w, 3) pixels from ``y_window``, the part of the whole
    latent map that ``latent_window`` gives, which starts at latent
    ``offset`` (row, column); filtered by the image's ``postfilter``, if it
    has one."""
    border = postfilter.border if postfilter is not None else 0
    region = synthesis_region(model_id, y_window, tile, quality, offset, border)
    return to_pixels(region if postfilter is None else postfilter.apply(region))


def synthesis_region(model_id: str, y_window: np.ndarray, tile: Tile, quality: float,
                     offset: tuple[int, int], border: int) -> np.ndarray:
    """(3, h + 2 border, w + 2 border) float synthesis (pixel units, not
    rounded) of the tile and ``border`` pixels around it, edge-replicated
    beyond the padded canvas.  The window reaches MARGIN pixels past the
    tile wherever the canvas goes on, so replication only ever stands in
    for pixels beyond the canvas."""
    pixels = lossy_codec(model_id).synthesis_float(y_window, quality)
    if border:
        pixels = np.pad(pixels, ((0, 0), (border, border), (border, border)), mode="edge")
    py = (tile.y // LATENT_STRIDE - offset[0]) * LATENT_STRIDE
    px = (tile.x // LATENT_STRIDE - offset[1]) * LATENT_STRIDE
    return pixels[:, py:py + tile.height + 2 * border, px:px + tile.width + 2 * border]


def filter_statistics(model_id: str, y_window: np.ndarray, tile: Tile, quality: float,
                      offset: tuple[int, int], original: np.ndarray, radius: int) -> FilterFit:
    """The post-filter's least-squares statistics over one window: its
    synthesis (as the decoder will compute it) against ``original``, the
    window's (h, w, 3) pixels of the image."""
    fit = FilterFit(radius)
    fit.add(synthesis_region(model_id, y_window, tile, quality, offset, fit.border), original)
    return fit


def latent_window(tile: Tile, latent_shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the whole latent map that the tile's synthesis
    reads: its latents and MARGIN / 16 more around them (g_s's receptive
    field)."""
    return _grow(*latent_rect(tile), *latent_shape, MARGIN // LATENT_STRIDE)


def to_mode(rgb: np.ndarray, mode: Mode) -> np.ndarray:
    """Decoded RGB as the image's colour channels (grey: ITU-R 601 luma)."""
    if mode in (Mode.L, Mode.LA):
        grey = (rgb.astype(np.int32) @ np.array([299, 587, 114]) + 500) // 1000
        return grey[:, :, None].astype(np.uint8)
    return rgb
