"""Writes the photo crops the test suite runs on (tests/data/fixtures/).

They are cut from docs/sample.png, which the repository ships (Wikimedia
Commons; see the README), so a fresh clone tests itself without the
training photographs.  The files are committed: run this only to remake
them (``python tests/data/make_fixtures.py``), and check that the tests that
depend on the crops' properties still hold."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "sample.png"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# name -> (left, upper, right, lower) in docs/sample.png (256x192)
CROPS = {
    "photo-48x40.png": (0, 128, 48, 168),       # nose, fur and background: ARM sends one shift
    "photo-256x192.png": (0, 0, 256, 192),      # the whole sample: ARM sends error feedback
}


def write_fixtures(folder: Path = FIXTURES) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(SAMPLE) as im:
        sample = im.convert("RGB")
    paths = []
    for name, box in CROPS.items():
        path = folder / name
        sample.crop(box).save(path, optimize=True)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_fixtures():
        print(f"{p.relative_to(ROOT)}  {p.stat().st_size} bytes")
