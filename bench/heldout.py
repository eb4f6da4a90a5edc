"""The model-selection images: centre crops of the photographs the trainers
hold out (``models.data.load_images``), written as PNG so every benchmark
and codec can read them like any other folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.data import DEFAULT_TRAIN_DIR, centre_crop, downscaled, held_out_paths


def write_crops(out: Path, data: Path | None = None, width: int = 768, height: int = 512,
                downscale: float = 1.0) -> list[Path]:
    """Centre ``width`` x ``height`` crops (all of a shorter side) of the
    held-out photographs, made ``downscale`` times smaller first."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in held_out_paths(data or DEFAULT_TRAIN_DIR):
        im = downscaled([np.asarray(Image.open(src).convert("RGB"))], downscale)[0]
        path = out / f"{src.stem}.png"
        Image.fromarray(centre_crop(im, height, width)).save(path)
        written.append(path)
    return written
