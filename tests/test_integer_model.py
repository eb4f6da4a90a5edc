"""The integer ARM the codec runs equals the fake-quantized training network."""
import numpy as np
import pytest
import torch

from codec.arm.codec import Wavefronts
from models.arm.export import integer_layers, integer_skip
from models.arm.integer import IntegerARM
from models.arm.network import ARMNetwork, mixture_bits, output_grids, wider_context_state
from models.arm.spec import NEIGHBOURHOODS, ARMSpec


@pytest.mark.parametrize("neighbourhood", sorted(NEIGHBOURHOODS))
def test_integer_model_matches_training_network(photo_array, neighbourhood):
    torch.manual_seed(0)
    spec = ARMSpec(neighbourhood=NEIGHBOURHOODS[neighbourhood], hidden=32, hidden_layers=2)
    net = ARMNetwork(spec)
    with torch.no_grad():  # make the head and skip non-trivial
        net.head.weight.normal_(0, 0.05)
        net.skip.weight.normal_(0, 0.05)
    net.fake_quant = True
    img = photo_array[:12, :16]
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits, means, log_scales, coeffs = output_grids(net.raw_outputs(x), spec)
    model = IntegerARM(spec, integer_layers(net), integer_skip(net))
    geo = Wavefronts(12, 16, spec)
    buf = geo.new_buffer()
    buf[geo.flat] = img[geo.ys, geo.xs]
    p = model(geo.context(buf, geo.flat))
    ys, xs = geo.ys, geo.xs
    t_means = means[0].permute(2, 3, 0, 1).numpy()[ys, xs]  # (n, 3, K), 1/16 pixel units
    agree = np.mean(p.means == t_means)
    t_levels = ((log_scales[0] - spec.log_scale_min) * 2**spec.log_scale_frac).round()
    agree_levels = np.mean(p.levels == t_levels.permute(2, 3, 0, 1).numpy()[ys, xs])
    # float32 training arithmetic may land on the other side of a rounding tie now and then
    assert agree > 0.99 and agree_levels > 0.99


def test_shipped_arm_weights_convert_back_to_the_same_training_network():
    """A run whose folder is lost continues from the shipped weights
    (``--init-from models/weights/arm-v2.safetensors``): the recovered float
    network must export to exactly the integers it came from."""
    from pathlib import Path

    from safetensors.numpy import load_file

    from models.training import load_state

    path = Path(__file__).parents[1] / "models" / "weights" / "arm-v2.safetensors"
    state, spec = load_state(path)
    net = ARMNetwork(ARMSpec.from_dict(spec))
    net.load_state_dict(state)
    shipped = load_file(str(path))
    for i, (w, b) in enumerate(integer_layers(net)):
        np.testing.assert_array_equal(w, shipped[f"layer{i}.weight"])
        np.testing.assert_array_equal(b, shipped[f"layer{i}.bias"])
    np.testing.assert_array_equal(integer_skip(net), shipped["skip.weight"])


def test_a_wider_context_starts_at_the_old_code_length(photo_array):
    """``--neighbourhood large`` from a trained model (wider_context_state):
    the new offsets' weights start at zero, so the widened network codes at
    exactly the old length, and the new inputs count once their weights move;
    a neighbourhood that drops an old offset is refused."""
    torch.manual_seed(1)
    old = ARMNetwork(ARMSpec(hidden=32, hidden_layers=2))
    with torch.no_grad():
        old.head.weight.normal_(0, 0.05)
        old.skip.weight.normal_(0, 0.05)
    spec = ARMSpec(neighbourhood=NEIGHBOURHOODS["large"], hidden=32, hidden_layers=2)
    new = ARMNetwork(spec)
    new.load_state_dict(wider_context_state(old.state_dict(), old.spec.to_dict(), spec, new))
    x = torch.from_numpy(photo_array[:24, :32].copy()).permute(2, 0, 1)[None]
    for fake_quant in (True, False):
        old.fake_quant = new.fake_quant = fake_quant
        with torch.no_grad():
            assert float(new(x)) == float(old(x))
    with torch.no_grad():
        far = list(spec.neighbourhood).index((-4, 0))
        new.w_in[:, :, far] += 0.05
        assert float(new(x)) != float(old(x))
    with pytest.raises(SystemExit):
        wider_context_state(new.state_dict(), spec.to_dict(), old.spec, old)


def test_a_wider_or_richer_network_starts_at_the_old_code_length(photo_array):
    """``--hidden`` and ``--mixtures`` above an init's, with or without a
    wider ``--neighbourhood`` (widened_state): new hidden units send
    nothing on, so the code length is exactly the old one; new mixture
    components are copies of old ones with the logits
    split among them, so it moves only by the logit grid and the copies'
    small difference.  The new parts learn: moving them changes the length.
    Narrowing is refused."""
    from codec import weights
    from models.arm.network import widened_state
    from models.training import load_state

    state, spec_d = load_state(weights.weights_path(weights.DEFAULT_MODELS["arm"]))
    old = ARMNetwork(ARMSpec.from_dict(spec_d))
    old.load_state_dict(state)
    x = torch.from_numpy(photo_array[:48, :64].copy()).permute(2, 0, 1)[None]
    large = [list(o) for o in NEIGHBOURHOODS["large"]]
    for hidden, mixtures, nb, tolerance in ((160, 2, None, 0.0), (128, 3, None, 1e-3),
                                            (160, 3, large, 1e-3)):
        spec = ARMSpec.from_dict({**spec_d, "hidden": hidden, "mixtures": mixtures,
                                  "neighbourhood": nb or spec_d["neighbourhood"]})
        torch.manual_seed(0)
        new = ARMNetwork(spec)
        new.load_state_dict(widened_state(state, spec_d, spec, new))
        for fake_quant in (True, False):
            old.fake_quant = new.fake_quant = fake_quant
            with torch.no_grad():
                assert abs(float(new(x)) / float(old(x)) - 1) <= tolerance
        with torch.no_grad():
            if hidden > old.spec.hidden:
                new.head.weight[:, -1] += 0.05
            else:
                new.head.bias[spec.mixtures - 1] += 2.0      # the new component's R logit
            assert float(new(x)) != float(old(x))
    with pytest.raises(SystemExit):
        widened_state(new.state_dict(), spec.to_dict(), old.spec, old)


@pytest.mark.parametrize("offset", [(0, 0), (0, 1), (-1, 2), (-2, 4), (1, -3)])
def test_a_neighbourhood_off_the_earlier_wavefronts_is_refused(offset):
    """The wavefront decoder needs every context pixel decoded before the
    pixel it predicts (dx < -2 dy above, dx < 0 on the row)."""
    with pytest.raises(ValueError, match="earlier wavefronts"):
        ARMSpec(neighbourhood=NEIGHBOURHOODS["default"] + (offset,))


def test_compiled_rescaling_equals_the_numpy_definition():
    """The decoder's and the encoder's network rescale its products with
    compiled kernels; the NumPy operations are the definition
    (docs/FORMAT.md §5): floor((acc + bias) * 2^-k), clipped."""
    from models.arm.integer import _activate, _head_fields

    rng = np.random.default_rng(0)
    acc = rng.integers(-2**40, 2**40, (300, 24)).astype(np.float64)
    bias = rng.integers(-2**20, 2**20, 24).astype(np.float64)
    want = np.clip(np.floor((acc + bias) * 2.0**-18), 0, 8191)
    got = acc.copy()
    _activate(got, bias, 2.0**-18, 8191.0)
    np.testing.assert_array_equal(got, want)
    assert 0 < (want == 0).mean() < 1 and 0 < (want == 8191).mean() < 1

    scale = 2.0 ** -rng.integers(10, 20, 12).astype(np.float64)
    offset = rng.integers(-100, 100, 12).astype(np.float64)
    lo, hi = -rng.integers(0, 2**12, 12).astype(np.float64), rng.integers(0, 2**12, 12).astype(np.float64)
    out = np.empty((300, 12, 2), np.int64)
    _head_fields(acc, bias, scale, offset, lo, hi, out)
    fields = (acc + bias).reshape(300, 12, 2) * scale[:, None]
    want = np.clip(np.floor(fields) + offset[:, None], lo[:, None], hi[:, None]).astype(np.int64)
    np.testing.assert_array_equal(out, want)
    assert 0 < (want == hi[:, None]).mean() < 1


@pytest.mark.parametrize("bound, passes", [(None, True), (torch.clamp, False)])
def test_an_output_past_its_bound_passes_a_gradient_only_straight_through(bound, passes):
    """Training's straight-through clamp lets a scale output below the
    lowest level learn its way back; ``torch.clamp`` (the per-image fit)
    gives it no gradient, as the clamped value does not move."""
    spec = ARMSpec(hidden=8, hidden_layers=1)
    raw = torch.zeros(1, 12, spec.mixtures, 1, 1)
    raw[:, 6:9] = spec.log_scale_min - 1.0          # every scale output one unit below the floor
    raw.requires_grad_()
    x = torch.full((1, 3, 1, 1), 131.0)
    kwargs = {} if bound is None else {"bound": bound}
    mixture_bits(raw, x, spec, **kwargs).sum().backward()
    assert bool(raw.grad[:, 6:9].abs().sum() > 0) == passes
    assert raw.grad[:, 3:6].abs().sum() > 0          # the means inside their range learn either way
