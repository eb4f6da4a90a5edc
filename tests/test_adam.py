"""codec/adam.py: the encoder's Adam is torch's, bit for bit."""
import torch

from codec.adam import Adam


def test_the_encoders_adam_moves_parameters_exactly_as_torchs():
    gen = torch.Generator().manual_seed(3)
    start = [torch.randn(5, 7, generator=gen), torch.randn(11, generator=gen)]
    targets = [torch.randn(5, 7, generator=gen), torch.randn(11, generator=gen)]
    mine = [t.clone().requires_grad_(True) for t in start]
    theirs = [t.clone().requires_grad_(True) for t in start]
    opt_mine, opt_theirs = Adam(mine, lr=0.05), torch.optim.Adam(theirs, lr=0.05)
    for k in range(60):
        for params, opt in ((mine, opt_mine), (theirs, opt_theirs)):
            lr = 0.05 * (1 - k / 60)
            if isinstance(opt, Adam):
                opt.lr = lr
            else:
                for group in opt.param_groups:
                    group["lr"] = lr
            loss = sum(((p - t) ** 4).sum() for p, t in zip(params, targets))
            opt.zero_grad()
            loss.backward()
            opt.step()
    for a, b in zip(mine, theirs):
        assert torch.equal(a, b)
    assert not torch.equal(mine[0], start[0])
