"""The lossy pipeline, end to end, with a randomly initialised model written
to a temporary weights folder (the shipped lossy weights come from training;
these tests check the coding, not the quality)."""

import numpy as np
import pytest
import torch
from PIL import Image

import codec

MODEL = "lossy-test"


SPECS = {"plain": {}, "quality-input": {"quality_input": True},
         "checkerboard": {"quality_input": True, "checkerboard_channels": 8}}


@pytest.fixture(scope="module", params=list(SPECS))
def lossy_weights(request, tmp_path_factory, temp_weights_dir):
    from models.lossy.export import export
    from models.lossy.network import LossyAutoencoder
    from models.lossy.spec import LossySpec

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    net = LossyAutoencoder(LossySpec(n=16, m=32, hyper=16, **SPECS[request.param]))
    ck = d / "ck.pt"
    torch.save({"spec": net.spec.to_dict(), "model": net.state_dict(), "step": 0}, ck)
    export(ck, d / f"{MODEL}.safetensors", MODEL)
    yield temp_weights_dir(d)


def test_decoding_is_deterministic(lossy_weights, photo):
    from codec.pipeline.lossy import lossy_codec

    rgb = np.asarray(photo)
    lc = lossy_codec(MODEL)
    side, latent = lc.encode(rgb, 3.0)
    a = lc.decode(side, latent, *rgb.shape[:2], 3.0)
    b = lc.decode(side, latent, *rgb.shape[:2], 3.0)
    assert a.shape == rgb.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_the_decoder_rebuilds_the_encoders_latents(lossy_weights, photo):
    """Encoder and decoder walk the slices (and checkerboard halves) in one
    order and derive the same means and levels: the decoder's y_hat is the
    encoder's, value for value."""
    from codec.pipeline.lossy import lossy_codec

    rgb = np.asarray(photo)
    lc = lossy_codec(MODEL)
    walks, walk = [], lc._code_slices

    def recorded(*args):
        out = walk(*args)
        walks.append(np.concatenate(out, 1))
        return out

    lc._code_slices = recorded
    try:
        side, latent = lc.encode(rgb, 5.0)
        lc.decode(side, latent, *rgb.shape[:2], 5.0)
    finally:
        del lc._code_slices
    assert len(walks) == 2
    np.testing.assert_array_equal(walks[0], walks[1])


def test_the_checkerboard_context_reads_the_anchors(lossy_weights):
    """A checkerboard model's second pass depends on the decoded anchors."""
    from codec.pipeline.lossy import lossy_codec
    from models.lossy.network import anchor_mask

    lc = lossy_codec(MODEL)
    s = lc.spec
    if not s.checkerboard_channels:
        pytest.skip("no checkerboard context")
    rng = np.random.default_rng(0)
    feats = lc.params.hyper_features(rng.integers(-3, 4, (1, s.hyper, 2, 2)))
    anchor = np.broadcast_to(anchor_mask(8, 8).numpy() > 0, (1, s.m // s.slices, 8, 8))
    anchors = np.where(anchor, rng.integers(-200, 200, anchor.shape), 0)
    plain = lc.params.slice_params(0, feats, [], 3000)
    with_context = lc.params.slice_params(0, feats, [], 3000, lc.params.context_features(0, anchors))
    assert not np.array_equal(plain[0], with_context[0])


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA"])
def test_modes_and_sizes(lossy_weights, photo, mode):
    for size in ((1, 1), (13, 7), (48, 40)):
        img = photo.crop((0, 0) + size).convert(mode)
        data = codec.encode(img, model=MODEL, quality=2.5)
        out = codec.decode(data)
        assert out.mode == mode and out.size == img.size
        if mode in ("LA", "RGBA"):  # alpha is lossless
            np.testing.assert_array_equal(np.asarray(out)[..., -1], np.asarray(img)[..., -1])
        assert codec.info(data)["quality"] == 2.5


def test_quality_is_validated(lossy_weights, photo):
    with pytest.raises(codec.NcError, match="quality"):
        codec.encode(photo, model=MODEL, quality=9)
    with pytest.raises(codec.UnsupportedImage, match="bilevel"):
        codec.encode(photo.convert("1"), model=MODEL, quality=3)


def test_target_bpp_finds_a_file_within_the_target(lossy_weights, photo):
    big = codec.encode_image(photo, model=MODEL, quality=8.0)
    small = codec.encode_image(photo, model=MODEL, quality=1.0)
    target = (big.bpp + small.bpp) / 2
    r = codec.encode_image(photo, model=MODEL, target_bpp=target)
    assert r.bpp <= target
    with pytest.raises(codec.NcError, match="below the smallest"):
        codec.encode(photo, model=MODEL, target_bpp=small.bpp / 2)


def test_cross_configuration_decode_differs_by_at_most_one_level(lossy_weights, photo, tmp_path):
    """Latents decode bit-exactly anywhere; only the float32 synthesis may move
    a pixel, by one level at most."""
    import os
    import subprocess
    import sys

    from test_cross_config import NARROW_ENV, ROOT

    src, nc = tmp_path / "in.png", tmp_path / "a.nc"
    photo.save(src)
    nc.write_bytes(codec.encode(photo, model=MODEL, quality=4))
    outs = []
    for i, extra in enumerate(({}, NARROW_ENV)):
        env = {k: v for k, v in os.environ.items() if k not in NARROW_ENV}
        env.update(extra, NC_WEIGHTS_DIR=str(lossy_weights))
        out = tmp_path / f"out{i}.png"
        subprocess.run([sys.executable, "-m", "codec.cli", "decode", str(nc), "-o", str(out)],
                       env=env, check=True, cwd=ROOT, timeout=300)
        outs.append(np.asarray(Image.open(out)).astype(int))
    assert np.abs(outs[0] - outs[1]).max() <= 1


def test_quality_feature_is_the_same_in_training_and_in_the_codec():
    """The trainer's quality channel and the codec's integer feature agree at
    every quality the header can hold, spanning 0 .. 2^act_frac."""
    from models.lossy.network import LossyAutoencoder
    from models.lossy.spec import QUALITY_SCALE, LossySpec

    net = LossyAutoencoder(LossySpec(n=8, m=16, hyper=8, quality_input=True))
    codes = np.arange(QUALITY_SCALE, 8 * QUALITY_SCALE + 1)
    like = torch.zeros(len(codes), 1, 1, 1)
    trained = net.quality_channel(torch.tensor(codes / QUALITY_SCALE), like)[:, 0, 0, 0]
    coded = [net.spec.quality_feature(int(c)) for c in codes]
    np.testing.assert_array_equal((trained * 2**net.spec.act_frac).numpy(), coded)
    assert coded[0] == 0 and coded[-1] == 2**net.spec.act_frac
    assert all(a <= b for a, b in zip(coded, coded[1:]))


def test_quality_input_changes_the_entropy_parameters(lossy_weights, photo):
    """With a quality input the slice networks' means and levels follow the
    quality (the plain model's depend on the latents alone)."""
    from codec.pipeline.lossy import lossy_codec

    lc = lossy_codec(MODEL)
    z = np.zeros((1, lc.spec.hyper, 1, 1), np.int64)
    feats = lc.params.hyper_features(z)
    low = lc.params.slice_params(0, feats, [], 1000)
    high = lc.params.slice_params(0, feats, [], 8000)
    differs = any(not np.array_equal(a, b) for a, b in zip(low, high))
    assert differs == lc.spec.quality_input
