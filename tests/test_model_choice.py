"""Which model the lossless encoder codes an image with: the one its
estimate picks and, where the ARM fits its network to the image once
(effort 7), also the default model, keeping the smaller file
(codec/pipeline/lossless.py, ``models_to_try``).  The effort's fits are
shared between the two encodes, the default model's first (``fits_share``:
at effort 7 the one fit is the default model's)."""
import numpy as np
import pytest
import torch

from codec import api
from codec.arm import adaptation
from codec.format.container import Codec
from codec.pipeline import lossless
from codec.weights import DEFAULT_MODELS


@pytest.mark.parametrize("fits, share, expected", [
    (("a", "b"), (0, 1), ("a", "b")), (("a", "b"), (0, 2), ("a",)), (("a", "b"), (1, 2), ("b",)),
    (("a",), (0, 2), ("a",)), (("a",), (1, 2), ()), ((), (1, 2), ())])
def test_two_encodes_share_the_efforts_fits(fits, share, expected):
    assert lossless.fits_share(fits, share) == expected


@pytest.mark.parametrize("picked, codec, effort, expected", [
    ("arm-v4", Codec.ARM, 7, ["arm-v5", "arm-v4"]),
    ("arm-v4", Codec.ARM, 9, ["arm-v4"]),             # two fits: both the picked model's
    ("arm-v4", Codec.ARM, 6, ["arm-v4"]),            # no fit: the estimate decides
    ("arm-v5", Codec.ARM, 9, ["arm-v5"]),
    ("idf-v9", Codec.IDF, 9, ["idf-v9"])])
def test_the_default_model_is_also_tried_where_the_network_adapts(monkeypatch, picked, codec,
                                                                   effort, expected):
    assert DEFAULT_MODELS["arm"] == "arm-v5"
    monkeypatch.setattr(lossless, "choose_model", lambda colour, codec, ids: picked)
    ids = ["arm-v5", "arm-v4", "arm-v3"] if codec is Codec.ARM else ["idf-v9"]
    assert lossless.models_to_try(np.zeros((8, 8, 3), np.uint8), codec, ids, effort) == expected


def test_a_pinned_model_is_the_only_one_tried(monkeypatch):
    monkeypatch.setattr(lossless, "choose_model", lambda colour, codec, ids: ids[0])
    assert lossless.models_to_try(np.zeros((8, 8, 3), np.uint8), Codec.ARM, ["arm-v3"], 9) == ["arm-v3"]


def test_the_smaller_of_the_two_adapted_files_is_kept(photo_large, monkeypatch):
    """Both encodes adapt (a short fit each, the same in either share; the
    size floor lifted); the file is byte for byte the smaller of the two
    single-model files, whichever order they are tried in, names its model
    and decodes exactly."""
    monkeypatch.setattr(adaptation, "MIN_PIXELS", 0)
    fit = adaptation.Fit(30, (8, 4), 1 << 10)
    monkeypatch.setattr(adaptation, "_FITS", {7: (fit, fit)})
    # the pair in turn, on the threads the singles had: the same fits give the same integers
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    singles = {}
    for model in ("arm-v3", "arm-v5"):          # each model alone, with one of the fits
        monkeypatch.setattr(lossless, "models_to_try", lambda *a, m=model: [m])
        monkeypatch.setattr(adaptation, "_FITS", {7: (fit,)})
        singles[model] = api.encode(photo_large, "arm", effort=7)
    assert singles["arm-v3"] != singles["arm-v5"]
    smaller = min(singles, key=lambda m: len(singles[m]))
    monkeypatch.setattr(adaptation, "_FITS", {7: (fit, fit)})
    for order in (["arm-v3", "arm-v5"], ["arm-v5", "arm-v3"]):      # neither first nor last wins
        monkeypatch.setattr(lossless, "models_to_try", lambda *a, o=order: o)
        data = api.encode(photo_large, "arm", effort=7)
        assert data == singles[smaller]
        assert api.info(data)["model"] == smaller
        np.testing.assert_array_equal(np.asarray(api.decode(data)), np.asarray(photo_large))


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
