"""Lossy coding of an RGB image with the quantizing autoencoder.

    x --g_a (float)--> y * gain[q] --h_a (float)--> z --round--> z_hat   [side segment]
    z_hat --integer h_s--> features; per slice i (integer slice net):
        means_i, levels_i; r_i = round(y_i - means_i)                   [latent segment]
        y_hat_i = r_i + means_i   (exact: the decoder gets the same)
        (checkerboard models: the anchors first, then the rest with
        means and levels that also read the decoded anchors)
    y_hat / gain[q] --g_s (float)--> x_hat

Everything the range coder sees (z_hat, r, means, levels) is computed in
exact integer arithmetic from what was already coded, so it decodes
identically everywhere; only g_s runs in float32, which moves a decoded
pixel by at most one level between machines.  The image is padded to a
multiple of 64 by edge replication and cropped after decoding.
"""
from __future__ import annotations

import json

import numpy as np
import torch

from codec import weights
from codec.entropy import ResidualCoder, range_decoder, range_encoder, stream_bytes
from models.lossy.integer import IntegerConvStack, IntegerEntropyParameters
from models.lossy.network import FLOAT_PARTS, LossyAutoencoder, anchor_mask
from models.lossy.spec import LossySpec, quality_code

PAD_MULTIPLE = 64
MIN_QUALITY, MAX_QUALITY = 1.0, 8.0


class LossyCodec:
    def __init__(self, model_id: str):
        w = weights.load(model_id, "lossy")
        tensors = w.tensors
        self.model_id = model_id
        spec = self.spec = LossySpec.from_dict(w.spec)
        layout = json.loads(w.meta["layout"])
        self.net = LossyAutoencoder(spec).eval()
        float_state = {k: torch.from_numpy(v) for k, v in tensors.items()
                       if k.split(".")[0] in FLOAT_PARTS}
        self.net.load_state_dict(float_state, strict=False)

        def stack(prefix, in_frac):
            layers = [dict(entry, weight=tensors[f"{prefix}.{i}.weight"],
                           bias=tensors[f"{prefix}.{i}.bias"]) for i, entry in enumerate(layout[prefix])]
            return IntegerConvStack(layers, spec, in_frac)

        contexts = ([stack(f"context{i}", spec.act_frac) for i in range(spec.slices)]
                    if spec.checkerboard_channels else None)
        self.params = IntegerEntropyParameters(
            spec, stack("h_s", 0), [stack(f"slice{i}", spec.act_frac) for i in range(spec.slices)],
            contexts)
        self.z_levels = tensors["z_levels"].astype(np.int64)
        sizes = tensors["entropy.gaussian_sizes"]
        flat = tensors["entropy.gaussian"]
        tables = np.split(flat, np.cumsum(sizes)[:-1])
        self.coder = ResidualCoder(tables)
        self._tensors, self._refiner = tensors, None

    def refiner(self):
        """The differentiable copy of this model that refines latents (built
        on first use: decoding never needs it)."""
        if self._refiner is None:
            from codec.lossy.refine import LatentRefiner
            self._refiner = LatentRefiner(self._tensors, self.spec, self.coder)
        return self._refiner

    def _gain(self, quality: float) -> torch.Tensor:
        return self.net.gains(torch.tensor([quality], dtype=torch.float32))

    # -- encode -----------------------------------------------------------------
    def encode(self, rgb: np.ndarray, quality: float) -> tuple[bytes, bytes]:
        """(side, latent) streams of a whole (H, W, 3) image as one tile."""
        x = _pad(torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255)
        y = self.analysis(x, quality)
        side, z = self.encode_side(y)
        latent, _ = self.encode_latents(y, self.params.hyper_features(z), quality)
        return side, latent

    def analysis(self, x: torch.Tensor, quality: float) -> torch.Tensor:
        """y = g_a(x) * gain(quality) of a (1, 3, H, W) float image in 0..1,
        H and W multiples of 16."""
        with torch.no_grad():
            return self.net.g_a(x) * self._gain(quality)

    def encode_side(self, y: torch.Tensor, z: torch.Tensor | None = None) -> tuple[bytes, np.ndarray]:
        """(side stream, z) of latents y (1, M, h, w), h and w multiples of
        4: the hyper-latents z = round(h_a(y)) (or round(``z``), refined
        ones) under their fixed tables."""
        with torch.no_grad():
            z_hat = torch.round(self.net.h_a(y) if z is None else z).to(torch.float64).numpy()
        z_int = z_hat.astype(np.int64)
        side = range_encoder()
        self.coder.encode(side, z_int, np.broadcast_to(self.z_levels[None, :, None, None], z_int.shape))
        return stream_bytes(side), z_int

    def hyper_features(self, z: np.ndarray):
        """The integer features h_s gives z (exact: the same in any window
        that holds a position's receptive field), stored as float32, which
        holds their integers (0 .. act_max) exactly in half the memory."""
        return self.params.hyper_features(z).float()

    def encode_latents(self, y: torch.Tensor, feats, quality: float) -> tuple[bytes, np.ndarray]:
        """(latent stream, y_hat) of latents y (1, M, h, w): slice by slice
        under the means and scales the hyper features ``feats`` (of the
        same h x w) give.  y_hat (integers, 1/16 units) is what the decoder
        rebuilds."""
        latent = range_encoder()
        y_np = y.to(torch.float64).numpy() * 2**self.spec.mean_frac   # 1/16 units
        y_slices = np.split(y_np, self.spec.slices, axis=1)

        def code_residuals(i, means, levels, where):
            r = np.floor((y_slices[i] - means) / 2**self.spec.mean_frac + 0.5).astype(np.int64)
            self.coder.encode(latent, r[where], levels[where])
            return r

        y_hat = self._code_slices(feats, quality_code(quality), code_residuals)
        return stream_bytes(latent), np.concatenate(y_hat, 1)

    def _code_slices(self, feats, code: int, code_residuals) -> list[np.ndarray]:
        """Each slice's y_hat (1/16 units), in coding order.  The encoder and
        the decoder share this walk and differ only in ``code_residuals(i,
        means, levels, where)``, which writes (or reads) slice i's residuals
        at ``where`` (``...``: the whole slice, in array order, without a
        copy; or a boolean mask) and returns them (an array of the slice's
        shape, meaningful at ``where``).  With a checkerboard context each
        slice goes in two halves: its anchors, then the rest with the context
        the decoded anchors give."""
        s, previous = self.spec, []
        for i in range(s.slices):
            means, levels = self.params.slice_params(i, feats, previous, code)
            if not s.checkerboard_channels:
                r = code_residuals(i, means, levels, ...)
            else:
                anchor = np.broadcast_to(anchor_mask(*means.shape[2:]).numpy() > 0, means.shape)
                r = code_residuals(i, means, levels, anchor)
                anchors = np.where(anchor, r * 2**s.mean_frac + means, 0)
                context = self.params.context_features(i, anchors)
                means_n, levels_n = self.params.slice_params(i, feats, previous, code, context)
                r = np.where(anchor, r, code_residuals(i, means_n, levels_n, ~anchor))
                means = np.where(anchor, means, means_n)
            previous.append(r * 2**s.mean_frac + means)
        return previous

    # -- decode -----------------------------------------------------------------
    def decode(self, side: bytes, latent: bytes, height: int, width: int, quality: float) -> np.ndarray:
        """A whole image coded as one tile."""
        lat_h, lat_w = _padded(height) // 16, _padded(width) // 16
        z = self.decode_side(side, lat_h, lat_w)
        y_hat = self.decode_latents(latent, self.params.hyper_features(z), quality)
        return self.synthesis(y_hat, quality)[:height, :width]

    def decode_side(self, side: bytes, lat_h: int, lat_w: int) -> np.ndarray:
        """z of latents lat_h x lat_w (multiples of 4)."""
        z_shape = (1, self.spec.hyper, lat_h // 4, lat_w // 4)
        return self.coder.decode(range_decoder(side),
                                 np.broadcast_to(self.z_levels[None, :, None, None], z_shape))

    def decode_latents(self, latent: bytes, feats, quality: float) -> np.ndarray:
        """y_hat of a tile whose hyper features are ``feats``."""
        lat_dec = range_decoder(latent)

        def code_residuals(i, means, levels, where):
            r = np.zeros(means.shape, np.int64)
            r[where] = self.coder.decode(lat_dec, levels[where])
            return r

        return np.concatenate(self._code_slices(feats, quality_code(quality), code_residuals), 1)

    def synthesis(self, y_hat: np.ndarray, quality: float) -> np.ndarray:
        """(16h, 16w, 3) uint8 pixels of integer latents y_hat (1, M, h, w), 1/16 units."""
        return to_pixels(self.synthesis_float(y_hat, quality))

    def synthesis_float(self, y_hat: np.ndarray, quality: float) -> np.ndarray:
        """(3, 16h, 16w) float32: g_s of y_hat, enhanced if the model has an
        enhancer, in pixel units (0..255 and a little beyond), before
        rounding; what a post-filter reads."""
        y = torch.from_numpy(y_hat / 2**self.spec.mean_frac).float()
        q = torch.tensor([quality], dtype=torch.float32)
        with torch.no_grad():
            return (self.net.enhanced(self.net.g_s(y / self._gain(quality)), q)[0] * 255).numpy()


def to_pixels(x: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 of a (3, h, w) synthesis in pixel units: rounded
    (half to even) and clipped."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def _padded(n: int) -> int:
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE


def _pad(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return torch.nn.functional.pad(x, (0, _padded(w) - w, 0, _padded(h) - h), mode="replicate")
