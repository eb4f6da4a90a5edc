"""Shipped model weights: where they live, how they are identified.

A .nc file names the model it was coded with (``model_id``) and the first 8
bytes of the SHA-256 of its weights file, so a decoder with different
weights refuses the file instead of decoding garbage.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from safetensors.numpy import load_file
from safetensors import safe_open

from models import WEIGHTS_DIR

from .errors import WeightsMismatch

DEFAULT_MODELS = {"arm": "arm-v1", "idf": "idf-v1", "lossy": "lossy-v1"}


def weights_path(model_id: str) -> Path:
    return WEIGHTS_DIR / f"{model_id}.safetensors"


@functools.lru_cache(maxsize=None)
def digest(model_id: str) -> bytes:
    path = weights_path(model_id)
    if not path.exists():
        raise WeightsMismatch(f"model '{model_id}' is not installed (no {path.name})")
    return hashlib.sha256(path.read_bytes()).digest()[:8]


@functools.lru_cache(maxsize=None)
def load(model_id: str) -> tuple[dict, dict]:
    """(tensors, metadata) of an installed model."""
    path = weights_path(model_id)
    digest(model_id)
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata() or {})
    return load_file(str(path)), meta


def require(model_id: str, expected_digest: bytes) -> None:
    """Refuse a file coded with weights other than the installed ones."""
    have = digest(model_id)
    if have != expected_digest:
        raise WeightsMismatch(f"file was coded with other weights for model '{model_id}' "
                              f"(file {expected_digest.hex()}, installed {have.hex()})")


def spec_of(meta: dict) -> dict:
    return json.loads(meta["spec"])
