"""The integer ARM the codec runs equals the fake-quantized training network."""
import numpy as np
import torch

from codec.arm.codec import Wavefronts
from models.arm.export import integer_layers, integer_skip
from models.arm.integer import IntegerARM
from models.arm.network import ARMNetwork, output_grids
from models.arm.spec import ARMSpec


def test_integer_model_matches_training_network(photo_array):
    torch.manual_seed(0)
    spec = ARMSpec(hidden=32, hidden_layers=2)
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
