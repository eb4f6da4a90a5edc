"""Entropy coding: integer probability tables (models) apart from the range
coder that writes the bits (constriction), as in constriction's own split.

``LogisticMixtureTables`` (the ARM's) is loaded on first use: its row
kernel is compiled code (numba), whose import alone costs a decode process
that does not need it (the IDF's, the lossy codec's) about 0.15 s."""
from .coder import (
           SymbolDecoder,
           SymbolEncoder,
           range_decoder,
           range_encoder,
           stream_bytes,
)
from .residual import ResidualCoder

__all__ = ["LogisticMixtureTables", "ResidualCoder", "SymbolDecoder", "SymbolEncoder",
           "range_decoder", "range_encoder", "stream_bytes"]


def __getattr__(name: str):
    if name == "LogisticMixtureTables":
        from .logistic import LogisticMixtureTables
        return LogisticMixtureTables
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
