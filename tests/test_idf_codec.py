"""The IDF pipeline, end to end, with a randomly initialised flow written to
a temporary weights folder (shipped weights come from training; these tests
check exact invertibility and coding, not compression)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import codec

MODEL = "idf-test"


@pytest.fixture(scope="module", params=[(2, 1, False), (4, 1, False), (2, 3, False), (2, 3, True)],
                ids=["bipartite", "quadripartite", "grouped-prior", "checkerboard-prior"])
def idf_weights(request, tmp_path_factory, temp_weights_dir):
    from models.idf.export import export
    from models.idf.network import IDF
    from models.idf.spec import IDFSpec

    partitions, groups, checkerboard = request.param
    d = tmp_path_factory.mktemp(f"idf{partitions}-{groups}-{int(checkerboard)}")
    torch.manual_seed(partitions + groups)
    net = IDF(IDFSpec(partitions=partitions, couplings=2, hidden=8, prior_groups=groups,
                      prior_checkerboard=checkerboard))
    with torch.no_grad():  # non-zero shifts, so the test exercises the inverse
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    ck = d / "ck.pt"
    torch.save({"spec": net.spec.to_dict(), "model": net.state_dict(), "step": 0}, ck)
    export(ck, d / f"{MODEL}.safetensors", MODEL)
    yield temp_weights_dir(d)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (9, 5), (48, 40)])
def test_idf_round_trips_exactly(idf_weights, photo, mode, size):
    img = photo.crop((0, 0) + size).convert(mode)
    data = codec.encode(img, codec="idf", model=MODEL)
    out = codec.decode(data)
    assert out.mode == mode
    np.testing.assert_array_equal(np.asarray(out), np.asarray(img))


def test_idf_shifts_are_not_trivial(idf_weights, photo):
    from codec.idf.codec import IDFPlaneCodec

    flow = IDFPlaneCodec(MODEL).flow
    x = np.asarray(photo)[:40, :48].astype(np.float32).transpose(2, 0, 1)
    z, _ = flow.forward(x)[0]
    plain = np.split(torch.nn.functional.pixel_unshuffle(torch.from_numpy(x - 128)[None], 2)[0].numpy(), 2)
    assert not np.array_equal(z, plain[0]) and not np.array_equal(z, plain[1][::-1])


@pytest.mark.parametrize("cin, cout, k", [(6, 32, 3), (32, 6, 3), (24, 24, 3), (32, 32, 1)])
def test_exact_convolution_matches_pytorch(cin, cout, k):
    """The codec's NumPy convolution (matrix products, no PyTorch) gives
    PyTorch's float64 convolution's integers, in both of its orders (a layer
    that widens and one that narrows), with odd sizes; and its squeeze is
    pixel_unshuffle."""
    from models.idf.integer import ExactConv, squeeze, unsqueeze

    rng = np.random.default_rng(cin + cout)
    x = rng.integers(-255, 256, (cin, 13, 7)).astype(np.float32)
    w = rng.integers(-127, 128, (cout, cin, k, k)).astype(np.float32)
    b = rng.integers(-2**20, 2**20, cout).astype(np.float32)
    want = torch.nn.functional.conv2d(torch.from_numpy(x).double()[None], torch.from_numpy(w).double(),
                                      torch.from_numpy(b).double(), padding=k // 2)[0].numpy()
    np.testing.assert_array_equal(ExactConv(w, b)(x), want)
    y = rng.integers(-9, 9, (3, 8, 6)).astype(np.float32)
    t = torch.from_numpy(y)[None]
    np.testing.assert_array_equal(squeeze(y), torch.nn.functional.pixel_unshuffle(t, 2)[0].numpy())
    np.testing.assert_array_equal(unsqueeze(squeeze(y)), y)


@pytest.mark.parametrize("cin, k", [(1024, 1), (160, 3)])
def test_a_layer_past_float32s_exact_range_computes_in_float64(cin, k):
    """Wider couplings stay exact by construction: a layer whose partial
    sums may reach 2^24 (here 8-bit weights near their limit over a wide
    input) computes in float64, and gives the integers of an int64
    convolution, where float32 products would round them."""
    from models.idf.integer import IntegerNet
    from models.idf.spec import IDFSpec

    rng = np.random.default_rng(cin)
    w = (127 - rng.integers(0, 4, (3, cin, k, k))).astype(np.float32)
    b = np.zeros(3, np.float32)
    x = rng.integers(200, 256, (cin, 5, 4)).astype(np.float32)
    net = IntegerNet([(w, b)], IDFSpec())
    assert net.layers[0].dtype == np.float64
    acc, _ = net(x)
    xi = torch.from_numpy(x.astype(np.int64))[None]
    want = torch.nn.functional.conv2d(xi.double(), torch.from_numpy(w).double(), padding=k // 2)[0].numpy()
    assert np.abs(want).max() >= 2**24          # past float32's exact integers
    np.testing.assert_array_equal(acc, want)
    f32 = np.einsum("oi,ihw->ohw", w[:, :, k // 2, k // 2], x, dtype=np.float32) if k == 1 else None
    if f32 is not None:
        assert not np.array_equal(f32, want)    # float32 would have rounded


def test_idf_cross_configuration(idf_weights, photo, tmp_path):
    from test_cross_config import NARROW_ENV, ROOT

    src = tmp_path / "in.png"
    photo.save(src)
    files = []
    for i, extra in enumerate(({}, NARROW_ENV)):
        env = {k: v for k, v in os.environ.items() if k not in NARROW_ENV}
        env.update(extra, NC_WEIGHTS_DIR=str(idf_weights))
        nc = tmp_path / f"{i}.nc"
        subprocess.run([sys.executable, "-c", "import sys, codec; from PIL import Image; "
                        "open(sys.argv[2], 'wb').write(codec.encode(Image.open(sys.argv[1]), "
                        f"codec='idf', model='{MODEL}'))", str(src), str(nc)],
                       env=env, check=True, cwd=ROOT, timeout=300)
        files.append(nc)
        back = tmp_path / f"{i}.png"
        other = {} if extra else NARROW_ENV
        env = {k: v for k, v in os.environ.items() if k not in NARROW_ENV}
        env.update(other, NC_WEIGHTS_DIR=str(idf_weights))
        subprocess.run([sys.executable, "-m", "codec.cli", "decode", str(nc), "-o", str(back)],
                       env=env, check=True, cwd=ROOT, timeout=300)
        np.testing.assert_array_equal(np.asarray(Image.open(back)), np.asarray(photo))
    assert files[0].read_bytes() == files[1].read_bytes()


@pytest.mark.parametrize("groups, checkerboard", [(1, False), (3, False), (3, True)])
def test_idf_codec_codes_at_the_training_networks_rate(idf_weights, photo_large, groups, checkerboard):
    """The codec's ideal size equals the training network's code length: the
    integer priors put their means and scales where training put them (a
    mismatch once made trained weights code at 4x their rate), group by group
    when the prior is grouped, half by half when it is a checkerboard.  The
    network is a mildly perturbed fresh one, so its latents stay in the range
    where training's float form and the integer form round alike."""
    from codec.idf.codec import PLAIN, IDFPlaneCodec
    from models.idf.export import export
    from models.idf.network import IDF
    from models.idf.spec import IDFSpec

    torch.manual_seed(4)
    net = IDF(IDFSpec(partitions=4, couplings=2, hidden=8, prior_groups=groups,
                      prior_checkerboard=checkerboard))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.03)
        for prior in net.priors:  # means of a few latent units, broad scales (e^3)
            half = prior.bias.numel() // 2
            prior.bias[:half] = torch.randn(half)
            prior.bias[half:] = 3.0
    ck = idf_weights / "rate-ck.pt"
    torch.save({"spec": net.spec.to_dict(), "model": net.state_dict(), "step": 0}, ck)
    model = f"idf-rate{groups}{'c' if checkerboard else ''}"
    export(ck, idf_weights / f"{model}.safetensors", model)
    pixels = np.asarray(photo_large)[:128, :128].copy()
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    with torch.no_grad():
        trained = float(net.eval()(x))
    coded = IDFPlaneCodec(model).encode(pixels, layout=PLAIN).ideal_bits
    assert coded == pytest.approx(trained, rel=0.01)


@pytest.mark.parametrize("model_id", ["idf-v2", "idf-v6", "idf-v7"])
def test_shipped_idf_weights_convert_back_to_the_same_training_network(tmp_path, model_id):
    """A run whose folder is lost continues from the shipped flow
    (``--init-from models/weights/idf-v6.safetensors``): re-exporting the
    recovered float network must give back exactly the shipped integers,
    whatever the prior: grouped in checkerboard halves (idf-v6), the same
    with its own entropy tables retrained (idf-v7) or neither (idf-v2; the
    grouped idf-v4 left the tree in nc 0.27, ``git show
    45403f5:models/weights/idf-v4.safetensors``)."""
    from pathlib import Path

    import numpy as np
    from safetensors.numpy import load_file

    from models.idf.export import export

    shipped = Path(__file__).parents[1] / "models" / "weights" / f"{model_id}.safetensors"
    export(shipped, tmp_path / "again.safetensors", model_id)
    a, b = load_file(str(shipped)), load_file(str(tmp_path / "again.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _trained_looking(spec, seed: int):
    """An IDF of ``spec`` with every weight moved off its initial value
    (seeded), so a warm start or a frozen part has something to preserve."""
    from models.idf.network import IDF

    torch.manual_seed(seed)
    net = IDF(spec)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


def test_grouped_prior_warm_starts_at_the_ungrouped_code_length(photo):
    """``--prior-groups`` from an ungrouped flow starts exactly where that
    flow is (group_prior_state), so a warm-started run only gains."""
    from models.idf.network import IDF
    from models.idf.spec import IDFSpec
    from models.idf.train import group_prior_state

    old = _trained_looking(IDFSpec(couplings=2, hidden=8), 5)
    spec = IDFSpec(couplings=2, hidden=8, prior_groups=3)
    new = IDF(spec)
    new.load_state_dict(group_prior_state(old.state_dict(), old.spec.to_dict(), spec, new))
    x = torch.from_numpy(np.asarray(photo)[:64, :64].copy()).permute(2, 0, 1)[None]
    with torch.no_grad():
        assert float(new(x)) == pytest.approx(float(old(x)), rel=1e-6)


def test_checkerboard_prior_warm_starts_at_the_code_length_without_one(photo):
    """``--prior-checkerboard`` from a grouped flow starts exactly where that
    flow is (spatial_prior_state): each non-anchor network begins as its
    anchor network, blind to the anchors it now also sees."""
    from models.idf.network import IDF
    from models.idf.spec import IDFSpec
    from models.idf.train import spatial_prior_state

    old = _trained_looking(IDFSpec(couplings=2, hidden=8, prior_groups=3), 6)
    spec = IDFSpec(couplings=2, hidden=8, prior_groups=3, prior_checkerboard=True)
    new = IDF(spec)
    new.load_state_dict(spatial_prior_state(old.state_dict(), old.spec.to_dict(), spec, new))
    x = torch.from_numpy(np.asarray(photo)[:64, :64].copy()).permute(2, 0, 1)[None]
    with torch.no_grad():
        assert float(new(x)) == pytest.approx(float(old(x)), rel=1e-6)
        # and the anchors do reach the non-anchor half once its weights move
        for p in new.priors[0].spatial_nets[0].parameters():
            p.add_(torch.randn_like(p) * 0.05)
        assert float(new(x)) != pytest.approx(float(old(x)), rel=1e-6)


def test_wider_couplings_warm_start_at_the_narrow_code_length(photo):
    """``--hidden`` above the init's widens every coupling network without
    changing the flow (wider_coupling_state): the new units' outgoing weights
    start at zero, so the latents and code length are the narrow model's
    until they move, and they do move the flow once those weights do."""
    from models.idf.network import IDF
    from models.idf.spec import IDFSpec
    from models.idf.train import wider_coupling_state

    old = _trained_looking(IDFSpec(couplings=2, hidden=8, prior_groups=3, prior_checkerboard=True), 7)
    spec = IDFSpec(couplings=2, hidden=12, prior_groups=3, prior_checkerboard=True)
    new = IDF(spec)
    new.load_state_dict(wider_coupling_state(old.state_dict(), old.spec.to_dict(), spec, new))
    x = torch.from_numpy(np.asarray(photo)[:64, :64].copy()).permute(2, 0, 1)[None]
    with torch.no_grad():
        assert float(new(x)) == float(old(x))
        for (z_new, _), (z_old, _) in zip(new.latents(x), old.latents(x)):
            assert torch.equal(z_new, z_old)
        new.flows[0][0].nets["1"].layers[2].weight[:, 8:] += 0.5
        assert float(new(x)) != float(old(x))
    with pytest.raises(SystemExit):
        wider_coupling_state(new.state_dict(), spec.to_dict(), old.spec, old)


def test_frozen_flow_trains_the_priors_alone(photo):
    """``--freeze-flow`` (trainable): a step moves prior weights and leaves
    every coupling weight, and so the latents, as they were."""
    from models.idf.network import IDF
    from models.idf.spec import IDFSpec
    from models.idf.train import trainable

    net = _trained_looking(IDFSpec(couplings=2, hidden=8, prior_groups=3, prior_checkerboard=True), 8)
    flow_before = [p.detach().clone() for p in net.flows.parameters()]
    prior_before = [p.detach().clone() for p in net.priors.parameters()]
    params = trainable(net, freeze_flow=True)
    assert len(params) == len(prior_before)
    opt = torch.optim.Adam(params, lr=1e-2)
    x = torch.from_numpy(np.asarray(photo)[:64, :64].copy()).permute(2, 0, 1)[None]
    net(x).sum().backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(flow_before, net.flows.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(prior_before, net.priors.parameters()))
    assert len(trainable(IDF(net.spec), freeze_flow=False)) == len(list(net.parameters()))


def test_idf_corrected_layout_round_trips_exactly(idf_weights, photo_large):
    """The layout with per-image corrections (channel by channel, and half
    by half with a checkerboard prior) decodes exactly, colour and grey."""
    from codec.idf.codec import CODED_TABLES, FEEDBACK, IDFPlaneCodec

    idf = IDFPlaneCodec(MODEL)
    pixels = np.asarray(photo_large)[:72, :104].copy()
    for planes in (pixels, pixels[:, :, :1]):
        coded = idf.encode(planes, layout=FEEDBACK)
        assert coded.data[0] == FEEDBACK | CODED_TABLES
        np.testing.assert_array_equal(idf.decode(coded.data, *planes.shape, codec_param=1), planes)


def test_the_flow_in_float64_gives_the_float32_flows_integers():
    """``bench idf-width`` times every layer in float64 (``integer_flow(...,
    float64=True)``), the arithmetic a wide layer takes; on weights within
    float32's exact range both give the same latents, means and scale levels."""
    from bench.idf_width import random_tensors
    from codec.idf.codec import integer_flow
    from models.idf.spec import IDFSpec

    spec = IDFSpec(levels=2, couplings=2, partitions=2, hidden=8, prior_groups=2, prior_checkerboard=True)
    tensors = random_tensors(spec)
    x = np.random.default_rng(3).integers(0, 256, (3, 16, 24)).astype(np.float32)
    single, double = integer_flow(tensors, spec), integer_flow(tensors, spec, float64=True)
    assert double.flows[0][0].nets[1].layers[0].dtype == np.float64
    for level, ((z, kept), (z2, kept2)) in enumerate(zip(single.forward(x), double.forward(x))):
        np.testing.assert_array_equal(z, z2)
        for a, b in zip(single.priors[level](kept, z), double.priors[level](kept2, z2)):
            np.testing.assert_array_equal(a, b)
