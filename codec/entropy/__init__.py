"""Entropy coding: integer probability tables (models) apart from the range
coder that writes the bits (constriction), as in constriction's own split.

The ARM's ``LogisticMixtureTables`` is imported from ``.logistic`` itself,
not from here: its row kernel is compiled code (numba), whose import alone
would cost a decode process that does not need it (the IDF's, the lossy
codec's) about 0.15 s."""
from .coder import (
           SymbolDecoder,
           SymbolEncoder,
           range_decoder,
           range_encoder,
           stream_bytes,
)
from .residual import ResidualCoder

__all__ = ["ResidualCoder", "SymbolDecoder", "SymbolEncoder",
           "range_decoder", "range_encoder", "stream_bytes"]

