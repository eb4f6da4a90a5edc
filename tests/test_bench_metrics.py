"""The benchmark's BD-rate reproduces ANCHORS.md from the curves it lists."""
import pytest

from bench.metrics import bd_rate, psnr

JPEG = [(0.256, 26.67), (0.449, 29.14), (0.610, 30.49), (0.743, 31.42), (0.869, 32.17),
        (1.005, 32.91), (1.213, 33.92), (1.549, 35.37), (2.315, 38.03), (3.306, 40.56)]
WEBP = [(0.217, 28.11), (0.326, 29.60), (0.476, 31.23), (0.673, 33.01), (0.877, 34.48),
        (1.448, 37.61), (2.798, 41.66)]
HYPERPRIOR = [(0.131, 27.58), (0.209, 29.20), (0.320, 30.97), (0.478, 32.84), (0.669, 34.53),
              (0.939, 36.74), (1.259, 38.58), (1.660, 40.56)]


def test_bd_rate_matches_anchors():
    assert bd_rate(JPEG, WEBP) == pytest.approx(-34.6, abs=0.05)
    assert bd_rate(JPEG, HYPERPRIOR) == pytest.approx(-52.9, abs=0.05)
    assert bd_rate(JPEG, JPEG) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_needs_overlap():
    assert bd_rate(JPEG, [(0.5, 50.0), (0.6, 51.0), (0.7, 52.0), (0.8, 53.0)]) is None


def test_psnr():
    import numpy as np
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 1) == pytest.approx(48.13, abs=0.01)


def test_ms_ssim_is_none_below_its_five_scales():
    import numpy as np

    from bench.metrics import ms_ssim
    small = np.zeros((160, 400, 3), np.uint8)
    assert ms_ssim(small, small) is None
    big = np.random.default_rng(0).integers(0, 256, (161, 170, 3), dtype=np.uint8)
    assert ms_ssim(big, big) == pytest.approx(1.0)
