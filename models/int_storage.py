"""Shipped integer weights stored in the narrowest integer type that holds
them, and read back in the type they were exported in.

Why.  The integer networks' weights are 8-bit (the flow) or 16-bit (the
ARM) values that the exporters produce as int32 or int64 arrays; stored as
such, three quarters of an IDF weights file are zero bytes, and the shipped
weights share one size budget in the repository.  The narrowing is lossless
(a tensor is narrowed only to a type that holds every one of its values)
and the metadata names each narrowed tensor's exported type, so a loader
hands the codec exactly the arrays the exporter made.  Files written before
this (no such metadata) read as they always did.
"""
from __future__ import annotations

import json

import numpy as np

WIDEN_KEY = "widen"     # metadata: JSON {tensor name: exported dtype} of narrowed tensors
_NARROW = (np.int8, np.int16, np.int32)


def narrow(tensors: dict) -> tuple[dict, dict]:
    """(the tensors, each integer one in the narrowest type holding its
    values; the metadata entry that restores their types, or {})."""
    out, widen = {}, {}
    for name, t in tensors.items():
        t = np.asarray(t)
        if t.dtype.kind == "i" and t.size:
            lo, hi = int(t.min()), int(t.max())
            for dtype in _NARROW:
                info = np.iinfo(dtype)
                if np.dtype(dtype).itemsize < t.dtype.itemsize and info.min <= lo and hi <= info.max:
                    widen[name] = t.dtype.name
                    t = t.astype(dtype)
                    break
        out[name] = t
    return out, ({WIDEN_KEY: json.dumps(widen, sort_keys=True)} if widen else {})


def widen(tensors: dict, meta: dict | None) -> dict:
    """NumPy tensors as exported: the inverse of :func:`narrow`."""
    types = json.loads((meta or {}).get(WIDEN_KEY, "{}"))
    return {name: t.astype(types[name]) if name in types else t for name, t in tensors.items()}


def widen_torch(tensors: dict, meta: dict | None) -> dict:
    """PyTorch tensors as exported (training reads shipped weights this way)."""
    import torch

    types = json.loads((meta or {}).get(WIDEN_KEY, "{}"))
    return {name: t.to(getattr(torch, types[name])) if name in types else t
            for name, t in tensors.items()}
