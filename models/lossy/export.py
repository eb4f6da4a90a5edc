"""Export a trained lossy checkpoint to shipped safetensors weights.

    python -m models.lossy.export runs/lossy/last.pt models/weights/lossy-v6.safetensors

Float tensors (the analysis/synthesis transforms, h_a, gains) are stored as
float16 (half the size of float32; the codec
computes in float32 from them, and the rounding moves held-out PSNR by
under 0.01 dB; lossy-v1 and lossy-v2 were stored as float32); the
entropy-parameter networks as integers; the zero-mean Gaussian
frequency tables of every scale level are built here and stored too.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from codec.entropy.residual import build_gaussian_tables
from codec.weights import DEFAULT_MODELS

from ..training import export_main, load_checkpoint, save_weights
from .network import FLOAT_PARTS, LossyAutoencoder
from .spec import LossySpec


def integer_stacks(net: LossyAutoencoder):
    """(prefix in the weights, stack, input scale exponent) of each integer network."""
    spec = net.spec
    yield "h_s", net.h_s, 0
    for i, sn in enumerate(net.slice_nets):
        yield f"slice{i}", sn, spec.act_frac
    for i, cn in enumerate(getattr(net, "context_nets", [])):
        yield f"context{i}", cn, spec.act_frac


def layer_fracs(stack, spec: LossySpec, in_frac: int):
    """(index, layer, its input's scale exponent) of a stack's layers."""
    frac = in_frac
    for i, layer in enumerate(stack.layers):
        yield i, layer, frac
        frac = spec.act_frac


def integer_stack(prefix: str, net, spec: LossySpec, in_frac: int, tensors: dict) -> list[dict]:
    meta = []
    for i, layer, frac in layer_fracs(net, spec, in_frac):
        w = torch.clamp(torch.round(layer.weight * 2**spec.weight_frac), -2**15 + 1, 2**15 - 1)
        b = torch.round(layer.bias * 2**(spec.weight_frac + frac))
        tensors[f"{prefix}.{i}.weight"] = w.detach().numpy().astype(np.int32)
        tensors[f"{prefix}.{i}.bias"] = b.detach().numpy().astype(np.int64)
        entry = {"stride": layer.stride[0], "padding": layer.padding[0]}
        if isinstance(layer, nn.ConvTranspose2d):
            entry["output_padding"] = layer.output_padding[0]
        meta.append(entry)
    return meta


def float_state(tensors: dict, spec_dict: dict) -> dict:
    """The network state dict behind shipped lossy weights (NumPy arrays or
    tensors): the inverse of :func:`export`, exact on the grids it rounded
    to.  The codec's latent refinement runs this network; a training run
    can continue from shipped weights (``models.training.load_state``)."""
    spec = LossySpec.from_dict(spec_dict)
    net = LossyAutoencoder(spec)

    def t(name):
        return torch.as_tensor(np.asarray(tensors[name])).double()

    state = {k: t(k).float() for k in tensors if k.split(".")[0] in FLOAT_PARTS}
    net.load_state_dict(state, strict=False)
    with torch.no_grad():
        for prefix, stack, in_frac in integer_stacks(net):
            for i, layer, frac in layer_fracs(stack, spec, in_frac):
                layer.weight.copy_(t(f"{prefix}.{i}.weight") / 2**spec.weight_frac)
                layer.bias.copy_(t(f"{prefix}.{i}.bias") / 2**(spec.weight_frac + frac))
        # z_levels = round((z_log_scale - min) * 2^frac): this value rounds back to them
        net.z_log_scale.copy_(t("z_levels") / 2**spec.log_scale_frac + spec.log_scale_min)
    return net.state_dict()


def export(checkpoint: Path, out: Path, model_id: str) -> None:
    ck, spec, net = load_checkpoint(checkpoint, LossySpec, LossyAutoencoder)
    if spec.quantizer != "round":
        raise SystemExit(f"the codec codes rounded latents; {checkpoint} uses the {spec.quantizer}")
    tensors = {}
    for name, t in net.state_dict().items():
        part = name.split(".")[0]
        if part in FLOAT_PARTS:   # the enhancer is small: kept in float32
            tensors[name] = t.numpy().astype(np.float32 if part == "enhancer" else np.float16)
    layout = {prefix: integer_stack(prefix, stack, spec, in_frac, tensors)
              for prefix, stack, in_frac in integer_stacks(net)}
    with torch.no_grad():
        tensors["z_levels"] = net.z_levels().numpy().astype(np.int32)
    scales = np.exp(spec.log_scale_min + np.arange(spec.scale_levels) / 2**spec.log_scale_frac)
    tables = build_gaussian_tables(scales)
    tensors["entropy.gaussian"] = np.concatenate(tables).astype(np.int32)
    tensors["entropy.gaussian_sizes"] = np.array([len(t) for t in tables], np.int32)
    # alpha planes are coded by an ARM model pinned here, so that changing the
    # default ARM never changes how an existing lossy file decodes
    save_weights(out, tensors, "lossy", model_id, spec, ck, layout=json.dumps(layout),
                 alpha_model=DEFAULT_MODELS["arm"])


def main(argv=None):
    export_main(export, __doc__, argv)


if __name__ == "__main__":
    main()
