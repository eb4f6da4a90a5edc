"""Adam for the encoder's per-image fits (latent refinement, the ARM's head
change), without ``torch.optim``.

Why by hand: constructing any ``torch.optim`` optimizer imports
``torch._dynamo``, about one second of a lossy ``nc encode`` process whose
whole budget is ten.  The update is torch's own single-tensor Adam (no
weight decay, no AMSGrad), operation for operation, so it gives the same
parameters bit for bit (tested against ``torch.optim.Adam``) and files do not
change.
"""
from __future__ import annotations

import torch


class Adam:
    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        # (torch keeps the count in a float32 tensor: exact for any count below 2^24)
        self.step_count += 1
        step = float(self.step_count)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = self.lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)
