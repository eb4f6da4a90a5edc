"""Pack what a training run on a borrowed GPU machine needs into ``.gpu/``.

The device tool copies the working tree (64 MiB at most) to a bare machine
that has PyTorch, numpy, Pillow and safetensors but not this repository's
data.  The 40 training photographs are 69 MB as PNG; as WebP lossless (which
``models.data.load_images`` reads) the 36 training photographs and 384x384
centre crops of the 4 held-out ones take 54 MB, and warm starts go as float16
snapshots.  The shipped weights must not travel (``git rm --cached`` them and
list them in ``.git/info/exclude`` for the call; ``git reset`` after).

    python -m models.gpu_bundle --init lossy=models/checkpoints/lossy.safetensors

Then, with ``.gpu`` carried: ``python3 -m models.lossy.train --device cuda
--data .gpu/train --init-from .gpu/lossy-init.safetensors --max-minutes 8 ...``
(docs/MODELS.md, the lossy model's "Reproduce", has the options used).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from .data import DEFAULT_TRAIN_DIR

HELD_OUT, HELD_OUT_CROP = 4, 384


def pack_photos(src: Path, dst: Path) -> int:
    dst.mkdir(parents=True, exist_ok=True)
    paths = sorted(src.glob("*.png"))
    for i, p in enumerate(paths):
        im = Image.open(p).convert("RGB")
        if i >= len(paths) - HELD_OUT:
            w, h, s = *im.size, HELD_OUT_CROP
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        im.save(dst / f"{p.stem}.webp", "WEBP", lossless=True, quality=100, method=4)
    return sum(f.stat().st_size for f in dst.iterdir())


def pack_snapshot(src: Path, dst: Path) -> None:
    """A model-only snapshot (models/checkpoints form) in float16."""
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k).half().contiguous() for k in f.keys()}
    save_file(tensors, str(dst), metadata=meta)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    p.add_argument("--data", type=Path, default=DEFAULT_TRAIN_DIR)
    p.add_argument("--init", action="append", default=[], metavar="NAME=SNAPSHOT",
                   help="a warm start to pack as OUT/NAME-init.safetensors (repeatable)")
    args = p.parse_args(argv)
    size = pack_photos(args.data, args.out / "train")
    print(f"photographs: {size / 1e6:.1f} MB")
    for item in args.init:
        name, path = item.split("=", 1)
        pack_snapshot(Path(path), args.out / f"{name}-init.safetensors")
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {total / 2**20:.1f} MiB (the tracked tree travels too; 64 MiB in all)")


if __name__ == "__main__":
    main()
