"""Export a trained ARM checkpoint to the shipped safetensors weights.

    python -m models.arm.export runs/arm/best.pt models/weights/arm-v1.safetensors

The file holds the integer weights of every layer, the integer CDF and
mixture-weight tables of the entropy model, and the spec as metadata.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from codec.entropy.logistic import build_cdf_table, build_mix_weight_table

from ..training import export_main, load_checkpoint, save_weights
from .network import ARMNetwork
from .spec import ARMSpec


def integer_layers(net: ARMNetwork) -> list[tuple[np.ndarray, np.ndarray]]:
    s = net.spec

    def qw(w):
        return torch.clamp(torch.round(w * 2**s.weight_frac), -s.weight_max, s.weight_max)

    def qb(b, in_frac):
        return torch.round(b * 2**(s.weight_frac + in_frac))

    with torch.no_grad():
        first = qw(net.w_in).permute(0, 2, 1).flatten(1).T  # (nb*3, hidden)
        layers = [(first, qb(net.b_in, s.input_frac))]
        for lin in list(net.hidden_layers) + [net.head]:
            layers.append((qw(lin.weight).T, qb(lin.bias, s.act_frac)))
    return [(w.numpy().astype(np.int32), b.numpy().astype(np.int64)) for w, b in layers]


def integer_skip(net: ARMNetwork) -> np.ndarray:
    s = net.spec
    with torch.no_grad():
        w = torch.clamp(torch.round(net.skip.weight * 2**s.weight_frac), -s.weight_max, s.weight_max)
    return np.ascontiguousarray(w.T.numpy().astype(np.int32))


def export(checkpoint: Path, out: Path, model_id: str) -> None:
    ck, spec, net = load_checkpoint(checkpoint, ARMSpec, ARMNetwork)
    tensors = {}
    for i, (w, b) in enumerate(integer_layers(net)):
        tensors[f"layer{i}.weight"] = np.ascontiguousarray(w)
        tensors[f"layer{i}.bias"] = np.ascontiguousarray(b)
    tensors["skip.weight"] = integer_skip(net)
    tensors["entropy.cdf"] = build_cdf_table(spec.log_scale_min, spec.log_scale_frac,
                                             spec.log_scale_levels, spec.mean_frac,
                                             spec.mean_min, spec.mean_max)
    tensors["entropy.mix_weights"] = build_mix_weight_table(spec.logit_frac, spec.logit_range)
    save_weights(out, tensors, "arm", model_id, spec, ck)


def float_state(t: dict, spec_dict: dict) -> dict:
    """The network state dict behind shipped ARM weights: the inverse of
    :func:`integer_layers` and :func:`integer_skip`, exact on the grid the
    export rounded to, so a training run can continue from a shipped model
    (``models.training.load_state``)."""
    s = ARMSpec.from_dict(spec_dict)
    nb, ch = len(s.neighbourhood), s.channels
    scale = 2.0 ** s.weight_frac
    first = t["layer0.weight"].double().T / scale  # (hidden, nb*ch) as (hidden, nb, ch)
    state = {"w_in": first.reshape(-1, nb, ch).permute(0, 2, 1),
             "b_in": t["layer0.bias"].double() / 2.0 ** (s.weight_frac + s.input_frac)}
    names = [f"hidden_layers.{i}" for i in range(s.hidden_layers - 1)] + ["head"]
    for i, name in enumerate(names, start=1):
        state[f"{name}.weight"] = t[f"layer{i}.weight"].double().T / scale
        state[f"{name}.bias"] = t[f"layer{i}.bias"].double() / 2.0 ** (s.weight_frac + s.act_frac)
    state["skip.weight"] = t["skip.weight"].double().T / scale
    return {k: v.float().contiguous() for k, v in state.items()}


def main(argv=None):
    export_main(export, __doc__, argv)


if __name__ == "__main__":
    main()
