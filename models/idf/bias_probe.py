"""Would the IDF gain from its priors' output biases moved per image, sent
or learnt while decoding?  A float probe, not a codec path.

    python -m models.idf.bias_probe PHOTO.png ...              # online, then sent
    python -m models.idf.bias_probe --bands 32 --rate 64 PHOTO.png

The sent change (``codec/idf/adaptation.py``) moves the last layer's
weights of the two finest levels' priors, never their biases; a bias per
output (a mean and a log-scale per channel) would cost a few dozen bytes.

Online: within each prior network's pass (one channel group's anchors or
the rest), the positions in raster order are cut into ``--bands`` bands;
each band's bits are counted under the biases learnt from the bands above
it, then one Adam step (``--rate``, accumulator units) is taken on them.
The figures are the network's bits alone (no corrections), from the
shipped priors, beside the best static bias per network (Adam on the whole
pass: what a sent bias could at most give there).

Sent: that static bias, rounded to 2^``--shift`` accumulator units, for
every network of every level, coded through the codec as effort 6 plans
(corrections included): the change of the plan's bits, the biases' own
bytes not counted.  With ``--effort 7`` (or 8, 9) the biases are fitted
and counted on top of that effort's first sent change instead.
"""
from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from PIL import Image

from codec.idf import adaptation
from codec.idf.adaptation import _patches, latent_bits
from codec.idf.codec import IDFPlaneCodec
from models.idf.integer import IntegerIDF, IntegerNet

STATIC_STEPS = 150


def _pass_tensors(p: adaptation.NetworkPass) -> tuple[torch.Tensor, torch.Tensor]:
    """(the accumulator (2k, n), the latents (k, n)) over the whole pass."""
    acc = p.accumulator(_patches(p.features, p.positions))
    return (torch.from_numpy(acc.astype(np.float32)),
            torch.from_numpy(p.latents[:, p.positions].astype(np.float32)))


def _static_bias(spec, acc, zs, rate: float) -> torch.Tensor:
    bias = torch.zeros(len(acc), requires_grad=True)
    opt = torch.optim.Adam([bias], lr=rate)
    for _ in range(STATIC_STEPS):
        loss = latent_bits(acc + bias[:, None], zs, spec) / zs.shape[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return bias.detach()


def online(idf: IDFPlaneCodec, latents, bands: int, rate: float) -> tuple[float, float, float]:
    """(shipped, online, best static) bits of the adapted levels' networks."""
    spec = idf.spec
    shipped = learnt = static = 0.0
    for p in adaptation.network_passes(idf.flow, latents):
        acc, zs = _pass_tensors(p)
        best = _static_bias(spec, acc, zs, rate)
        with torch.no_grad():
            shipped += float(latent_bits(acc, zs, spec))
            static += float(latent_bits(acc + best[:, None], zs, spec))
        bias = torch.zeros(len(acc), requires_grad=True)
        opt = torch.optim.Adam([bias], lr=rate)
        edges = np.linspace(0, zs.shape[1], bands + 1).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            loss = latent_bits(acc[:, a:b] + bias[:, None], zs[:, a:b], spec)
            learnt += float(loss.detach())
            opt.zero_grad()
            (loss / (b - a)).backward()
            opt.step()
    return shipped, learnt, static


def sent(idf: IDFPlaneCodec, latents, shift: int, rate: float,
         flow: IntegerIDF | None = None) -> tuple[float, float, int]:
    """(the plan's bits under ``flow`` (default: the shipped one), the
    plan's bits with every network's static bias rounded to 2^shift units
    added, how many biases)."""
    flow = idf.flow if flow is None else flow
    priors = [copy.copy(p) for p in flow.priors]
    for p in priors:
        p.nets, p.spatial = list(p.nets), list(p.spatial) if p.spatial else None
    count = 0
    for p in adaptation.network_passes(flow, latents, range(idf.spec.levels)):
        (kind, g), net = p.slot, p.net
        q = np.rint(_static_bias(idf.spec, *_pass_tensors(p), rate).numpy() / 2**shift).astype(np.int64)
        layers = [(layer.weights, layer.bias[:, 0]) for layer in net.layers]
        layers[-1] = (layers[-1][0], layers[-1][1] + (q << shift))
        (priors[p.level].nets if kind == "group" else priors[p.level].spatial)[g] = IntegerNet(layers, idf.spec)
        count += len(q)
    changed = IntegerIDF(idf.spec, flow.flows, priors)
    return idf._plan(flow, latents, None).bits, idf._plan(changed, latents, None).bits, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--model", default="idf-v9")
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--rate", type=float, default=64.0, help="Adam's step, accumulator units")
    parser.add_argument("--shift", type=int, default=4, help="the sent biases' grid, 2^shift units")
    parser.add_argument("--effort", type=int, default=6, help="7-9: the sent biases on top of that effort's change")
    args = parser.parse_args()
    torch.set_num_threads(1)
    idf = IDFPlaneCodec(args.model)
    for path in args.photos:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        latents = idf.flow.forward(pixels.astype(np.float32).transpose(2, 0, 1))
        shipped, learnt, static = online(idf, latents, args.bands, args.rate)
        fits = adaptation.fits_for_effort(args.effort)
        flow = adaptation.fit(idf.flow, latents, fits[:1])[0].apply(idf.flow) if fits else None
        plan, biased, count = sent(idf, latents, args.shift, args.rate, flow)
        print(f"{path}: networks of z_1, z_2 {shipped / 8:.0f} B; learnt online {100 * (learnt / shipped - 1):+.2f} %, "
              f"best static bias {100 * (static / shipped - 1):+.2f} % "
              f"({100 * (learnt - shipped) / plan:+.2f} / {100 * (static - shipped) / plan:+.2f} % of the file); "
              f"{count} static biases sent, through the codec at effort {args.effort}: "
              f"{100 * (biased / plan - 1):+.2f} % of the file")


if __name__ == "__main__":
    main()
