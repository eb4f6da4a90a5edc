"""The synthesis' enhancer: a small convolutional network after g_s that
removes what g_s' output gets wrong in every image (ringing, blur, blocky
low-rate textures), trained once on many photographs.

Why a separate stage rather than a larger g_s: g_s is trained jointly with
the rest of the autoencoder, and training the whole model more on this
machine's CPUs has stopped paying; an enhancer trains alone, on the frozen
model's outputs, in minutes, and can be retrained from any later model.  The
per-image post-filter (``codec/lossy/postfilter.py``) then corrects what is
particular to one image, after the enhancer.

It works at half resolution on the 2 x 2 space-to-depth of the synthesis
(12 channels and the quality), so each 3 x 3 convolution spans 6 x 6
pixels for a quarter of the cost, and it adds a correction to the synthesis:
its last layer starts at zero, so an untrained enhancer is the identity.
The quality input (0 at quality 1, 1 at quality 8) lets one network serve
every rate: low rates want textures rebuilt, high rates little but
ringing removed.  Its receptive field is ``reach`` pixels each side, far
inside the synthesis windows' margin (``codec/pipeline/lossy.py``).
Decoding runs it in float32, as g_s (a pixel may differ by one level
between machines, as g_s' own).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Enhancer(nn.Module):
    def __init__(self, channels: int, layers: int, qualities: int):
        super().__init__()
        self.qualities = qualities
        self.first = nn.Conv2d(12 + 1, channels, 3, padding=1)
        self.middle = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(layers))
        self.last = nn.Conv2d(channels, 12, 3, padding=1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    @property
    def reach(self) -> int:
        """Pixels each side of an output pixel that it reads."""
        return 2 * (len(self.middle) + 2) + 1

    def forward(self, x_hat: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """x_hat: (B, 3, H, W) synthesis in 0..1, H and W even; quality:
        (B,) or (1,) qualities 1..Q.  The enhanced synthesis, same shape."""
        u = F.pixel_unshuffle(x_hat, 2)
        level = ((quality.to(u.dtype) - 1) / (self.qualities - 1)).reshape(-1, 1, 1, 1)
        h = F.relu(self.first(torch.cat([u - 0.5, level.expand(u.shape[0], 1, *u.shape[2:])], 1)))
        for layer in self.middle:
            h = F.relu(layer(h))
        return x_hat + F.pixel_shuffle(self.last(h), 2)
