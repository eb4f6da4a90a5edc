"""Encode-time latent refinement (codec/lossy/refine.py) with the shipped
lossy model: the search runs on a differentiable copy of the model, the
file holds what it found, and the decoder is the one every file uses."""

import numpy as np
import pytest
import torch

import codec
from codec import weights
from codec.lossy import refine
from codec.pipeline import lossy

MODEL = weights.DEFAULT_MODELS["lossy"]


@pytest.fixture(scope="module")
def crop(photo_large) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(photo_large)[:128, :128])


def rd_cost(rgb: np.ndarray, data: bytes, quality: float) -> float:
    """The loss the refinement lowers, measured on the real file: bits per
    pixel + lambda * 255^2 * MSE of the decoded image."""
    back = np.asarray(codec.decode(data)).astype(np.float64)
    mse = ((back - rgb) ** 2).mean() / 255**2
    lam = lossy.lossy_codec(MODEL).spec.lam(quality)
    return 8 * len(data) / (rgb.shape[0] * rgb.shape[1]) + lam * 255**2 * mse


def test_efforts_below_five_do_not_refine_and_nine_refines_most():
    steps = [refine.steps_for_effort(e) for e in range(1, 10)]
    assert steps[:4] == [0, 0, 0, 0]
    assert steps == sorted(steps) and steps[-1] > steps[6] > 0


def test_the_refiners_copy_gives_the_codecs_means_and_scales(crop):
    """The differentiable copy is built from the integer weights: its means
    and scale levels are the exact networks' (the anchors' pass of the
    first slice, which reads the hyper features alone), up to float32
    rounding of the hyper features at ties."""
    lc = lossy.lossy_codec(MODEL)
    net = lc.refiner().net
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    _, z = lc.encode_side(lc.analysis(x, 4.0))
    feats = lc.params.hyper_features(z)
    no_context = torch.zeros((1, lc.spec.checkerboard_channels, *feats.shape[2:]))
    means, levels = lc.params.slice_params(0, feats, [], lossy.quality_code(4.0),
                                           no_context.double() if lc.spec.checkerboard_channels else None)
    with torch.no_grad():
        m, lv = net.slice_params(0, net.hyper_features(torch.from_numpy(z).float()), [],
                                 torch.tensor([4.0]), no_context if lc.spec.checkerboard_channels else None)
    diff = np.abs(m.numpy() * 2**lc.spec.mean_frac - means)
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.95
    assert np.abs(lv.numpy() - levels).max() <= 1 and np.mean(lv.numpy() == levels) > 0.95


@pytest.mark.parametrize("quality", [2.0, 6.0])
def test_refined_files_cost_less_than_the_analysis_transforms(crop, quality):
    plain = codec.encode(crop, "lossy", quality=quality, effort=4)
    refined = codec.encode(crop, "lossy", quality=quality, effort=8)
    assert refined != plain
    assert rd_cost(crop, refined, quality) < rd_cost(crop, plain, quality)
    assert codec.info(refined)["effort"] == 8


def test_refined_encodes_repeat_exactly(crop):
    a = codec.encode(crop[:64, :96], "lossy", quality=3.0, effort=7)
    b = codec.encode(crop[:64, :96], "lossy", quality=3.0, effort=7)
    assert a == b


def test_refinement_in_windows_assembles_the_hyper_latents(crop, monkeypatch):
    """Images wider than a transform window are refined window by window;
    each window's z lands at its place in the map (a misplaced z would
    cost far more than the refinement saves)."""
    rgb = np.ascontiguousarray(np.concatenate([crop, crop[:, ::-1]], 1)[:100, :200])
    plain = codec.encode(rgb, "lossy", quality=4.0, effort=4)
    monkeypatch.setattr(lossy, "WINDOW", 64)
    refined = codec.encode(rgb, "lossy", quality=4.0, effort=5)
    assert np.asarray(codec.decode(refined)).shape == rgb.shape
    assert rd_cost(rgb, refined, 4.0) < rd_cost(rgb, plain, 4.0)


def test_the_float_network_behind_shipped_weights_rounds_back_to_them():
    """``float_state`` inverts the export: its integer networks round back
    to the shipped integers, and its z prior to the shipped scale levels
    (which is also what lets a training run start from shipped weights)."""
    from models.lossy.export import float_state, integer_stacks, layer_fracs
    from models.lossy.network import LossyAutoencoder

    w = weights.load(MODEL, "lossy")
    lc = lossy.lossy_codec(MODEL)
    net = LossyAutoencoder(lc.spec)
    net.load_state_dict(float_state(w.tensors, w.spec))
    s = lc.spec
    for prefix, stack, in_frac in integer_stacks(net):
        for i, layer, frac in layer_fracs(stack, s, in_frac):
            np.testing.assert_array_equal(torch.round(layer.weight.detach().double() * 2**s.weight_frac).numpy(),
                                          w.tensors[f"{prefix}.{i}.weight"])
            np.testing.assert_array_equal(torch.round(layer.bias.detach().double() * 2**(s.weight_frac + frac)).numpy(),
                                          w.tensors[f"{prefix}.{i}.bias"])
    np.testing.assert_array_equal(net.z_levels().detach().numpy(), w.tensors["z_levels"])
