"""Export a trained IDF checkpoint to shipped safetensors weights.

    python -m models.idf.export runs/idf-2/best.pt models/weights/idf-v1.safetensors

Stores every network's integer weights and biases, the priors' integer
biases, the logistic frequency tables of every (scale level, mean fraction)
group, and the spec as metadata.

    python -m models.idf.export runs/idf-pf/best.pt models/weights/idf-v8.safetensors --tables-from idf-v7

``--tables-from`` leaves the tables (4.7 of idf-v7's 5.5 MB, the same for
every model of one spec) in that shipped model and records its id and
digest instead (``codec.weights`` joins them at load); the export checks
that the tables it would have written are the referenced ones, integer for
integer.
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


def integer_nets(net: IDF):
    """(file prefix, network) of every integer network of the flow, in the
    names the shipped file uses; :func:`export` and :func:`float_state` both
    walk this one list, so the two directions cannot disagree on a name."""
    for l, couplings in enumerate(net.flows):
        for c, coupling in enumerate(couplings):
            for i, sub in coupling.nets.items():
                yield f"flow{l}.{c}.{i}", sub
    for l, prior in enumerate(net.priors):
        if prior.net is not None:
            yield f"prior{l}", prior.net
        for g, sub in enumerate(prior.group_nets, start=1):
            yield f"prior{l}.g{g}", sub
        for g, sub in enumerate(prior.spatial_nets or ()):
            yield f"prior{l}.s{g}", sub


def layer_fracs(net: Int8ConvNet, spec: IDFSpec):
    """(layer index, layer, fraction bits of the layer's input)."""
    for i, layer in enumerate(net.layers):
        yield i, layer, INPUT_FRAC if i == 0 else spec.act_frac


def export(checkpoint: Path, out: Path, model_id: str, tables_from: str | None = None) -> None:
    ck, spec, net = load_checkpoint(checkpoint, IDFSpec, IDF)
    tensors = {}
    for prefix, sub in integer_nets(net):
        for i, layer, frac in layer_fracs(sub, spec):
            w = torch.clamp(torch.round(layer.weight * 2**spec.weight_frac), -spec.weight_max, spec.weight_max)
            b = torch.clamp(torch.round(layer.bias * 2**(spec.weight_frac + frac)), -spec.bias_max, spec.bias_max)
            tensors[f"{prefix}.{i}.weight"] = w.detach().numpy().astype(np.int32)
            tensors[f"{prefix}.{i}.bias"] = b.detach().numpy().astype(np.int32)
    out_frac = spec.weight_frac + spec.act_frac
    for l, prior in enumerate(net.priors):
        tensors[f"prior{l}.bias"] = torch.round(prior.bias.detach() * 2**out_frac).numpy().astype(np.int32)
    scales = np.exp(spec.log_scale_min + np.arange(spec.log_scale_levels) / 2**spec.log_scale_frac)
    tables = build_logistic_tables(scales, spec.mean_frac)
    entropy = {"entropy.logistic": np.concatenate(tables).astype(np.int32),
               "entropy.logistic_sizes": np.array([len(t) for t in tables], np.int32)}
    extra = {}
    if tables_from:
        from codec import weights

        base = weights.load(tables_from, "idf")
        for key, table in entropy.items():
            if key not in base.tensors or not np.array_equal(base.tensors[key], table):
                raise SystemExit(f"{tables_from}'s {key} differs from this model's: export it whole")
        extra = {weights.TABLES_FROM: tables_from, weights.TABLES_DIGEST: base.digest.hex()}
    else:
        tensors.update(entropy)
    save_weights(out, tensors, "idf", model_id, spec, ck, **extra)


def float_state(tensors: dict, spec_dict: dict) -> dict:
    """The network state dict behind shipped IDF weights: the inverse of
    :func:`export`, exact on the grids it rounded to, so a training run can
    continue from a shipped flow (``models.training.load_state``)."""
    spec = IDFSpec.from_dict(spec_dict)
    net = IDF(spec)
    with torch.no_grad():
        for prefix, sub in integer_nets(net):
            for i, layer, frac in layer_fracs(sub, spec):
                layer.weight.copy_(tensors[f"{prefix}.{i}.weight"].double() / 2**spec.weight_frac)
                layer.bias.copy_(tensors[f"{prefix}.{i}.bias"].double() / 2**(spec.weight_frac + frac))
        out_frac = spec.weight_frac + spec.act_frac
        for l, prior in enumerate(net.priors):
            prior.bias.copy_(tensors[f"prior{l}.bias"].double() / 2**out_frac)
    return net.state_dict()


def main(argv=None):
    export_main(export, __doc__, argv, tables_from=True)


if __name__ == "__main__":
    main()
