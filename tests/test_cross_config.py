"""Bit-exactness across process configurations.

One differing frequency corrupts the rest of an image, so the codec must
derive identical probabilities under any thread count and instruction set.
Each test encodes in one process and decodes in another started with a
different configuration: PyTorch and oneDNN limited to their oldest kernels,
OpenBLAS forced to an SSE-only core type, NumPy's SIMD dispatch narrowed,
numba compiling for a generic CPU, one thread; and the reverse.  Below effort 7 encoding in both configurations
must also give the same bytes (from 7 the ARM encoder fits its head in
float, which may end on other integers elsewhere: both files decode
everywhere).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codec.arm.adaptation import DEEP_CHANGE, UNCHANGED_HEAD
from codec.arm.codec import LEARN
from codec.format.container import SegmentKind, unpack
from codec.weights import DEFAULT_MODELS

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_ENV = {}
NARROW_ENV = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OPENBLAS_CORETYPE": "Prescott",
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX2 FMA3",
    "NUMBA_CPU_NAME": "generic",       # the ARM decoder's compiled kernels, for any x86-64
}
WIDE_ENV = {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}

SCRIPT = """
import sys, codec
from PIL import Image
op, src, dst = sys.argv[1:4]
if op == "encode":
    open(dst, "wb").write(codec.encode(Image.open(src)))
elif op == "encode-e6":
    open(dst, "wb").write(codec.encode(Image.open(src), effort=6))
elif op == "encode-adapted":
    # the ARM's change of its head and last two hidden layers (codec/arm/adaptation.py),
    # taken whatever its bytes cost: a small test image would not pay for one
    from codec.arm import adaptation
    table = adaptation.ImageChange.table
    adaptation.ImageChange.table = lambda self, tables: (table(self, tables)[0], 0.0)
    adaptation.MIN_PIXELS = 0
    adaptation._FITS = {7: (adaptation.Fit(300, (8, 4), 1 << 12),)}    # shorter than effort 7's: exactness is the point here
    # the default model itself: as shipped, with the online head, another may code smaller
    from codec.weights import DEFAULT_MODELS
    open(dst, "wb").write(codec.encode(Image.open(src).convert("RGB"), effort=7,
                                       model=DEFAULT_MODELS["arm"]))
else:
    codec.decode(open(src, "rb").read()).save(dst)
"""


def run(op: str, src: Path, dst: Path, env_extra: dict) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in NARROW_ENV and k not in WIDE_ENV}
    env.update(env_extra)
    subprocess.run([sys.executable, "-c", SCRIPT, op, str(src), str(dst)], env=env, check=True,
                   cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def sample(tmp_path_factory, photo_large):
    from codec.arm.codec import (
        CODED_TABLES,
        LAYOUT_FEEDBACK,
        LEARN,
        ONLINE,
        STEADY,
        WINDOWED,
        ARMPlaneCodec,
    )

    # the colour planes must exercise the richest layout (band table, error
    # feedback, both range-coded, the online context bias and the online head)
    data = ARMPlaneCodec(DEFAULT_MODELS["arm"]).encode(np.asarray(photo_large)).data
    assert data[1] == LAYOUT_FEEDBACK | WINDOWED | ONLINE | LEARN | STEADY | CODED_TABLES
    d = tmp_path_factory.mktemp("cross")
    photo = photo_large
    rgba = np.concatenate([np.asarray(photo), np.asarray(photo.convert("L"))[..., None]], 2)
    src = d / "in.png"
    Image.fromarray(rgba, "RGBA").save(src)
    return d, src


@pytest.mark.parametrize("enc_env, dec_env", [(WIDE_ENV, NARROW_ENV), (NARROW_ENV, WIDE_ENV)],
                         ids=["default-to-narrow", "narrow-to-default"])
@pytest.mark.parametrize("op", ["encode", "encode-adapted"])
def test_encode_in_one_configuration_decode_in_another(sample, enc_env, dec_env, op):
    """(encode-adapted: RGB whose ARM segment carries a change of the last
    two hidden layers, and learns its head while coding.)"""
    d, src = sample
    nc, back = d / f"{op}-{id(enc_env)}.nc", d / f"{op}-{id(enc_env)}.png"
    run(op, src, nc, enc_env)
    expected = Image.open(src)
    if op == "encode-adapted":
        segment = unpack(nc.read_bytes()).segment(SegmentKind.COLOUR)
        assert segment[2] == UNCHANGED_HEAD and segment[3] == DEEP_CHANGE + 2
        assert segment[1] & LEARN
        expected = expected.convert("RGB")
    run("decode", nc, back, dec_env)
    np.testing.assert_array_equal(np.asarray(Image.open(back)), np.asarray(expected))


def test_both_configurations_write_identical_files(sample):
    """Below effort 7, where no float fit (the ARM head's) is involved."""
    d, src = sample
    a, b = d / "a.nc", d / "b.nc"
    run("encode-e6", src, a, WIDE_ENV)
    run("encode-e6", src, b, NARROW_ENV)
    assert a.read_bytes() == b.read_bytes()

