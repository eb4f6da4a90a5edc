"""What the IDF's coupling width costs a decode: the codec's exact NumPy
flow and priors (every network a decode runs) on one image-sized input,
for each width and coupling layout, with random 8-bit weights (the time
does not depend on their values), in float32 and with every layer in
float64 (the arithmetic a layer whose sums could reach 2^24 takes,
``models/idf/integer.py``).  Entropy coding is left out: it does not
depend on the width."""
from __future__ import annotations

import time

import numpy as np

from codec.idf.codec import integer_flow
from models.idf.integer import IntegerIDF
from models.idf.spec import IDFSpec


def random_tensors(spec: IDFSpec, seed: int = 0) -> dict:
    """Shipped-weights tensors of ``spec`` with small random integers."""
    from models.idf.export import integer_nets, layer_fracs
    from models.idf.network import IDF

    net = IDF(spec)
    rng = np.random.default_rng(seed)
    tensors = {}
    for prefix, sub in integer_nets(net):
        for i, layer, _ in layer_fracs(sub, spec):
            tensors[f"{prefix}.{i}.weight"] = rng.integers(-3, 4, tuple(layer.weight.shape)).astype(np.int32)
            tensors[f"{prefix}.{i}.bias"] = rng.integers(-64, 65, tuple(layer.bias.shape)).astype(np.int32)
    for l, prior in enumerate(net.priors):
        tensors[f"prior{l}.bias"] = np.zeros(tuple(prior.bias.shape), np.int32)
    return tensors


def seconds(flow: IntegerIDF, x: np.ndarray, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for level, (z, kept) in enumerate(flow.forward(x)):
            flow.priors[level](kept, z)
        best = min(best, time.perf_counter() - start)
    return best


def run(widths, layouts, width: int, height: int, repeats: int) -> None:
    x = np.random.default_rng(1).integers(0, 256, (3, height, width)).astype(np.float32)
    print(f"flow and priors of a {width}x{height} image, best of {repeats}, seconds")
    print(f"{'couplings':>14} {'width':>5} {'float32':>8} {'float64':>8}")
    for partitions in layouts:
        name = "bipartite" if partitions == 2 else "quadripartite"
        for hidden in widths:
            spec = IDFSpec(levels=4, couplings=4, partitions=partitions, hidden=hidden,
                           prior_groups=3, prior_checkerboard=True)
            tensors = random_tensors(spec)
            single = seconds(integer_flow(tensors, spec), x, repeats)
            double = seconds(integer_flow(tensors, spec, float64=True), x, repeats)
            print(f"{name:>14} {hidden:5d} {single:8.2f} {double:8.2f}", flush=True)
