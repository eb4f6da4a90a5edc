"""The photographs the trainers train and select on: fixed held-out rules
over ``train/`` and ``photos/*/``, and crops every network can take."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from models.data import PHOTOS_HELD_OUT_EVERY, RandomCrops, centre_crops, split_photos


def write(path, h=40, w=50, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def folders(tmp_path):
    train, photos = tmp_path / "train", tmp_path / "photos"
    for i in range(7):
        write(train / f"{i:03}.png")
    # 25 photographs in three folders; names chosen so that sorting by relative
    # path interleaves differently from sorting by file name
    for i in range(25):
        folder = ("bsd", "mc", "zz")[i % 3]
        write(photos / folder / f"{24 - i:02}.png", seed=i)
    (photos / "README.md").write_text("not a photograph")
    return train, photos


def test_held_out_are_train_last_four_and_every_tenth_photo(folders):
    train, photos = folders
    split = split_photos(train, photos)
    relative = sorted(p.relative_to(photos).as_posix() for p in photos.glob("*/*.png"))
    tenth = relative[PHOTOS_HELD_OUT_EVERY - 1::PHOTOS_HELD_OUT_EVERY]
    assert split.held_out_names == ["003.png", "004.png", "005.png", "006.png", *tenth]
    assert len(tenth) == 2
    assert [p.name for p in split.held_out[:4]] == split.held_out_names[:4]
    assert not set(split.train) & set(split.held_out)
    assert len(split.train) + len(split.held_out) == 7 + 25


def test_runs_before_photos_selected_on_train_alone(folders):
    train, photos = folders
    alone, both = split_photos(train), split_photos(train, photos)
    assert alone.selects_as(None) and not both.selects_as(None)
    assert both.selects_as(both.held_out_names) and not both.selects_as(alone.held_out_names)


def test_a_missing_photos_folder_is_an_error_not_a_smaller_set(tmp_path, folders):
    train, _ = folders
    with pytest.raises(SystemExit, match="^error: no photographs folder"):
        split_photos(train, tmp_path / "nowhere")


def test_crops_leave_out_images_smaller_than_a_crop():
    big, small = np.full((40, 40, 3), 7, np.uint8), np.zeros((20, 60, 3), np.uint8)
    batch = RandomCrops([[big, small], [big]], 32, 16, grey_prob=0)()
    assert (batch == 7).all()
    with pytest.raises(SystemExit, match="^error:"):
        RandomCrops([[big], [small]], 32, 2)


def test_held_out_crops_have_whole_blocks():
    images = [np.zeros((321, 481, 3), np.uint8), np.zeros((160, 240, 3), np.uint8),
              np.zeros((40, 300, 3), np.uint8)]
    assert [tuple(c.shape[2:]) for c in centre_crops(images, 256, 64)] == [(256, 256), (128, 192)]
    assert [tuple(c.shape[2:]) for c in centre_crops(images, 256)] == [(256, 256), (160, 240), (40, 256)]


def windows(image: np.ndarray, size: int) -> set[bytes]:
    """Every size x size window of ``image`` and of its mirror, channels first."""
    out = set()
    for im in (image, image[:, ::-1]):
        for y in range(im.shape[0] - size + 1):
            for x in range(im.shape[1] - size + 1):
                out.add(np.ascontiguousarray(im[y:y + size, x:x + size].transpose(2, 0, 1)).tobytes())
    return out


def test_crops_are_windows_of_the_photograph_or_its_mirror_or_their_luma():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (20, 23, 3), dtype=np.uint8)
    colour = RandomCrops([image], 16, 32, grey_prob=0.0, seed=1)()
    assert colour.shape == (32, 3, 16, 16) and colour.dtype == torch.uint8
    assert all(c.numpy().tobytes() in windows(image, 16) for c in colour)
    assert len({c.numpy().tobytes() for c in colour}) > 16  # positions and flips vary
    r, g, b = (image[..., c].astype(np.int64) for c in range(3))
    luma = ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8)
    grey = RandomCrops([image], 16, 8, grey_prob=1.0, seed=1)()
    assert all(c.numpy().tobytes() in windows(np.repeat(luma[..., None], 3, 2), 16) for c in grey)
