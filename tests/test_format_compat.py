"""Files written by earlier versions stay readable.

``tests/data/*.nc`` were written by earlier releases (see the README there);
each must still parse, and decode to its ``.png`` twin while the weights it
names are installed (weights are never changed in place: a retrained model
ships under a new id, see docs/FORMAT.md).  Lossless files must decode
exactly; lossy ones within one level per subpixel, the most a float32
synthesis transform may differ by across machines."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import codec
from codec import weights

DATA = Path(__file__).parent / "data"
FILES = sorted(DATA.glob("*.nc"))


def test_there_are_files_from_earlier_versions():
    assert FILES, "tests/data holds no .nc files"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_old_file_parses_and_decodes(path):
    data = path.read_bytes()
    facts = codec.info(data)
    expected = Image.open(path.with_suffix(".png"))
    assert (facts["width"], facts["height"], facts["mode"]) == (*expected.size, expected.mode)
    try:
        installed = weights.digest(facts["model"])
    except codec.WeightsMismatch:
        installed = None
    if installed is None or installed.hex() != facts["weights_digest"]:
        pytest.skip(f"weights {facts['model']}:{facts['weights_digest']} are not installed")
    decoded, expected = np.asarray(codec.decode(data)), np.asarray(expected)
    if facts["codec"] == "lossy":
        assert decoded.shape == expected.shape
        assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= 1
        if facts["mode"] == "RGBA":
            np.testing.assert_array_equal(decoded[..., 3], expected[..., 3])   # alpha is lossless
    else:
        np.testing.assert_array_equal(decoded, expected)
    image = codec.decode(data)
    for key in ("icc_profile", "exif", "transparency"):     # metadata (format v2)
        assert image.info.get(key) == Image.open(path.with_suffix(".png")).info.get(key), key
