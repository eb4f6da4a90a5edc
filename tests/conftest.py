"""Shared fixtures: small crops of real photographs (the training set, never
Kodak) so the whole suite runs in minutes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TRAIN_DIR = ROOT.parent / "shared" / "data" / "train"


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A 48x40 RGB crop of a real photograph."""
    path = TRAIN_DIR / "012.png"
    if not path.exists():
        pytest.skip("shared/data/train is not beside the checkout")
    with Image.open(path) as im:
        return im.convert("RGB").crop((300, 200, 348, 240))


@pytest.fixture(scope="session")
def photo_large() -> Image.Image:
    """A 256x192 RGB crop: large enough that the ARM encoder sends a scale
    calibration table (small crops get the single shift)."""
    path = TRAIN_DIR / "012.png"
    if not path.exists():
        pytest.skip("shared/data/train is not beside the checkout")
    with Image.open(path) as im:
        return im.convert("RGB").crop((300, 200, 556, 392))


@pytest.fixture(scope="session")
def photo_array(photo) -> np.ndarray:
    return np.asarray(photo)


@pytest.fixture(scope="module")
def temp_weights_dir():
    """Returns install(folder): points the codec at a folder of throw-away
    weights (with the shipped ARM models copied in, for alpha planes and the
    encoder's choice of model) until the module's tests end."""
    import shutil

    from codec import weights

    mp = pytest.MonkeyPatch()

    def install(folder: Path) -> Path:
        for model_id in weights.CANDIDATE_MODELS["arm"]:
            shutil.copy(weights.weights_path(model_id), folder / f"{model_id}.safetensors")
        mp.setattr(weights, "WEIGHTS_DIR", folder)
        return folder

    yield install
    mp.undo()
