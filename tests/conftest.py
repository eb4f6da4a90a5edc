"""Shared fixtures: small crops of a real photograph, carried by the
repository (tests/data/fixtures, cut from docs/sample.png by
tests/data/make_fixtures.py), so a fresh clone runs the whole suite in
minutes without the training photographs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).resolve().parent / "data" / "fixtures"


def fixture_photo(name: str, size: tuple[int, int]) -> Image.Image:
    with Image.open(FIXTURES / name) as im:
        photo = im.convert("RGB")
    assert photo.size == size, f"{name} is {photo.size}, the tests expect {size}"
    return photo


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A 48x40 RGB crop of a real photograph (the ARM encoder sends it the
    single shift)."""
    return fixture_photo("photo-48x40.png", (48, 40))


@pytest.fixture(scope="session")
def photo_large() -> Image.Image:
    """A 256x192 RGB photograph: large enough that the ARM encoder sends a
    scale calibration table and error feedback (small crops get the single
    shift)."""
    return fixture_photo("photo-256x192.png", (256, 192))


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
