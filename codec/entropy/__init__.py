"""Entropy coding: integer probability tables (models) apart from the range
coder that writes the bits (constriction), as in constriction's own split."""
from .coder import SymbolDecoder, SymbolEncoder
from .logistic import LogisticMixtureTables

__all__ = ["LogisticMixtureTables", "SymbolDecoder", "SymbolEncoder"]
