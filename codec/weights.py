"""Shipped model weights: where they live, how they are identified, and the
one cache of loaded models.

A .nc file names the model it was coded with (``model_id``) and the first 8
bytes of the SHA-256 of its weights file, so a decoder with different
weights refuses the file instead of decoding garbage.

A weights file may leave its entropy tables (``entropy.*``) in another
shipped model of the same spec, naming it and its digest in the metadata
(``TABLES_FROM``, ``TABLES_DIGEST``; idf-v8 and idf-v9 take idf-v7's, 4.7 MB each would
otherwise repeat).  The loader joins them and refuses a referenced model
whose digest differs, so the chain from a file's digest to every integer it
is decoded with holds.  Everything cached here
is keyed by the weights file itself (path, size, modification time), so
pointing ``WEIGHTS_DIR`` elsewhere (``NC_WEIGHTS_DIR``, tests) needs no
cache clearing.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open
from safetensors.numpy import load_file

from codec.errors import NcError, WeightsMismatch
from models import WEIGHTS_DIR, int_storage

DEFAULT_MODELS = {"arm": "arm-v5", "idf": "idf-v9", "lossy": "lossy-v12"}
# Models the lossless encoder chooses among, image by image, when none is
# named: arm-v5 continues arm-v4 (with a fresh schedule), arm-v4 continues
# arm-v3 on the 364 further photographs, arm-v3 was
# trained on the photographs at several sizes, arm-v2 with grain
# augmentation, arm-v1 on neither; each codes some photographs better
# (docs/MODELS.md).
CANDIDATE_MODELS = {"arm": ("arm-v5", "arm-v4", "arm-v3", "arm-v2", "arm-v1")}


def candidates(codec_name: str) -> list[str]:
    """The installed models the encoder may choose among for ``codec_name``."""
    ids = CANDIDATE_MODELS.get(codec_name, (DEFAULT_MODELS[codec_name],))
    return [m for m in ids if weights_path(m).exists()] or [DEFAULT_MODELS[codec_name]]


@dataclass(frozen=True)
class Weights:
    tensors: dict
    meta: dict
    spec: dict       # the model's spec, as stored in the metadata
    digest: bytes


def weights_path(model_id: str) -> Path:
    return WEIGHTS_DIR / f"{model_id}.safetensors"


def _stamp(model_id: str) -> tuple[str, int, int]:
    path = weights_path(model_id)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise WeightsMismatch(f"model '{model_id}' is not installed (no {path.name})") from None
    return str(path), st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=None)
def _digest(stamp: tuple[str, int, int]) -> bytes:
    return hashlib.sha256(Path(stamp[0]).read_bytes()).digest()[:8]


TABLES_FROM, TABLES_DIGEST = "tables_from", "tables_digest"


@functools.lru_cache(maxsize=None)
def _load(stamp: tuple[str, int, int]) -> Weights:
    with safe_open(stamp[0], framework="numpy") as f:
        meta = dict(f.metadata() or {})
    tensors = int_storage.widen(load_file(stamp[0]), meta)
    if TABLES_FROM in meta:
        base_id = meta[TABLES_FROM]
        base = _load(_stamp(base_id))
        if base.digest.hex() != meta.get(TABLES_DIGEST):
            raise WeightsMismatch(f"{Path(stamp[0]).name} takes its tables from model '{base_id}', "
                                  f"whose installed weights differ (expected {meta.get(TABLES_DIGEST)}, "
                                  f"installed {base.digest.hex()})")
        tensors.update({k: v for k, v in base.tensors.items() if k.startswith("entropy.")})
    return Weights(tensors, meta, json.loads(meta.get("spec", "{}")), _digest(stamp))


@functools.lru_cache(maxsize=None)
def _instance(cls, model_id: str, stamp: tuple[str, int, int]):
    return cls(model_id)


def digest(model_id: str) -> bytes:
    return _digest(_stamp(model_id))


def load(model_id: str, kind: str) -> Weights:
    """The installed weights of ``model_id``, which must be a ``kind`` model."""
    w = _load(_stamp(model_id))
    if w.meta.get("kind") != kind:
        raise NcError(f"model '{model_id}' is a {w.meta.get('kind')} model, not {kind}")
    return w


def codec_instance(cls, model_id: str):
    """``cls(model_id)``, built once per weights file."""
    return _instance(cls, model_id, _stamp(model_id))


def require(model_id: str, expected_digest: bytes) -> None:
    """Refuse a file coded with weights other than the installed ones."""
    have = digest(model_id)
    if have != expected_digest:
        raise WeightsMismatch(f"file was coded with other weights for model '{model_id}' "
                              f"(file {expected_digest.hex()}, installed {have.hex()})")
