"""Lossless pipeline: image planes -> plane codec -> container segments.

Shared by every lossless codec (the ARM now; the IDF plugs in as another
``PlaneCodec``): colour planes go to one segment, alpha to another.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import weights
from .container import Codec, Container, Header, Segment, SegmentKind
from .errors import FormatError
from .planes import Planes, colour_channels


class PlaneCodec(Protocol):
    model_id: str
    codec_param: int   # what the header's codec parameter holds for files it writes

    def encode(self, pixels: np.ndarray): ...
    def estimate_bits(self, pixels: np.ndarray) -> float: ...
    def decode(self, data: bytes, height: int, width: int, channels: int,
               codec_param: int = 0) -> np.ndarray: ...


@dataclass
class LosslessResult:
    container: Container
    ideal_bits: float


def plane_codec(codec: Codec, model_id: str) -> PlaneCodec:
    if codec is Codec.ARM:
        from .arm_codec import ARMPlaneCodec as cls
    elif codec is Codec.IDF:
        from .idf_codec import IDFPlaneCodec as cls
    else:
        raise FormatError(f"codec {codec.name.lower()} is not a lossless codec")
    return weights.codec_instance(cls, model_id)


def choose_model(planes: Planes, codec: Codec, model_ids: list[str]) -> str:
    """The model whose estimated code length for the colour planes is the
    smallest (the only one, when there is one)."""
    if len(model_ids) == 1:
        return model_ids[0]
    bits = {m: plane_codec(codec, m).estimate_bits(planes.colour) for m in model_ids}
    return min(bits, key=bits.get)


def encode(planes: Planes, codec: Codec, model_ids: list[str]) -> LosslessResult:
    """Code the planes with the model of ``model_ids`` best for this image."""
    model_id = choose_model(planes, codec, model_ids)
    pc = plane_codec(codec, model_id)
    coded = pc.encode(planes.colour)
    segments = [Segment(SegmentKind.COLOUR, coded.data)]
    ideal = coded.ideal_bits
    if planes.alpha is not None:
        a = pc.encode(planes.alpha)
        segments.append(Segment(SegmentKind.ALPHA, a.data))
        ideal += a.ideal_bits
    header = Header(codec, planes.mode, planes.width, planes.height, model_id,
                    weights.digest(model_id), codec_param=pc.codec_param)
    return LosslessResult(Container(header, segments), ideal)


def decode(c: Container) -> Planes:
    h = c.header
    pc = plane_codec(h.codec, h.model_id)
    colour = pc.decode(c.segment(SegmentKind.COLOUR), h.height, h.width, colour_channels(h.mode),
                       h.codec_param)
    alpha = None
    if h.mode.name in ("LA", "RGBA"):
        alpha = pc.decode(c.segment(SegmentKind.ALPHA), h.height, h.width, 1, h.codec_param)
    return Planes(h.mode, colour, alpha)
