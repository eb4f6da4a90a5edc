"""Lossless coding of one tile: its samples -> plane groups -> segments.

Shared by every lossless codec (the ARM and the IDF plug in as a
``PlaneCodec``).  A tile's samples split into plane groups, each one
segment: the colour (RGB, or one grey, palette-index or bilevel plane) and
the alpha plane; 16-bit samples split further into their high bytes, which
the model codes like any 8-bit plane, and their low bytes.  Each group is
coded by the model and by the deflate fallback (``fallback.py``) and the
smaller kept, so no tile costs much more than deflate would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from codec import weights
from codec.errors import FormatError
from codec.format.container import Codec, Method, Mode, Segment, SegmentKind
from codec.pipeline import fallback


@dataclass
class CodedPlanes:
    """What a plane codec's ``encode`` returns: one segment's bytes."""
    data: bytes
    ideal_bits: float     # -log2 of the probabilities the model gave the symbols
    side_bytes: int = 0   # bytes before the range-coded stream (prefix, table)


class PlaneCodec(Protocol):
    model_id: str
    codec_param: int   # what the header's codec parameter holds for files it writes

    def encode(self, pixels: np.ndarray, effort: int = 0) -> CodedPlanes: ...
    def estimate_bits(self, pixels: np.ndarray) -> float: ...
    def decode(self, data: bytes, height: int, width: int, channels: int,
               codec_param: int = 0) -> np.ndarray: ...


@dataclass(frozen=True)
class PlaneGroup:
    """One segment's worth of a tile: channels ``channels`` of the samples,
    their high (``shift`` 8) or low (``mask``) bytes for 16-bit modes."""
    kind: SegmentKind
    channels: slice
    shift: int = 0

    def take(self, samples: np.ndarray) -> np.ndarray:
        a = samples[:, :, self.channels]
        if samples.dtype == np.uint16:
            a = (a >> 8) if self.shift else (a & 0xFF)
        return np.ascontiguousarray(a.astype(np.uint8))


def plane_groups(mode: Mode) -> list[PlaneGroup]:
    """The plane groups of a tile of ``mode``, in segment order."""
    c = mode.colour_channels
    colour, alpha = slice(0, c), slice(c, c + 1)
    if mode.bit_depth == 16:
        groups = [PlaneGroup(SegmentKind.COLOUR, colour, 8), PlaneGroup(SegmentKind.COLOUR_LOW, colour)]
        if mode.has_alpha:
            groups += [PlaneGroup(SegmentKind.ALPHA, alpha, 8), PlaneGroup(SegmentKind.ALPHA_LOW, alpha)]
        return groups
    groups = [PlaneGroup(SegmentKind.COLOUR, colour)]
    if mode.has_alpha:
        groups.append(PlaneGroup(SegmentKind.ALPHA, alpha))
    return groups


def plane_codec(codec: Codec, model_id: str) -> PlaneCodec:
    if codec is Codec.ARM:
        from codec.arm.codec import ARMPlaneCodec as cls
    elif codec is Codec.IDF:
        from codec.idf.codec import IDFPlaneCodec as cls
    else:
        raise FormatError(f"codec {codec.name.lower()} is not a lossless codec")
    return weights.codec_instance(cls, model_id)


def choose_model(colour: np.ndarray, codec: Codec, model_ids: list[str]) -> str:
    """The model whose estimated code length for a colour plane group (at
    most its central 512x512) is the smallest (the only one, when there is
    one)."""
    if len(model_ids) == 1:
        return model_ids[0]
    h, w = colour.shape[:2]
    y, x = max(0, (h - 512) // 2), max(0, (w - 512) // 2)
    sample = colour[y:y + 512, x:x + 512]
    bits = {m: plane_codec(codec, m).estimate_bits(sample) for m in model_ids}
    return min(bits, key=bits.get)


def models_to_try(colour: np.ndarray, codec: Codec, model_ids: list[str],
                  effort: int) -> list[tuple[str, int]]:
    """(model, the effort its encode runs at) for each encode of the image:
    the model ``choose_model`` picks, at ``effort``; or, at an ARM effort
    that fits the network to the image once (effort 7) where the pick is
    not the default model, the default one fitted and the picked one as
    shipped (effort 0), the smaller file kept (the header still says
    ``effort``).

    Why.  The estimate judges the models as shipped, but they do not adapt
    alike: on the held-out photographs where an older model estimated best,
    effort 7's fit of the default one (arm-v5) gave the smaller file on
    three of four (by 0.4-2.5 %; on the fourth the older model's own fit
    was 0.4 % smaller), -0.86 % on the four.  Where an effort runs two fits
    (8, 9) the picked model keeps both: giving one to the default model
    gained nothing there (+0.06 %; docs/MODELS.md, nc 0.30.0)."""
    model_id = choose_model(colour, codec, model_ids)
    default = weights.DEFAULT_MODELS[codec.name.lower()]
    if codec is not Codec.ARM or model_id == default or default not in model_ids:
        return [(model_id, effort)]
    from codec.arm import adaptation
    if len(adaptation.fits_for_effort(effort)) != 1:
        return [(model_id, effort)]
    return [(default, effort), (model_id, 0)]


def encode_group(pc: PlaneCodec | None, planes: np.ndarray, bilevel: bool = False,
                 effort: int = 0) -> tuple[Method, bytes, float]:
    """(method, bytes, ideal bits) of one plane group: the model's code or
    the deflate fallback, whichever is smaller (the fallback alone when
    ``pc`` is None)."""
    method, data = fallback.encode(planes, bilevel)
    best = (method, data, 8.0 * len(data))
    if pc is not None:
        coded = pc.encode(planes, effort=effort)
        if len(coded.data) <= len(data):
            best = (Method.MODEL, coded.data, coded.ideal_bits)
    return best


def encode_tile(codec: Codec, model_id: str, mode: Mode, samples: np.ndarray, tile: int,
                use_model: bool = True, effort: int = 0) -> tuple[list[Segment], float]:
    """The segments of one tile's samples (H, W, C) and their ideal bits."""
    pc = plane_codec(codec, model_id) if use_model else None
    segments, ideal = [], 0.0
    for group in plane_groups(mode):
        planes = group.take(samples)
        method, data, bits = encode_group(pc, planes, mode is Mode.BILEVEL, effort)
        segments.append(Segment(group.kind, data, tile, method))
        ideal += bits
    return segments, ideal


def decode_group(pc_factory, segment: Segment, shape: tuple[int, int, int], codec_param: int,
                 bilevel: bool = False) -> np.ndarray:
    h, w, c = shape
    if segment.method is Method.MODEL:
        return pc_factory().decode(segment.data, h, w, c, codec_param)
    return fallback.decode(segment.method, segment.data, shape, bilevel)


def decode_tile(codec: Codec, model_id: str, mode: Mode, segments: dict, height: int, width: int,
                codec_param: int) -> np.ndarray:
    """A tile's samples (H, W, C) from its segments ({kind: Segment})."""
    channels = mode.colour_channels + mode.has_alpha
    dtype = np.uint16 if mode.bit_depth == 16 else np.uint8
    out = np.zeros((height, width, channels), dtype)
    for group in plane_groups(mode):
        segment = segments.get(group.kind)
        if segment is None:
            raise FormatError(f"missing {group.kind.name.lower()} segment")
        n = group.channels.stop - group.channels.start
        planes = decode_group(lambda: plane_codec(codec, model_id), segment, (height, width, n),
                              codec_param, mode is Mode.BILEVEL)
        out[:, :, group.channels] |= planes.astype(dtype) << group.shift
    return out
