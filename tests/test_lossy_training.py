"""The lossy trainer's partial-training modes move only what they promise:
with the transforms frozen only the entropy model trains; with the synthesis
alone, every latent and every probability (so every file's size) stays as it
was and only the reconstruction changes."""

import pytest
import torch

from models.lossy.network import LossyAutoencoder
from models.lossy.spec import LossySpec
from models.lossy.train import freeze_transforms, make_optimizer, rd_loss, train_synthesis_only


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
