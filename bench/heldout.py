"""The model-selection images: centre crops of the photographs the trainers
hold out (``models.data.load_images``), written as PNG so every benchmark
and codec can read them like any other folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.data import DEFAULT_TRAIN_DIR, held_out_paths


def write_crops(out: Path, data: Path | None = None, width: int = 768, height: int = 512) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in held_out_paths(data or DEFAULT_TRAIN_DIR):
        im = np.asarray(Image.open(src).convert("RGB"))
        h, w = im.shape[:2]
        y, x = max(0, (h - height) // 2), max(0, (w - width) // 2)
        path = out / f"{src.stem}.png"
        Image.fromarray(np.ascontiguousarray(im[y:y + height, x:x + width])).save(path)
        written.append(path)
    return written
