"""Distortion and rate-comparison measures, as ANCHORS.md defines them."""
from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """RGB PSNR in dB of one image (8-bit)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


MS_SSIM_MIN_SIDE = 161


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM of one image (8-bit RGB), or None for an image under
    ``MS_SSIM_MIN_SIDE`` pixels a side: its five scales, each half the
    last, need that much (pytorch_msssim's 11-pixel window at the coarsest)."""
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    # copies: the arrays may be read-only views of decoded images
    ta = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(np.array(b)).permute(2, 0, 1)[None].double()
    return float(_ms_ssim(ta, tb, data_range=255, size_average=True))


def bd_rate(anchor: list[tuple[float, float]], test: list[tuple[float, float]],
            lo_bpp: float = 0.1, hi_bpp: float = 2.0) -> float | None:
    """Bjøntegaard delta rate of ``test`` against ``anchor`` in percent.

    Points are (bpp, PSNR); only points with lo_bpp <= bpp <= hi_bpp are used.
    A cubic fit of log(bpp) against PSNR is integrated over the PSNR range both
    curves cover.  Negative: fewer bits than the anchor at equal PSNR.  None
    when the curves do not overlap or have fewer than 4 points in range.
    """
    def usable(points):
        p = sorted((r, d) for r, d in points if lo_bpp <= r <= hi_bpp)
        return np.log([r for r, _ in p]), np.array([d for _, d in p])

    ra, da = usable(anchor)
    rt, dt = usable(test)
    if len(da) < 4 or len(dt) < 4:
        return None
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    if lo >= hi:
        return None
    pa, pt = np.polyfit(da, ra, 3), np.polyfit(dt, rt, 3)
    ia, it = np.polyint(pa), np.polyint(pt)
    avg = ((np.polyval(it, hi) - np.polyval(it, lo)) - (np.polyval(ia, hi) - np.polyval(ia, lo))) / (hi - lo)
    return float((np.exp(avg) - 1) * 100)
