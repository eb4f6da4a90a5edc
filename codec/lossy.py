"""Lossy pipeline: image planes -> autoencoder codec -> container segments.

Colour goes through the autoencoder (grey images as three equal channels,
decoded back to grey); alpha stays lossless, coded by the ARM model the
lossy weights name (metadata ``alpha_model``).  The quality is stored in the
header's codec parameter (quality x 1000).
"""
from __future__ import annotations

import numpy as np

from models.lossy.spec import QUALITY_SCALE, quality_code

from . import lossless, weights
from .container import Codec, Container, Header, Mode, Segment, SegmentKind
from .errors import FormatError, UnsupportedImage, WeightsMismatch
from .planes import Planes


def lossy_codec(model_id: str):
    from .lossy_codec import LossyCodec
    return weights.codec_instance(LossyCodec, model_id)


def alpha_model(model_id: str) -> str:
    try:
        return weights.load(model_id, "lossy").meta["alpha_model"]
    except KeyError:
        raise WeightsMismatch(f"lossy model '{model_id}' names no ARM model for alpha") from None


def encode(planes: Planes, quality: float, model_id: str) -> Container:
    if planes.mode is Mode.BILEVEL:
        raise UnsupportedImage("mode 1 (bilevel) images are coded losslessly only; omit --quality")
    lc = lossy_codec(model_id)
    rgb = planes.colour if planes.colour.shape[2] == 3 else np.repeat(planes.colour, 3, axis=2)
    code = quality_code(quality)
    quality = code / QUALITY_SCALE   # what the decoder will read from the header
    side, latent = lc.encode(rgb, quality)
    segments = [Segment(SegmentKind.SIDE, side), Segment(SegmentKind.LATENT, latent)]
    if planes.alpha is not None:
        arm = lossless.plane_codec(Codec.ARM, alpha_model(model_id))
        segments.append(Segment(SegmentKind.ALPHA, arm.encode(planes.alpha).data))
    header = Header(Codec.LOSSY, planes.mode, planes.width, planes.height, model_id,
                    weights.digest(model_id), codec_param=code)
    return Container(header, segments)


def decode(c: Container) -> Planes:
    h = c.header
    quality = h.codec_param / QUALITY_SCALE
    if not 1.0 <= quality <= 8.0:
        raise FormatError(f"lossy quality {quality} outside 1..8")
    lc = lossy_codec(h.model_id)
    rgb = lc.decode(c.segment(SegmentKind.SIDE), c.segment(SegmentKind.LATENT), h.height, h.width,
                    quality)
    if h.mode in (Mode.L, Mode.LA):
        grey = (rgb.astype(np.int32) @ np.array([299, 587, 114]) + 500) // 1000
        colour = grey[:, :, None].astype(np.uint8)
    else:
        colour = rgb
    alpha = None
    if h.mode in (Mode.LA, Mode.RGBA):
        arm = lossless.plane_codec(Codec.ARM, alpha_model(h.model_id))
        alpha = arm.decode(c.segment(SegmentKind.ALPHA), h.height, h.width, 1)
    return Planes(h.mode, colour, alpha)
