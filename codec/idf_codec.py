"""Lossless coding of 8-bit planes with the integer discrete flow.

    x (padded to a multiple of 2^levels) --integer flow--> z_1 .. z_L
    coded coarsest first: z_L under its per-channel prior, then each z_l
    under the prior computed from the level's kept part, which the decoder
    has just rebuilt by inverting level l+1.

A few whole-image network passes, no pixel loop.  Grey planes are coded as
three equal channels.  Residuals ``z - floor(mean)`` are grouped by (scale
level, mean fraction) so each group is one constriction call.
"""
from __future__ import annotations

import numpy as np
import torch

from models.idf.integer import IntegerCoupling, IntegerIDF, IntegerNet, IntegerPrior
from models.idf.spec import IDFSpec

from . import weights
from .arm_codec import CodedPlanes
from .entropy import ResidualCoder, range_decoder, range_encoder, stream_bytes


class IDFPlaneCodec:
    def __init__(self, model_id: str):
        w = weights.load(model_id, "idf")
        tensors = w.tensors
        self.model_id = model_id
        spec = self.spec = IDFSpec.from_dict(w.spec)

        def net(prefix):
            pads = (1, 0, 1)
            return IntegerNet([(tensors[f"{prefix}.{i}.weight"], tensors[f"{prefix}.{i}.bias"], pads[i])
                               for i in range(3)], spec)

        updated = [1] if spec.partitions == 2 else list(range(spec.partitions))
        flows, priors = [], []
        for l in range(spec.levels):
            flows.append([IntegerCoupling(spec.partitions, {i: net(f"flow{l}.{c}.{i}") for i in updated})
                          for c in range(spec.couplings)])
            has_net = f"prior{l}.0.weight" in tensors
            priors.append(IntegerPrior(net(f"prior{l}") if has_net else None, tensors[f"prior{l}.bias"], spec))
        self.flow = IntegerIDF(spec, flows, priors)
        sizes = tensors["entropy.logistic_sizes"]
        self.coder = ResidualCoder(np.split(tensors["entropy.logistic"], np.cumsum(sizes)[:-1]))
        self.multiple = 2**spec.levels
        self.z_channels, c = [], 3
        for level in range(spec.levels):
            c *= 4
            self.z_channels.append(c if level == spec.levels - 1 else c // 2)
            c -= self.z_channels[-1]

    def _groups(self, means, levels):
        f = self.spec.mean_frac
        return means >> f, levels * (1 << f) + (means & ((1 << f) - 1))

    def encode(self, pixels: np.ndarray) -> CodedPlanes:
        h, w, c = pixels.shape
        rgb = pixels if c == 3 else np.repeat(pixels, 3, axis=2)
        hp, wp = -(-h // self.multiple) * self.multiple, -(-w // self.multiple) * self.multiple
        padded = np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
        x = torch.from_numpy(padded.astype(np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            latents = self.flow.forward(x)
        enc = range_encoder()
        ideal = 0.0
        for level in reversed(range(self.spec.levels)):
            z, kept = latents[level]
            means, levels = self.flow.priors[level](kept, z.shape)
            base, groups = self._groups(means, levels)
            r = z.numpy().astype(np.int64) - base
            ideal += self.coder.encode(enc, r, groups)
        return CodedPlanes(stream_bytes(enc), ideal)

    def estimate_bits(self, pixels: np.ndarray) -> float:
        """Ideal bits of coding ``pixels``: a flow's encode is a few parallel
        passes, so this simply encodes."""
        return self.encode(pixels).ideal_bits

    def decode(self, data: bytes, height: int, width: int, channels: int) -> np.ndarray:
        dec = range_decoder(data)
        m, s = self.multiple, self.spec
        hp, wp = -(-height // m) * m, -(-width // m) * m
        kept = None
        with torch.no_grad():
            for level in reversed(range(s.levels)):
                side = 2**(level + 1)
                shape = (1, self.z_channels[level], hp // side, wp // side)
                means, levels = self.flow.priors[level](kept, shape)
                base, groups = self._groups(means, levels)
                z = torch.from_numpy((self.coder.decode(dec, groups) + base).astype(np.float32))
                full = z if kept is None else torch.cat([z, kept], 1)
                kept = self.flow.inverse_level(level, full)
        x = (kept[0] + 128).clamp(0, 255).permute(1, 2, 0).numpy().astype(np.uint8)
        return np.ascontiguousarray(x[:height, :width, :channels])
