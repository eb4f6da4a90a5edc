"""The lossy synthesis' enhancer (models/lossy/enhancer.py): what it reads,
and its place in the codec."""

import numpy as np
import pytest
import torch

from codec import weights
from codec.pipeline import lossy
from models.lossy.enhancer import Enhancer

MODEL = weights.DEFAULT_MODELS["lossy"]


def test_an_untrained_enhancer_is_the_identity():
    x = torch.rand(2, 3, 32, 48)
    out = Enhancer(16, 1, 8)(x, torch.tensor([1.0, 8.0]))
    assert torch.equal(out, x)


@pytest.mark.parametrize("layers", [0, 2])
def test_an_output_pixel_reads_no_further_than_its_reach(layers):
    """The synthesis windows' margin must hold the enhancer's reach."""
    torch.manual_seed(0)
    e = Enhancer(8, layers, 8)
    torch.nn.init.normal_(e.last.weight)
    x = torch.rand(1, 3, 64, 64)
    x2 = x.clone()
    x2[0, :, 31, 31] += 0.5
    q = torch.tensor([4.0])
    with torch.no_grad():
        changed = (e(x2, q) - e(x, q)).abs().sum(1)[0] > 0
    rows, cols = changed.nonzero(as_tuple=True)
    assert int(max((rows - 31).abs().max(), (cols - 31).abs().max())) <= e.reach
    assert e.reach < lossy.MARGIN


def test_the_quality_changes_the_correction():
    torch.manual_seed(0)
    e = Enhancer(8, 1, 8)
    torch.nn.init.normal_(e.last.weight)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(e(x, torch.tensor([1.0])), e(x, torch.tensor([8.0])))


def test_the_default_model_is_its_base_with_an_enhancer_after_g_s():
    """The default model keeps its base's every tensor (its latents code
    exactly as the base's) and only adds the enhancer, which the codec's
    synthesis applies after g_s."""
    lc = lossy.lossy_codec(MODEL)
    assert lc.net.enhancer is not None
    base_id = weights.load(MODEL, "lossy").meta["base_model"]
    base = weights.load(base_id, "lossy")
    mine = weights.load(MODEL, "lossy")
    assert set(mine.tensors) - set(base.tensors) == {k for k in mine.tensors if k.startswith("enhancer.")}
    for k, v in base.tensors.items():
        assert np.array_equal(mine.tensors[k], v), k
    rng = np.random.default_rng(1)
    y = rng.integers(-40, 40, (1, lc.spec.m, 4, 6)).astype(np.float64)
    quality = 3.5
    plain = lossy.lossy_codec(base_id).synthesis_float(y, quality)
    with torch.no_grad():
        expected = lc.net.enhancer(torch.from_numpy(plain / 255)[None], torch.tensor([quality]))[0] * 255
    assert np.allclose(lc.synthesis_float(y, quality), expected.numpy(), atol=1e-3)
