"""Lossy coding of one tile, and the seamless synthesis of a tiled image.

Colour goes through the autoencoder (grey images as three equal channels,
decoded back to grey); alpha stays lossless, coded by the ARM model the
lossy weights name (metadata ``alpha_model``).  The quality is stored in the
header's codec parameter (quality x 1000).

Tiles and windows.  The image is padded to a multiple of 64 by edge
replication.  The transforms run window by window (``WINDOW`` pixels
square, which bounds their memory, whatever the tile size): the latents y
of each window come from the window plus ``MARGIN`` pixels around it; the hyper-latents z of the whole y map are one side
segment, decoded first, so every tile's means and scales come from h_s
over a window of the whole z map (exactly what h_s gives the whole map),
not from a z cut at the tile's edge, which costs rate and, at low rates,
visible errors along borders.  Each tile's y is then coded on its own.
Decoding rebuilds z, then every tile's y (in parallel), then synthesises
each window from the whole latent map reaching ``MARGIN`` / 16 latents
beyond it, which covers g_s's receptive field: the pixels are those of one
synthesis of the whole image (windows are not part of the format).
"""
from __future__ import annotations

import numpy as np
import torch

from models.lossy.spec import QUALITY_SCALE, quality_code

from . import lossless, weights
from .container import Codec, Mode, Segment, SegmentKind
from .errors import FormatError, UnsupportedImage, WeightsMismatch
from .tiles import Tile, TileGrid

PAD_MULTIPLE = 64
MARGIN = 64          # pixels of context around a window, for analysis and synthesis
WINDOW = 1024        # transform windows (pixels, a multiple of 64)
LATENT_STRIDE = 16
HYPER_STRIDE = 64
HYPER_MARGIN = 3     # z positions of context for h_s around a tile (its receptive field: 2)


def lossy_codec(model_id: str):
    from .lossy_codec import LossyCodec
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


def _window(start: int, size: int, total: int, margin: int) -> tuple[int, int]:
    return max(0, start - margin), min(total, start + size + margin)


def padded_rgb(colour: np.ndarray) -> np.ndarray:
    """(Hp, Wp, 3) uint8: grey as three channels, edges replicated to a
    multiple of 64."""
    rgb = colour if colour.shape[2] == 3 else np.repeat(colour, 3, axis=2)
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, padded_size(h) - h), (0, padded_size(w) - w), (0, 0)), mode="edge")


def transform_windows(width: int, height: int) -> TileGrid:
    """The windows the transforms run in (a grid like the tiles', not stored)."""
    return TileGrid.for_image(width, height, WINDOW)


def tile_latents(y: np.ndarray, tile: Tile) -> np.ndarray:
    """The tile's part of the whole latent map."""
    s = LATENT_STRIDE
    th, tw = padded_size(tile.height) // s, padded_size(tile.width) // s
    return y[:, :, tile.y // s:tile.y // s + th, tile.x // s:tile.x // s + tw]


def analyse_tile(model_id: str, window: np.ndarray, tile: Tile, quality: float) -> np.ndarray:
    """The tile's latents y (1, M, h, w) from ``window``, a part of the padded
    image that holds the tile and MARGIN pixels around it where they exist
    (``tile`` positioned relative to the window)."""
    lc = lossy_codec(model_id)
    x = torch.from_numpy(np.ascontiguousarray(window)).permute(2, 0, 1)[None].float() / 255
    y = lc.analysis(x, quality)
    oy, ox = tile.y // LATENT_STRIDE, tile.x // LATENT_STRIDE
    th, tw = padded_size(tile.height) // LATENT_STRIDE, padded_size(tile.width) // LATENT_STRIDE
    return y[:, :, oy:oy + th, ox:ox + tw].numpy()


def hyper_window(tile: Tile, z_shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the whole z map that a tile's hyper features read."""
    th, tw = padded_size(tile.height) // HYPER_STRIDE, padded_size(tile.width) // HYPER_STRIDE
    y0, y1 = _window(tile.y // HYPER_STRIDE, th, z_shape[0], HYPER_MARGIN)
    x0, x1 = _window(tile.x // HYPER_STRIDE, tw, z_shape[1], HYPER_MARGIN)
    return slice(y0, y1), slice(x0, x1)


def _tile_features(lc, z_window: np.ndarray, tile: Tile, offset: tuple[int, int]):
    """h_s's features for the tile's latents, from a window of z starting at
    z position ``offset``: exactly those of the whole z map, as the window
    holds their receptive field."""
    feats = lc.hyper_features(z_window)
    r = HYPER_STRIDE // LATENT_STRIDE
    oy, ox = (tile.y // HYPER_STRIDE - offset[0]) * r, (tile.x // HYPER_STRIDE - offset[1]) * r
    th, tw = padded_size(tile.height) // LATENT_STRIDE, padded_size(tile.width) // LATENT_STRIDE
    return feats[:, :, oy:oy + th, ox:ox + tw]


def encode_tile(model_id: str, y: np.ndarray, z_window: np.ndarray, offset: tuple[int, int],
                alpha: np.ndarray | None, tile: Tile, quality: float,
                ) -> tuple[list[Segment], list[np.ndarray]]:
    """The tile's segments (latent, alpha) and what its check value covers
    (the z window it read, its latents, its alpha)."""
    lc = lossy_codec(model_id)
    feats = _tile_features(lc, z_window, tile, offset)
    latent, y_hat = lc.encode_latents(torch.from_numpy(y), feats, quality)
    segments = [Segment(SegmentKind.LATENT, latent, tile.index)]
    checked = [z_window, y_hat]
    if alpha is not None:
        arm = lossless.plane_codec(Codec.ARM, alpha_model(model_id))
        method, data, _ = lossless.encode_group(arm, alpha)
        segments.append(Segment(SegmentKind.ALPHA, data, tile.index, method))
        checked.append(alpha)
    return segments, checked


def decode_tile_latents(model_id: str, mode: Mode, segments: dict, z_window: np.ndarray,
                        offset: tuple[int, int], tile: Tile, quality: float,
                        ) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """(y_hat of the tile, its alpha or None, what its check value covers)."""
    lc = lossy_codec(model_id)
    if SegmentKind.LATENT not in segments:
        raise FormatError("missing latent segment")
    feats = _tile_features(lc, z_window, tile, offset)
    y_hat = lc.decode_latents(segments[SegmentKind.LATENT].data, feats, quality)
    checked = [z_window, y_hat]
    alpha = None
    if mode.has_alpha:
        if SegmentKind.ALPHA not in segments:
            raise FormatError("missing alpha segment")
        alpha = lossless.decode_group(
            lambda: lossless.plane_codec(Codec.ARM, alpha_model(model_id)),
            segments[SegmentKind.ALPHA], (tile.height, tile.width, 1), 0)
        checked.append(alpha)
    return y_hat, alpha, checked


def synthesise_tile(model_id: str, y_hat: np.ndarray, tile: Tile, quality: float,
                    offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The tile's (h, w, 3) pixels from ``y_hat``, a window of the whole
    latent map that starts at latent ``offset`` (row, column) and holds the
    tile's latents plus MARGIN / 16 latents around them where they exist."""
    lc = lossy_codec(model_id)
    m = MARGIN // LATENT_STRIDE
    ty, tx = tile.y // LATENT_STRIDE - offset[0], tile.x // LATENT_STRIDE - offset[1]
    th, tw = padded_size(tile.height) // LATENT_STRIDE, padded_size(tile.width) // LATENT_STRIDE
    y0, y1 = _window(ty, th, y_hat.shape[2], m)
    x0, x1 = _window(tx, tw, y_hat.shape[3], m)
    pixels = lc.synthesis(y_hat[:, :, y0:y1, x0:x1], quality)
    py, px = (ty - y0) * LATENT_STRIDE, (tx - x0) * LATENT_STRIDE
    return pixels[py:py + tile.height, px:px + tile.width]


def latent_window(tile: Tile, latent_shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the whole latent map that ``synthesise_tile`` reads."""
    m = MARGIN // LATENT_STRIDE
    th, tw = padded_size(tile.height) // LATENT_STRIDE, padded_size(tile.width) // LATENT_STRIDE
    y0, y1 = _window(tile.y // LATENT_STRIDE, th, latent_shape[0], m)
    x0, x1 = _window(tile.x // LATENT_STRIDE, tw, latent_shape[1], m)
    return slice(y0, y1), slice(x0, x1)


def to_mode(rgb: np.ndarray, mode: Mode) -> np.ndarray:
    """Decoded RGB as the image's colour channels (grey: ITU-R 601 luma)."""
    if mode in (Mode.L, Mode.LA):
        grey = (rgb.astype(np.int32) @ np.array([299, 587, 114]) + 500) // 1000
        return grey[:, :, None].astype(np.uint8)
    return rgb
