"""The lossy trainer's partial-training modes move only what they promise:
with the transforms frozen only the entropy model trains; with the synthesis
alone, every latent and every probability (so every file's size) stays as it
was and only the reconstruction changes."""

import pytest
import torch

from models.lossy.network import LossyAutoencoder
from models.lossy.spec import LossySpec
from models.lossy.train import (
    freeze_transforms,
    make_optimizer,
    rd_loss,
    train_synthesis_only,
)


def one_step(freeze) -> tuple[dict, dict]:
    torch.manual_seed(0)
    net = LossyAutoencoder(LossySpec(n=8, m=16, hyper=8, quality_input=True))
    freeze(net)
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    opt = make_optimizer(net, 1e-2, 10.0)
    x = torch.rand(2, 3, 64, 64)
    loss, _, _ = rd_loss(net, x, torch.tensor([1, 8]))
    loss.backward()
    opt.step()
    after = dict(net.named_parameters())
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    return moved, set(before)


@pytest.mark.parametrize("freeze, trained", [
    (freeze_transforms, lambda k: k.startswith(("h_a.", "h_s.", "slice_nets.", "z_log_scale"))),
    (train_synthesis_only, lambda k: k.startswith("g_s.")),
], ids=["entropy-model", "synthesis"])
def test_partial_training_moves_only_its_part(freeze, trained):
    moved, names = one_step(freeze)
    assert moved, "nothing trained"
    assert all(trained(k) for k in moved), sorted(k for k in moved if not trained(k))


def test_a_new_rate_schedule_starts_where_the_old_model_was_at_each_lambda():
    """lambda_schedule_state: a new point whose lambda lies on the old schedule
    gets the old model's gains there, and its entropy model reads the quality
    feature the old one read there, so its files start out the same."""
    import math

    from models.lossy.train import lambda_schedule_state

    torch.manual_seed(0)
    old_spec = LossySpec(n=8, m=16, hyper=8, quality_input=True)
    old = LossyAutoencoder(old_spec)
    with torch.no_grad():
        old.log_gain.copy_(torch.linspace(-2, 2, 8)[:, None] + 0.1 * torch.randn(8, 16))
        for sn in old.slice_nets:
            sn.layers[0].bias.normal_(0, 0.5)
            sn.layers[0].weight[:, -1].normal_(0, 1.0)  # the quality input matters
    # the old schedule's points 2.0, 2.5, ... 5.5 (1-based), half a step apart
    lam = [math.log(v) for v in old_spec.lambdas]
    positions = [1.0 + 0.5 * k for k in range(8)]
    new_lambdas = tuple(math.exp(lam[int(p)] + (p - int(p)) * (lam[int(p) + 1] - lam[int(p)]))
                        for p in positions)
    new_spec = LossySpec(n=8, m=16, hyper=8, quality_input=True, lambdas=new_lambdas)
    new = LossyAutoencoder(new_spec)
    new.load_state_dict(lambda_schedule_state(old.state_dict(), old_spec.to_dict(), new_spec, new))
    for k, p in enumerate(positions):
        q_new, q_old = torch.tensor([k + 1.0]), torch.tensor([p + 1.0])
        assert torch.allclose(new.gains(q_new), old.gains(q_old), rtol=1e-5)
        feats = torch.rand(1, 16, 6, 6)
        # interior positions: the border columns see the zero padding of the constant channel
        m_new, l_new = new.slice_params(0, feats, [], q_new)
        m_old, l_old = old.slice_params(0, feats, [], q_old)
        inner = (..., slice(1, -1), slice(1, -1))
        assert (m_new[inner] - m_old[inner]).abs().max() <= 1 / 16 + 1e-6
        # (the quality feature and the rescaled weights round on their grids)
        assert (l_new[inner] - l_old[inner]).abs().max() <= 1


def warm_started(old_spec: LossySpec, new_spec: LossySpec, prepare_old=lambda net: None):
    """(old, new, missing): a fresh model of old_spec (after ``prepare_old``),
    one of new_spec warm-started from it by adapt_state, both in evaluation
    mode, and the parameters the warm start left at their initial values."""
    from models.lossy.train import adapt_state

    torch.manual_seed(0)
    old = LossyAutoencoder(old_spec)
    with torch.no_grad():
        prepare_old(old)
    new = LossyAutoencoder(new_spec)
    missing, unexpected = new.load_state_dict(
        adapt_state(old.state_dict(), old_spec.to_dict(), new_spec, new), strict=False)
    assert not unexpected
    old.eval(), new.eval()
    return old, new, missing


def test_adding_a_checkerboard_context_starts_from_the_same_rates():
    """checkerboard_state: the slice networks' new context inputs start at
    zero, so the warm-started model codes every latent at exactly the old
    model's rate, whatever its fresh context networks compute."""
    def quality_matters(net):
        for sn in net.slice_nets:
            sn.layers[0].weight[:, -1].normal_(0, 1.0)

    old, new, missing = warm_started(
        LossySpec(n=8, m=16, hyper=8, quality_input=True),
        LossySpec(n=8, m=16, hyper=8, quality_input=True, checkerboard_channels=4), quality_matters)
    assert all(k.startswith("context_nets.") for k in missing)
    x, q = torch.rand(2, 3, 64, 64), torch.tensor([2, 7])
    with torch.no_grad():
        _, y_old, z_old = old(x, q)
        _, y_new, z_new = new(x, q)
        assert torch.equal(y_old, y_new) and torch.equal(z_old, z_new)
        # and the context is wired in: weights on its inputs (before the quality's) move the rate
        for sn in new.slice_nets:
            sn.layers[0].weight[:, -5:-1].normal_(0, 0.1)
        assert not torch.equal(new(x, q)[1], old(x, q)[1])


def test_widening_the_latent_keeps_the_reconstruction_and_the_old_slices_rates():
    """widen_state: new slices' channels reach the synthesis and h_a through
    zero weights, so the widened model reconstructs exactly as the old one and
    codes z at exactly its old rate; the new slices cost bits of their own,
    and weights on them move the reconstruction.  A latent widened by
    anything but whole slices of the old size is refused."""
    from models.lossy.train import adapt_state

    old_spec = LossySpec(n=8, m=16, hyper=8, quality_input=True, checkerboard_channels=4)
    old, new, missing = warm_started(
        old_spec, LossySpec(n=8, m=32, slices=8, hyper=8, quality_input=True, checkerboard_channels=4))
    assert not missing
    x, q = torch.rand(2, 3, 64, 64), torch.tensor([2, 7])
    with torch.no_grad():
        x_old, y_old, z_old = old(x, q)
        x_new, y_new, z_new = new(x, q)
        assert torch.equal(x_old, x_new) and torch.equal(z_old, z_new)
        assert (y_new > y_old).all()
        new.g_s[0].weight[16:].normal_(0, 0.1)
        assert not torch.equal(new(x, q)[0], x_old)
    with pytest.raises(SystemExit):
        adapt_state(old.state_dict(), old_spec.to_dict(),
                    LossySpec(n=8, m=24, slices=4, hyper=8, quality_input=True), new)


def test_bfloat16_transforms_train_close_to_float32_and_never_evaluate():
    torch.manual_seed(0)
    net = LossyAutoencoder(LossySpec(n=8, m=16, hyper=8, quality_input=True))
    net.hard_rate = True
    x, q = torch.rand(2, 3, 64, 64), torch.tensor([2, 7])
    full = rd_loss(net, x, q)[0]
    net.transform_bfloat16 = True
    half = rd_loss(net, x, q)[0]
    assert half.item() == pytest.approx(full.item(), rel=0.02)
    assert half.item() != full.item()          # the option does change the training pass
    net.eval()
    with torch.no_grad():
        net.transform_bfloat16 = False
        reference = net(x, q)[0]
        net.transform_bfloat16 = True
        assert torch.equal(net(x, q)[0], reference)   # evaluation is always float32


def test_block_pca_ceiling_grows_with_width_and_is_exact_at_full_width():
    """models.lossy.ceiling's linear reference: more components reconstruct
    better, and all 768 of a 16x16x3 block reconstruct it to rounding."""
    import numpy as np

    from models.lossy.ceiling import block_pca, pca_psnr

    rng = np.random.default_rng(0)
    smooth = [np.cumsum(rng.integers(0, 3, (64, 96, 3)), axis=1).clip(0, 255) for _ in range(3)]
    mean, components = block_pca(smooth)
    figures = [pca_psnr(smooth[0], mean, components, w) for w in (16, 160, 320)]
    assert figures == sorted(figures)
    assert pca_psnr(smooth[0], mean, components, 768) > 100
