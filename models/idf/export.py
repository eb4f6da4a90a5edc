"""Export a trained IDF checkpoint to shipped safetensors weights.

    python -m models.idf.export runs/idf-2/best.pt models/weights/idf-v1.safetensors

Stores every network's integer weights and biases, the priors' integer
biases, the logistic frequency tables of every (scale level, mean fraction)
group, and the spec as metadata.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from codec.entropy.residual import build_logistic_tables

from ..training import export_main, load_checkpoint, save_weights
from .integer import INPUT_FRAC
from .network import IDF, Int8ConvNet
from .spec import IDFSpec


def integer_net(prefix: str, net: Int8ConvNet, spec: IDFSpec, tensors: dict) -> None:
    frac = INPUT_FRAC
    for i, layer in enumerate(net.layers):
        w = torch.clamp(torch.round(layer.weight * 2**spec.weight_frac), -spec.weight_max, spec.weight_max)
        b = torch.clamp(torch.round(layer.bias * 2**(spec.weight_frac + frac)), -spec.bias_max, spec.bias_max)
        tensors[f"{prefix}.{i}.weight"] = w.detach().numpy().astype(np.int32)
        tensors[f"{prefix}.{i}.bias"] = b.detach().numpy().astype(np.int32)
        frac = spec.act_frac


def export(checkpoint: Path, out: Path, model_id: str) -> None:
    ck, spec, net = load_checkpoint(checkpoint, IDFSpec, IDF)
    tensors = {}
    for l, couplings in enumerate(net.flows):
        for c, coupling in enumerate(couplings):
            for i, sub in coupling.nets.items():
                integer_net(f"flow{l}.{c}.{i}", sub, spec, tensors)
    out_frac = spec.weight_frac + spec.act_frac
    for l, prior in enumerate(net.priors):
        if prior.net is not None:
            integer_net(f"prior{l}", prior.net, spec, tensors)
        tensors[f"prior{l}.bias"] = torch.round(prior.bias.detach() * 2**out_frac).numpy().astype(np.int32)
    scales = np.exp(spec.log_scale_min + np.arange(spec.log_scale_levels) / 2**spec.log_scale_frac)
    tables = build_logistic_tables(scales, spec.mean_frac)
    tensors["entropy.logistic"] = np.concatenate(tables).astype(np.int32)
    tensors["entropy.logistic_sizes"] = np.array([len(t) for t in tables], np.int32)
    save_weights(out, tensors, "idf", model_id, spec, ck)


def float_state(weights: Path) -> tuple[dict, dict]:
    """(network state dict, spec dict) recovered from shipped IDF weights: the
    inverse of :func:`export`, exact on the grids it rounded to, so a training
    run can continue from a shipped flow (``models.training.load_state``)."""
    import json
    import re

    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        spec_dict = json.loads(f.metadata()["spec"])
        t = {k: f.get_tensor(k).double() for k in f.keys() if not k.startswith("entropy.")}
    spec = IDFSpec.from_dict(spec_dict)
    state = {}
    for key, v in t.items():
        if m := re.fullmatch(r"prior(\d+)\.bias", key):
            state[f"priors.{m[1]}.bias"] = v / 2**(spec.weight_frac + spec.act_frac)
            continue
        m = re.fullmatch(r"(flow(\d+)\.(\d+)\.(\d+)|prior(\d+))\.(\d+)\.(weight|bias)", key)
        layer, kind = int(m[6]), m[7]
        name = (f"flows.{m[2]}.{m[3]}.nets.{m[4]}" if m[2] is not None else f"priors.{m[5]}.net")
        in_frac = INPUT_FRAC if layer == 0 else spec.act_frac
        scale = 2**spec.weight_frac if kind == "weight" else 2**(spec.weight_frac + in_frac)
        state[f"{name}.layers.{layer}.{kind}"] = v / scale
    return {k: v.float() for k, v in state.items()}, spec_dict


def main(argv=None):
    export_main(export, __doc__, argv)


if __name__ == "__main__":
    main()
