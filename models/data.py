"""Training data: random crops of the photographs in ``shared/data/train``
and ``shared/data/photos/*/``.

Fixed rules hold some of them out for model selection, so that no run
selects on an image it trained on: the last four of ``train`` (sorted by
name) and every tenth of ``photos`` (sorted by path relative to it, across
its folders).  Kodak is never read here.  ``shared`` is the folder beside
the checkout unless the environment variable ``NC_SHARED_DIR`` names
another (the test suite runs without it: its photographs are fixtures in
``tests/data/fixtures``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SHARED_DIR = Path(os.environ.get("NC_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
SHARED_DATA = SHARED_DIR / "data"
DEFAULT_TRAIN_DIR = SHARED_DATA / "train"
DEFAULT_PHOTOS_DIR = SHARED_DATA / "photos"

HELD_OUT = 4            # the last photographs of train/
PHOTOS_HELD_OUT_EVERY = 10  # of photos/*/: the 10th, 20th, ... by sorted relative path

SUFFIXES = (".png", ".webp")  # PNG, or WebP lossless where the photographs travel in less space


def image_paths(folder: Path) -> list[Path]:
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix in SUFFIXES)
    if not paths:
        raise SystemExit(f"error: no training images in {folder}")
    return paths


def held_out_paths(folder: Path, held_out: int = HELD_OUT) -> list[Path]:
    """The photographs of a ``train``-like folder kept out of training."""
    return image_paths(folder)[-held_out:]


def load_images(folder: Path, held_out: int = HELD_OUT) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images = [read_rgb(p) for p in image_paths(folder)]
    return images[:-held_out], images[-held_out:]


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def folder_photo_paths(folder: Path) -> list[Path]:
    """The photographs in ``folder``'s sub-folders, sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"error: no photographs folder {folder} (--photos none trains on --data alone)")
    paths = sorted((p for p in folder.glob("*/*") if p.suffix in SUFFIXES),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not paths:
        raise SystemExit(f"error: no photographs in the sub-folders of {folder}")
    return paths


@dataclass(frozen=True)
class PhotoSplit:
    """The training and held-out photographs of a ``train`` folder and,
    optionally, a ``photos`` folder of sub-folders, by the fixed rules above."""

    train: list[Path]
    held_out: list[Path]
    held_out_names: list[str]     # relative names, recorded in checkpoints
    legacy_names: list[str]       # those of train/ alone: what runs before photos/ selected on

    def selects_as(self, recorded: list[str] | None) -> bool:
        """Whether a checkpoint that recorded ``recorded`` (None: written
        before checkpoints recorded it, so selected on train/ alone) was
        selected on the same photographs as this split."""
        return (self.legacy_names if recorded is None else list(recorded)) == self.held_out_names


def split_photos(train_dir: Path, photos_dir: Path | None = None) -> PhotoSplit:
    paths = image_paths(train_dir)
    if len(paths) <= HELD_OUT:
        raise SystemExit(f"error: {train_dir} has {len(paths)} images; the last {HELD_OUT} are held out")
    train, held = paths[:-HELD_OUT], paths[-HELD_OUT:]
    names = [p.name for p in held]
    legacy = list(names)
    if photos_dir is not None:
        for i, p in enumerate(folder_photo_paths(photos_dir)):
            if i % PHOTOS_HELD_OUT_EVERY == PHOTOS_HELD_OUT_EVERY - 1:
                held.append(p)
                names.append(p.relative_to(photos_dir).as_posix())
            else:
                train.append(p)
    return PhotoSplit(train, held, names, legacy)


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
    often, and within a set each image in proportion to its area.  Images
    smaller than a crop (the smallest photographs at the smaller scales)
    are left out of their set."""

    def __init__(self, images, size: int, batch: int, grey_prob: float = 0.1,
                 seed: int = 0, noise_prob: float = 0.0, noise_max: float = 0.0):
        sets = images if images and isinstance(images[0], list) else [images]
        sets = [[im for im in s if min(im.shape[:2]) >= size] for s in sets]
        if not all(sets):
            raise SystemExit(f"error: no training image is {size}x{size} or larger at some scale")
        self.counts = [len(s) for s in sets]
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
        # assembled channels-first in one copy a crop: on a GPU machine the
        # crops, not the network, can set the pace of a step
        out = np.empty((self.batch, 3, self.size, self.size), np.uint8)
        for b in range(self.batch):
            im = self.images[self.rng.choice(len(self.images), p=self.weights)]
            y = self.rng.integers(0, im.shape[0] - self.size + 1)
            x = self.rng.integers(0, im.shape[1] - self.size + 1)
            crop = im[y:y + self.size, x:x + self.size]
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            grey = luma(crop) if self.rng.random() < self.grey_prob else None
            if self.rng.random() < self.noise_prob:
                if grey is not None:
                    crop, grey = np.repeat(grey[..., None], 3, axis=2), None
                crop = add_noise(crop, self.rng.uniform(0, self.noise_max), self.rng)
            out[b] = grey if grey is not None else crop.transpose(2, 0, 1)
        return torch.from_numpy(out)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rounded BT.601 luma of an H x W x 3 uint8 image, H x W uint8."""
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    return ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8)


def centre_crop(im: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centre height x width of ``im`` (all of a side shorter than that)."""
    h, w = im.shape[:2]
    y, x = max(0, (h - height) // 2), max(0, (w - width) // 2)
    return np.ascontiguousarray(im[y:y + height, x:x + width])


def centre_crops(images: list[np.ndarray], size: int, multiple: int = 1) -> list[torch.Tensor]:
    """The centre size x size of each image, each side cut down to a multiple
    of ``multiple`` where the image is smaller (the networks' downsampling
    needs whole blocks); images smaller than ``multiple`` are left out."""
    out = []
    for im in images:
        h, w = (min(size, side // multiple * multiple) for side in im.shape[:2])
        if h and w:
            out.append(torch.from_numpy(centre_crop(im, h, w)).permute(2, 0, 1)[None])
    return out


def noisy_crops(crops: list[torch.Tensor], sigma: float, seed: int = 0) -> list[torch.Tensor]:
    """The held-out crops with fixed noise of ``sigma`` levels (see ``add_noise``)."""
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(add_noise(c.numpy(), sigma, rng)) for c in crops]
