"""Training data: random crops of the photographs in ``shared/data/train``.

The last images of the folder (sorted by name) are held out for model
selection; Kodak is never read here.  ``shared`` is the folder beside the
checkout unless the environment variable ``NC_SHARED_DIR`` names another
(the test suite runs without it: its photographs are fixtures in
``tests/data/fixtures``)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SHARED_DIR = Path(os.environ.get("NC_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
DEFAULT_TRAIN_DIR = SHARED_DIR / "data" / "train"


HELD_OUT = 4


def image_paths(folder: Path) -> list[Path]:
    # PNG, or WebP lossless where the photographs travel in less space
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix in (".png", ".webp"))
    if not paths:
        raise SystemExit(f"no training images in {folder}")
    return paths


def held_out_paths(folder: Path, held_out: int = HELD_OUT) -> list[Path]:
    """The photographs kept out of training, on which models are selected."""
    return image_paths(folder)[-held_out:]


def load_images(folder: Path, held_out: int = HELD_OUT) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images = [np.asarray(Image.open(p).convert("RGB")) for p in image_paths(folder)]
    return images[:-held_out], images[-held_out:]


def downscaled(images: list[np.ndarray], factor: float) -> list[np.ndarray]:
    """The images made ``factor`` times smaller (Lanczos, antialiased).

    The training photographs are about 1300 x 850; Kodak and many stored
    photographs are smaller renderings of larger originals, with more detail
    per pixel.  Smaller copies show a model that kind of picture."""
    if factor == 1:
        return list(images)
    out = []
    for im in images:
        h, w = im.shape[:2]
        size = (max(1, round(w / factor)), max(1, round(h / factor)))
        out.append(np.asarray(Image.fromarray(im).resize(size, Image.Resampling.LANCZOS)))
    return out


def add_noise(crop: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The crop with white Gaussian noise of ``sigma`` levels, rounded and clipped.

    The training photographs were downsampled and are nearly noise-free;
    photographs as people store them (film scans, small-sensor cameras) carry
    grain, which a model trained on clean crops mistakes for detail."""
    noisy = crop.astype(np.float64) + sigma * rng.standard_normal(crop.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


class RandomCrops:
    """Batches of random crops (uint8, B x 3 x S x S) with horizontal flips,
    an occasional grey crop, so grey images are in the training distribution,
    and optionally noise of a random strength (``noise_prob`` of the crops,
    sigma uniform in [0, ``noise_max``]).  ``images`` may be a list of image
    sets (e.g. the photographs at several sizes): each set is drawn equally
    often, and within a set each image in proportion to its area."""

    def __init__(self, images, size: int, batch: int, grey_prob: float = 0.1,
                 seed: int = 0, noise_prob: float = 0.0, noise_max: float = 0.0):
        sets = images if images and isinstance(images[0], list) else [images]
        self.images = [im for s in sets for im in s]
        self.size, self.batch, self.grey_prob = size, batch, grey_prob
        self.noise_prob, self.noise_max = noise_prob, noise_max
        self.rng = np.random.default_rng(seed)
        weights = []
        for s in sets:
            areas = np.array([im.shape[0] * im.shape[1] for im in s], dtype=np.float64)
            weights.append(areas / areas.sum() / len(sets))
        self.weights = np.concatenate(weights)

    def __call__(self) -> torch.Tensor:
        out = np.empty((self.batch, self.size, self.size, 3), np.uint8)
        for b in range(self.batch):
            im = self.images[self.rng.choice(len(self.images), p=self.weights)]
            y = self.rng.integers(0, im.shape[0] - self.size + 1)
            x = self.rng.integers(0, im.shape[1] - self.size + 1)
            crop = im[y:y + self.size, x:x + self.size]
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            if self.rng.random() < self.grey_prob:
                grey = (crop.astype(np.int32) @ np.array([299, 587, 114]) + 500) // 1000
                crop = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
            if self.rng.random() < self.noise_prob:
                crop = add_noise(crop, self.rng.uniform(0, self.noise_max), self.rng)
            out[b] = crop
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def centre_crop(im: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centre height x width of ``im`` (all of a side shorter than that)."""
    h, w = im.shape[:2]
    y, x = max(0, (h - height) // 2), max(0, (w - width) // 2)
    return np.ascontiguousarray(im[y:y + height, x:x + width])


def centre_crops(images: list[np.ndarray], size: int) -> list[torch.Tensor]:
    return [torch.from_numpy(centre_crop(im, size, size)).permute(2, 0, 1)[None] for im in images]


def noisy_crops(crops: list[torch.Tensor], sigma: float, seed: int = 0) -> list[torch.Tensor]:
    """The held-out crops with fixed noise of ``sigma`` levels (see ``add_noise``)."""
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(add_noise(c.numpy(), sigma, rng)) for c in crops]
