"""The lossless trainers' loop (models.training.fit_bits): the moving
average of the weights is the one the update rule defines, it is what is
evaluated and written to best.pt, and a resumed run continues it; the
constant schedule holds its rate after the warm-up."""
from __future__ import annotations

import torch

from models.training import Run, constant_lr, cosine_lr, fit_bits


class Spec:
    def to_dict(self):
        return {"toy": True}


class Toy(torch.nn.Module):
    """Bits per element of a scaled square: any differentiable stand-in will do."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))

    def forward(self, x):
        return (x * self.w) ** 2


def run_toy(folder, steps, decay, seen, evaluated):
    torch.manual_seed(0)
    net = Toy()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    run = Run(folder)
    ck = run.resume()
    step = 0
    if ck:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
    batches = iter(torch.linspace(0.5, 1.5, 64).reshape(16, 4, 1).expand(16, 4, 3).clone())

    def evaluate(model):
        evaluated.append(model.w.detach().clone())
        return 10.0 - len(evaluated)  # always better: every evaluation is saved as best

    def after_previous(step, progress):
        seen.append((net.w.detach().clone(), opt.param_groups[0]["lr"]))

    fit_bits(run, Spec(), net, opt, step=step, best=float("inf"), steps=steps, peak_lr=0.1,
             batches=lambda: next(batches), evaluate=evaluate, before_step=after_previous,
             eval_every=1, schedule="constant", ema=decay)
    return net


def expected_average(weights, decay):
    average = weights[0]
    for w in weights[1:]:
        average = decay * average + (1 - decay) * w
    return average


def test_the_average_is_evaluated_selected_and_resumed(tmp_path):
    decay = 0.75
    seen, evaluated = [], []
    net = run_toy(tmp_path, 4, decay, seen, evaluated)
    # the weights after each step: what before_step saw from the second step on, then the end
    trained = [w for w, _ in seen[1:]] + [net.w.detach().clone()]
    average = expected_average(trained, decay)
    assert not torch.allclose(average, trained[-1]), "the average should lag the raw weights"

    best = torch.load(tmp_path / "best.pt", weights_only=False)
    last = torch.load(tmp_path / "last.pt", weights_only=False)
    torch.testing.assert_close(best["model"]["w"], average)
    torch.testing.assert_close(last["model"]["w"], trained[-1])        # resume needs the raw weights
    torch.testing.assert_close(last["ema"]["module.w"], average)
    # each evaluation: the raw network, then the average
    torch.testing.assert_close(evaluated[-2], trained[-1])
    torch.testing.assert_close(evaluated[-1], average)

    seen2, evaluated2 = [], []
    net = run_toy(tmp_path, 6, decay, seen2, evaluated2)
    trained += [w for w, _ in seen2[1:]] + [net.w.detach().clone()]
    assert len(trained) == 6
    last = torch.load(tmp_path / "last.pt", weights_only=False)
    torch.testing.assert_close(last["ema"]["module.w"], expected_average(trained, decay))


def test_the_constant_schedule_warms_up_then_holds():
    assert constant_lr(0, 1e-3) == 1e-3 / 500
    assert constant_lr(499, 1e-3) == constant_lr(90_000, 1e-3) == 1e-3
    assert cosine_lr(90_000, 100_000, 1e-3) < 1e-4


def test_the_loop_uses_the_constant_rate(tmp_path):
    seen = []
    run_toy(tmp_path, 3, 0.5, seen, [])
    # before_step runs after the rate is set: steps 0, 1, 2 of the warm-up
    assert [lr for _, lr in seen] == [constant_lr(k, 0.1) for k in range(3)]
