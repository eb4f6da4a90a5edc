"""`python -m bench heldout` writes the crops models are selected on: centre
crops of exactly the photographs the trainers hold out."""
from pathlib import Path

import numpy as np
from PIL import Image

from bench.heldout import write_crops
from models.data import load_images


def test_crops_are_the_centres_of_the_held_out_photographs(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "train"
    data.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20 + i, 30 + i, 3), dtype=np.uint8)).save(data / f"{i:03}.png")
    written = write_crops(tmp_path / "held", data, width=16, height=10)
    _, held = load_images(data)
    assert [p.name for p in written] == ["002.png", "003.png", "004.png", "005.png"]
    for path, full in zip(written, held):
        crop = np.asarray(Image.open(path))
        h, w = full.shape[:2]
        y, x = (h - 10) // 2, (w - 16) // 2
        assert np.array_equal(crop, full[y:y + 10, x:x + 16])


def test_downscaled_crops_are_the_centres_of_the_smaller_photographs(tmp_path):
    rng = np.random.default_rng(1)
    data = tmp_path / "train"
    data.mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(data / f"{i:03}.png")
    written = write_crops(tmp_path / "held", data, width=100, height=100, downscale=2)
    _, held = load_images(data)
    for path, full in zip(written, held):
        small = Image.fromarray(full).resize((30, 20), Image.Resampling.LANCZOS)
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(small))


def test_the_data_sets_folder_follows_nc_shared_dir(tmp_path):
    """Benchmarks and trainers read ``NC_SHARED_DIR`` when it is set (the
    folder beside the checkout otherwise), so the data sets can live
    anywhere and the suite can be run with them out of sight."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    script = "from models.data import DEFAULT_TRAIN_DIR; print(DEFAULT_TRAIN_DIR)"
    env = dict(os.environ, NC_SHARED_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=True, timeout=120, cwd=root).stdout.strip()
    assert out == str(tmp_path / "data" / "train")
    env.pop("NC_SHARED_DIR")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=True, timeout=120, cwd=root).stdout.strip()
    assert out.endswith(os.path.join("shared", "data", "train")) and out != str(tmp_path / "data" / "train")


def test_every_tenth_of_the_further_photographs_is_cropped_too(tmp_path):
    """With a photographs folder, the crops are those of every photograph
    the trainers hold out: the training folder's last four and every 10th
    of the sub-folders' (named by their path, '/' as '-')."""
    rng = np.random.default_rng(2)
    data, photos = tmp_path / "train", tmp_path / "photos"
    data.mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(data / f"{i:03}.png")
    for sub in ("a", "b"):
        (photos / sub).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
                photos / sub / f"{i:02}.png")
    written = write_crops(tmp_path / "held", data, width=8, height=8, photos=photos)
    assert [p.name for p in written] == ["001.png", "002.png", "003.png", "004.png",
                                         "a-09.png", "b-09.png"]
    assert np.array_equal(np.asarray(Image.open(written[-1])),
                          np.asarray(Image.open(photos / "b" / "09.png"))[2:10, 2:10])
