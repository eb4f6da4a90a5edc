"""The range coder: constriction's queue (range) coder over 256-symbol
categorical rows.  One call codes a whole batch; Python never loops over
symbols.  Frequencies arrive as float64 arrays holding exact integers, so
constriction's own fixed-point quantization sees identical input on encoder
and decoder."""
from __future__ import annotations

import constriction
import numpy as np

_MODEL = constriction.stream.model.Categorical(perfect=False)


class SymbolEncoder:
    def __init__(self):
        self._enc = constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: np.ndarray, frequencies: np.ndarray) -> None:
        if len(symbols):
            self._enc.encode(symbols.astype(np.int32), _MODEL, frequencies)

    def finish(self) -> bytes:
        return self._enc.get_compressed().tobytes()


class SymbolDecoder:
    def __init__(self, data: bytes):
        if len(data) % 4:
            raise ValueError("range-coded stream is not a whole number of 32-bit words")
        self._dec = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype=np.uint32).copy())

    def decode(self, frequencies: np.ndarray) -> np.ndarray:
        if len(frequencies) == 0:
            return np.zeros(0, np.int64)
        return self._dec.decode(_MODEL, frequencies).astype(np.int64)
