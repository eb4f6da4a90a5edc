"""Which model the lossless encoder codes an image with: the one its
estimate picks and, where the ARM fits its network to the image once
(effort 7), also the default model, fitted, beside the pick as shipped,
keeping the smaller file (codec/pipeline/lossless.py, ``models_to_try``)."""
import numpy as np
import pytest

from codec import api
from codec.arm import adaptation
from codec.format.container import Codec
from codec.pipeline import lossless
from codec.weights import DEFAULT_MODELS


@pytest.mark.parametrize("picked, codec, effort, expected", [
    ("arm-v4", Codec.ARM, 7, [("arm-v5", 7), ("arm-v4", 0)]),   # the pick as shipped
    ("arm-v4", Codec.ARM, 9, [("arm-v4", 9)]),       # two fits: both the picked model's
    ("arm-v4", Codec.ARM, 6, [("arm-v4", 6)]),       # no fit: the estimate decides
    ("arm-v5", Codec.ARM, 9, [("arm-v5", 9)]),
    ("idf-v9", Codec.IDF, 9, [("idf-v9", 9)])])
def test_the_default_model_is_also_tried_where_the_network_adapts(monkeypatch, picked, codec,
                                                                   effort, expected):
    assert DEFAULT_MODELS["arm"] == "arm-v5"
    monkeypatch.setattr(lossless, "choose_model", lambda colour, codec, ids: picked)
    ids = ["arm-v5", "arm-v4", "arm-v3"] if codec is Codec.ARM else ["idf-v9"]
    assert lossless.models_to_try(np.zeros((8, 8, 3), np.uint8), codec, ids, effort) == expected


def test_a_pinned_model_is_the_only_one_tried(monkeypatch):
    monkeypatch.setattr(lossless, "choose_model", lambda colour, codec, ids: ids[0])
    assert lossless.models_to_try(np.zeros((8, 8, 3), np.uint8), Codec.ARM, ["arm-v3"], 7) == [("arm-v3", 7)]


def test_the_smaller_of_the_two_adapted_files_is_kept(photo_large, monkeypatch):
    """Both encodes adapt (a short fit each; the size floor lifted); the
    file is byte for byte the smaller of the two single-model files,
    whichever order they are tried in, names its model and decodes exactly."""
    monkeypatch.setattr(adaptation, "MIN_PIXELS", 0)
    monkeypatch.setattr(adaptation, "_FITS", {7: (adaptation.Fit(30, (8, 4), 1 << 10),)})
    photo = photo_large.crop((0, 0, 128, 96))        # six encodes: a quarter of the photograph
    singles = {}
    for model in ("arm-v3", "arm-v5"):
        monkeypatch.setattr(lossless, "models_to_try", lambda *a, m=model: [(m, 7)])
        singles[model] = api.encode(photo, "arm", effort=7)
    assert singles["arm-v3"] != singles["arm-v5"]
    smaller = min(singles, key=lambda m: len(singles[m]))
    for order in (["arm-v3", "arm-v5"], ["arm-v5", "arm-v3"]):      # neither first nor last wins
        monkeypatch.setattr(lossless, "models_to_try", lambda *a, o=order: [(m, 7) for m in o])
        data = api.encode(photo, "arm", effort=7)
        assert data == singles[smaller]
        assert api.info(data)["model"] == smaller
        np.testing.assert_array_equal(np.asarray(api.decode(data)), np.asarray(photo))


def test_effort_7_fits_the_default_model_where_the_estimate_picks_another(photo_large, monkeypatch):
    """The path as shipped: the estimate's pick (forced) is tried as shipped
    and the default model fitted (one short fit, the size floor lifted);
    the file is the smaller and decodes exactly."""
    monkeypatch.setattr(adaptation, "MIN_PIXELS", 0)
    monkeypatch.setattr(adaptation, "_FITS", {7: (adaptation.Fit(30, (8, 4), 1 << 10),)})
    monkeypatch.setattr(lossless, "choose_model", lambda colour, codec, ids: "arm-v3")
    data = api.encode(photo_large, "arm", effort=7)
    shipped = api.encode(photo_large, "arm", effort=6)       # the pick as shipped
    assert api.info(shipped)["model"] == "arm-v3"
    assert len(data) <= len(shipped)
    np.testing.assert_array_equal(np.asarray(api.decode(data)), np.asarray(photo_large))
