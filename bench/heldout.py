"""The model-selection images: centre crops of the photographs the trainers
hold out (``models.data.load_images``), written as PNG so every benchmark
and codec can read them like any other folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.data import DEFAULT_TRAIN_DIR, centre_crop, downscaled, split_photos


def write_crops(out: Path, data: Path | None = None, width: int = 768, height: int = 512,
                downscale: float = 1.0, photos: Path | None = None) -> list[Path]:
    """Centre ``width`` x ``height`` crops (all of a shorter side) of the
    held-out photographs (of ``data`` and, if given, of ``photos``, by the
    trainers' fixed rule), made ``downscale`` times smaller first.  Names:
    the photograph's path under its folder, '/' as '-'."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    split = split_photos(data or DEFAULT_TRAIN_DIR, photos)
    for src, name in zip(split.held_out, split.held_out_names):
        im = downscaled([np.asarray(Image.open(src).convert("RGB"))], downscale)[0]
        path = out / f"{Path(name.replace('/', '-')).stem}.png"
        Image.fromarray(centre_crop(im, height, width)).save(path)
        written.append(path)
    return written
