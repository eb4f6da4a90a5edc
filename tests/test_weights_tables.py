"""Weights that take their entropy tables from another shipped model
(``codec.weights.TABLES_FROM``): joined at load, exported only when the
tables match, and refused when the referenced model's file differs."""
import json
import shutil

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from codec import weights
from codec.errors import WeightsMismatch

BASE = weights.DEFAULT_MODELS["idf"]


def _base_with_tables() -> str:
    """The newest shipped IDF model that holds its own tables."""
    for model_id in (BASE, "idf-v7"):
        if weights.weights_path(model_id).exists():
            with safe_open(str(weights.weights_path(model_id)), "numpy") as f:
                if "entropy.logistic" in f.keys():
                    return model_id
    pytest.skip("no shipped IDF model with its own tables")


def test_shared_tables_join_at_load_and_check_the_digest(tmp_path, monkeypatch):
    base = _base_with_tables()
    shutil.copy(weights.weights_path(base), tmp_path / f"{base}.safetensors")
    with safe_open(str(weights.weights_path(base)), "numpy") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(weights.weights_path(base)))
    slim = {k: v for k, v in tensors.items() if not k.startswith("entropy.")}
    meta.update({"model_id": "idf-slim", weights.TABLES_FROM: base,
                 weights.TABLES_DIGEST: weights.digest(base).hex()})
    save_file(slim, str(tmp_path / "idf-slim.safetensors"), metadata=meta)
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)

    joined, own = weights.load("idf-slim", "idf"), weights.load(base, "idf")
    assert set(joined.tensors) == set(own.tensors)
    assert all(np.array_equal(joined.tensors[k], own.tensors[k]) for k in own.tensors)
    assert json.loads(joined.meta["spec"]) == own.spec

    # the referenced model's file changed: refused, not decoded with other tables
    meta[weights.TABLES_DIGEST] = "00" * 8
    save_file(slim, str(tmp_path / "idf-bad.safetensors"), metadata=meta)
    with pytest.raises(WeightsMismatch, match="takes its tables"):
        weights.load("idf-bad", "idf")


def test_export_refers_to_tables_only_when_they_match(tmp_path):
    """An exported flow of the shipped spec may leave its tables in the
    shipped model; one whose scale levels differ may not."""
    import torch

    from models.idf.export import export
    from models.idf.network import IDF
    from models.idf.spec import IDFSpec

    base = _base_with_tables()
    spec = IDFSpec.from_dict(weights.load(base, "idf").spec)
    torch.save({"model": IDF(spec).state_dict(), "spec": spec.to_dict(), "step": 0}, tmp_path / "ck.pt")
    export(tmp_path / "ck.pt", tmp_path / "idf-small.safetensors", "idf-small", tables_from=base)
    with safe_open(str(tmp_path / "idf-small.safetensors"), "numpy") as f:
        assert not any(k.startswith("entropy.") for k in f.keys())
        assert f.metadata()[weights.TABLES_FROM] == base
    other = IDFSpec.from_dict({**spec.to_dict(), "log_scale_levels": spec.log_scale_levels - 8})
    torch.save({"model": IDF(other).state_dict(), "spec": other.to_dict(), "step": 0}, tmp_path / "ck2.pt")
    with pytest.raises(SystemExit, match="differs"):
        export(tmp_path / "ck2.pt", tmp_path / "idf-other.safetensors", "idf-other", tables_from=base)
