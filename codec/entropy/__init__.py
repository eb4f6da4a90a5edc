"""Entropy coding: integer probability tables (models) apart from the range
coder that writes the bits (constriction), as in constriction's own split."""
from .coder import (
           SymbolDecoder,
           SymbolEncoder,
           range_decoder,
           range_encoder,
           stream_bytes,
)
from .logistic import LogisticMixtureTables
from .residual import ResidualCoder

__all__ = ["LogisticMixtureTables", "ResidualCoder", "SymbolDecoder", "SymbolEncoder",
           "range_decoder", "range_encoder", "stream_bytes"]
