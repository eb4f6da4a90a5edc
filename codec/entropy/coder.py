"""The range coder: constriction's queue (range) coder over 256-symbol
categorical rows.  One call codes a whole batch; Python never loops over
symbols.  Frequencies arrive as float64 arrays holding exact integers, so
constriction's own fixed-point quantization sees identical input on encoder
and decoder."""
from __future__ import annotations

import constriction
import numpy as np

from codec.errors import FormatError

_MODEL = constriction.stream.model.Categorical(perfect=False)

# the total of every integer frequency table built for this coder (the
# logistic mixtures' CDF tables and the residual groups' tables)
CDF_TOTAL_BITS = 20
CDF_TOTAL = 1 << CDF_TOTAL_BITS


def range_encoder():
    return constriction.stream.queue.RangeEncoder()


def stream_bytes(encoder) -> bytes:
    """A finished stream as bytes: its 32-bit words, little-endian."""
    return encoder.get_compressed().astype("<u4").tobytes()


class RangeDecoder:
    """constriction's range decoder, held by reference.  A reader may decode
    ahead on a copy of ``coder`` and, where that went right, keep the copy
    (``ResidualCoder.decode`` does, so as not to look for escapes group by
    group): it puts the copy back here, and whoever holds this object goes
    on from where the copy stopped."""

    __slots__ = ("coder",)

    def __init__(self, coder):
        self.coder = coder

    def decode(self, model, *args):
        return self.coder.decode(model, *args)


def range_decoder(data: bytes) -> RangeDecoder:
    """A decoder over a stream written by ``stream_bytes``; refuses a length
    that is not whole words (a malformed file, not a programming error)."""
    if len(data) % 4:
        raise FormatError("range-coded stream is not a whole number of 32-bit words")
    return RangeDecoder(constriction.stream.queue.RangeDecoder(
        np.frombuffer(data, dtype="<u4").astype(np.uint32)))


class SymbolEncoder:
    def __init__(self):
        self._enc = range_encoder()

    def encode(self, symbols: np.ndarray, frequencies: np.ndarray) -> None:
        if len(symbols):
            self._enc.encode(symbols.astype(np.int32), _MODEL, frequencies)

    def finish(self) -> bytes:
        return stream_bytes(self._enc)


class SymbolDecoder:
    def __init__(self, data: bytes):
        self._dec = range_decoder(data)

    def decode(self, frequencies: np.ndarray) -> np.ndarray:
        if len(frequencies) == 0:
            return np.zeros(0, np.int64)
        return self._dec.decode(_MODEL, frequencies).astype(np.int64)
