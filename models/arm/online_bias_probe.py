"""Would the ARM's decoder gain from learning its hidden layers' biases
while it decodes, beside the head?  A float probe, not a codec path.

    python -m models.arm.online_bias_probe PHOTO.png ...            # from the shipped network
    python -m models.arm.online_bias_probe --adapted PHOTO.png ...  # from effort 7's sent change

The image's pixels are taken in coding order (wavefronts) in chunks of 256
(the online head's step, ``codec/arm/online_head.py``); each chunk's bits
are counted under the state learnt from the chunks before it, then one
Adam step is taken on them: on the head's logit, mean and log-scale
outputs at about the codec's rates (2.4 weight units a step for the
logits, 0.025 for the rest), and in the variants also on the biases of the
last hidden layer, the last two or all three (in activation units, at the
rate given).  PyTorch float arithmetic on the integer network's weights;
no calibration table, error feedback or online bias, so the figures are
the network's alone.  It prints, per photograph, the bits per pixel of the
network as it is and each variant's change of them.

Measured on five held-out 768x512 photographs (docs/MODELS.md, "Hidden
biases learnt online"): from the shipped network the biases add 0.2-6 %
to the head's gain; from effort 7's sent change they add nothing, or cost
up to 8 %.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from codec.arm import adaptation
from codec.arm.adaptation import _floored, _Sample
from codec.arm.codec import ARMPlaneCodec
from models.arm.network import FIELDS, mixture_bits

CHUNK = 256
HEAD_RATES = (2.4, 0.025)        # logits; means and log-scales (weight units a step)


def online_bits(sample: _Sample, bias_rate: float, bias_layers: tuple, learn_head: bool = True) -> float:
    """The image's bits, each chunk coded under what the chunks before it taught."""
    spec = sample.spec
    nh = spec.hidden_layers
    first = min(bias_layers) if bias_layers else nh
    d_head = torch.zeros_like(sample.head, requires_grad=True)
    d_bias = {i: torch.zeros_like(sample.biases[i], requires_grad=True) for i in bias_layers}
    rate = torch.zeros_like(sample.head).view(-1, FIELDS, spec.mixtures)
    rate[:, :3], rate[:, 3:9] = HEAD_RATES
    rate = rate.view_as(sample.head)
    groups = [{"params": [d_head], "lr": 1.0}]
    if d_bias:
        groups.append({"params": list(d_bias.values()), "lr": bias_rate})
    opt = torch.optim.Adam(groups, betas=(0.75, 1 - 1 / 256))
    total, n = 0.0, len(sample)
    for a in range(0, n, CHUNK):
        idx = slice(a, min(n, a + CHUNK))
        h = sample.features[idx] if first == nh else sample.inputs[first][idx]
        for i in range(first, nh):
            pre = (h @ sample.weights[i] + sample.biases[i]) * sample.scales[i] + d_bias[i]
            h = torch.clamp(_floored(pre), 0, spec.act_max)
        raw = (h @ (sample.head + d_head * rate) + sample.head_bias + sample.skip[idx]) * sample.head_scale
        raw = raw.view(-1, FIELDS, spec.mixtures).permute(1, 2, 0)[None, :, :, None, :]
        bits = mixture_bits(raw, sample.values[None, :, None, idx], spec, bound=torch.clamp).sum()
        total += float(bits.detach())
        if learn_head or d_bias:
            opt.zero_grad()
            (bits / (idx.stop - idx.start)).backward()
            opt.step()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--model", default="arm-v5")
    parser.add_argument("--adapted", action="store_true", help="start from effort 7's fitted change")
    args = parser.parse_args()
    torch.set_num_threads(1)
    arm = ARMPlaneCodec(args.model)
    last = arm.net.spec.hidden_layers - 1
    variants = {"head": (0.0, ())}
    if args.adapted:
        variants.update({f"head, last bias {r}": (r, (last,)) for r in (0.1, 0.3, 3.0)})
        variants.update({f"head, last two biases {r}": (r, (last - 1, last)) for r in (0.1, 0.3, 3.0)})
    else:
        variants.update({"head, last bias 3": (3.0, (last,)),
                         "head, last two biases 1": (1.0, (last - 1, last)),
                         "head, last two biases 3": (3.0, (last - 1, last)),
                         "head, all biases 3": (3.0, tuple(range(last + 1)))})
    for path in args.photos:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        geo, buf, values = arm._layout(pixels)
        net = arm.net
        if args.adapted:
            net = arm._fit_change(geo, buf, values, adaptation.fits_for_effort(7))[0].apply(net)
        sample = _Sample(net, geo.context(buf, geo.flat), values, first=0)
        base = online_bits(sample, 0.0, (), learn_head=False)
        changes = {name: online_bits(sample, r, layers) / base - 1 for name, (r, layers) in variants.items()}
        print(f"{path}: {base / len(sample):.4f} bpp; "
              + "; ".join(f"{name} {100 * c:+.3f} %" for name, c in changes.items()), flush=True)


if __name__ == "__main__":
    main()
