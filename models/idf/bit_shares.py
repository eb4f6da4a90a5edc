"""Where an IDF file's bits are: the latents' ideal bits by level, channel
group and checkerboard half.  A measuring tool, not a codec path.

    python -m models.idf.bit_shares PHOTO.png ... [--model idf-v9]

The plan is effort 6's (the shipped priors, no corrections), so the
figures are the prior's alone.  Per photograph: bits per subpixel, then
per level (z_1 finest) its share of the bits and its bits a symbol, and
per channel group and half (a: the anchors, b: the rest) its share.
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from codec.idf.codec import PLAIN, IDFPlaneCodec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--model", default="idf-v9")
    args = parser.parse_args()
    idf = IDFPlaneCodec(args.model)
    for path in args.photos:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        latents = idf.flow.forward(pixels.astype(np.float32).transpose(2, 0, 1))
        plan = idf._plan(idf.flow, latents, PLAIN)
        total = sum(idf._bits(*coded) for coded in plan.coded)
        print(f"{path}: {total / pixels.size:.3f} bpsp")
        for i, (z, means, levels) in enumerate(plan.coded):       # coarsest first
            level = idf.spec.levels - 1 - i
            k = idf.flow.priors[level].group_size
            halves = idf._halves(*z.shape[1:])
            z, means, levels = (a.reshape(len(a), -1) for a in (z, means, levels))
            parts = [f"g{g // k}{'ab'[h]} {100 * idf._bits(z[g:g + k, half], means[g:g + k, half], levels[g:g + k, half]) / total:.1f} %"
                     for g in range(0, len(z), k) for h, half in enumerate(halves)]
            bits = idf._bits(z, means, levels)
            print(f"  z_{level + 1}: {100 * bits / total:.1f} % of the bits, {bits / z.size:.2f} a symbol; "
                  + ", ".join(parts))


if __name__ == "__main__":
    main()
