"""Lossy benchmark: rate-distortion of nc and the classic codecs, through
real files written, read back and decoded.

For every quality point: mean bpp, mean RGB PSNR and mean MS-SSIM over the
images (MS-SSIM over those at least 161 pixels a side, None if none is);
BD-rate of each codec against JPEG (ANCHORS.md's method); nc's encode and
decode seconds against a plain float32 conv autoencoder pass timed in the
same run; JSON and a plot of the curves.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Collection
from pathlib import Path

import numpy as np
from PIL import Image

import codec
from codec import api

from .metrics import bd_rate, ms_ssim, psnr
from .process import timed_command
from .reference import lossy_codecs

NC_QUALITIES = (1, 2, 3, 4, 5, 6, 7, 8)


def reference_autoencoder_seconds(height: int = 512, width: int = 768, repeats: int = 3) -> float:
    """A plain float32 conv autoencoder pass (N=128, M=192, four 5x5 stride-2
    layers each side) on a 768x512 image: the speed yardstick of the issue."""
    import torch
    import torch.nn as nn

    def enc():
        return nn.Sequential(nn.Conv2d(3, 128, 5, 2, 2), nn.ReLU(), nn.Conv2d(128, 128, 5, 2, 2), nn.ReLU(),
                             nn.Conv2d(128, 128, 5, 2, 2), nn.ReLU(), nn.Conv2d(128, 192, 5, 2, 2))

    def dec():
        return nn.Sequential(nn.ConvTranspose2d(192, 128, 5, 2, 2, 1), nn.ReLU(),
                             nn.ConvTranspose2d(128, 128, 5, 2, 2, 1), nn.ReLU(),
                             nn.ConvTranspose2d(128, 128, 5, 2, 2, 1), nn.ReLU(),
                             nn.ConvTranspose2d(128, 3, 5, 2, 2, 1))

    e, d = enc().eval(), dec().eval()
    x = torch.rand(1, 3, height, width)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            t = time.perf_counter()
            d(e(x))
            best = min(best, time.perf_counter() - t)
    return best


def _measure(images, work: Path, name: str, point, encode, decode, suffix: str) -> dict:
    bpp, ps, ms, enc_s, dec_s = [], [], [], [], []
    for path, pixels in images:
        out = work / f"{path.stem}.{name.replace(' ', '_')}.{point}{suffix}"
        t = time.perf_counter()
        encode(pixels, point, path, out)
        enc_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        back = decode(out)
        dec_s.append(time.perf_counter() - t)
        bpp.append(8 * out.stat().st_size / (pixels.shape[0] * pixels.shape[1]))
        ps.append(psnr(pixels, back))
        ms.append(ms_ssim(pixels, back))
    ms = [m for m in ms if m is not None]
    return {"point": point, "bpp": statistics.mean(bpp), "psnr": statistics.mean(ps),
            "ms_ssim": statistics.mean(ms) if ms else None, "encode_s": statistics.mean(enc_s),
            "decode_s": statistics.mean(dec_s)}


def run(folder: Path, with_nc: bool, references: Collection[str] | None, limit: int | None,
        json_out: Path, plot_out: Path | None, models: tuple[str, ...] = (),
        efforts: tuple[int, ...] = (), every: int = 1, process_images: int = 2) -> dict:
    """``references``: the names of the classic codecs to measure (None:
    all); ``models`` and ``efforts``: lossy weights and encode efforts to
    measure (default: the codec's), each pair its own curve, ``nc``, or
    ``nc:MODEL`` and ``nc eN`` when several are compared; ``every``: only
    every Nth image; ``process_images``: time whole ``nc encode`` and ``nc
    decode`` processes (start-up included) on this many of the images, at
    every quality."""
    paths = sorted(Path(folder).glob("*.png"))[:limit][::every]
    if not paths:
        raise SystemExit(f"no PNG images in {folder}")
    images = [(p, np.asarray(Image.open(p).convert("RGB"))) for p in paths]
    curves: dict[str, list[dict]] = {}
    processes: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="nc-bench-") as tmp:
        work = Path(tmp)
        def nc_decode(out):
            back = out.with_suffix(".png")
            api.decode_file(out, back, force=True)
            return np.asarray(Image.open(back).convert("RGB"))

        runs = [(m, e) for m in (models or (None,)) for e in (efforts or (None,))] if with_nc else []
        for model, effort in runs:
            def nc_encode(pixels, q, path, out, model=model, effort=effort):
                api.encode_file(path, out, force=True, quality=float(q), model=model, effort=effort)

            name = "nc" + (f":{model}" if len(models) > 1 else "") + \
                (f" e{effort}" if len(efforts) > 1 or effort not in (None, api.DEFAULT_EFFORT) else "")
            curves[name] = [_measure(images, work, name, q, nc_encode, nc_decode, ".nc")
                            for q in NC_QUALITIES]
            _progress(name, curves[name])
            if process_images:
                processes[name] = _process_seconds(paths[:process_images], work, model, effort)
        for rc in [rc for rc in lossy_codecs() if references is None or rc.name in references]:
            def ref_encode(pixels, point, path, out, rc=rc):
                out.write_bytes(rc.encode(pixels, point))

            def ref_decode(out, rc=rc):
                return rc.decode(out.read_bytes())

            curves[rc.name] = [_measure(images, work, rc.name, p, ref_encode, ref_decode, rc.suffix)
                               for p in rc.points]
            _progress(rc.name, curves[rc.name])
    summary = {}
    jpeg = [(c["bpp"], c["psnr"]) for c in curves.get("JPEG", [])]
    for name, pts in curves.items():
        summary[name] = {"bd_rate_vs_jpeg_pct": bd_rate(jpeg, [(c["bpp"], c["psnr"]) for c in pts])
                         if jpeg else None}
    if with_nc:
        ref = reference_autoencoder_seconds()
        for name in [n for n in curves if n == "nc" or n.startswith(("nc:", "nc "))]:
            enc = statistics.mean(c["encode_s"] for c in curves[name])
            dec = statistics.mean(c["decode_s"] for c in curves[name])
            summary[name].update(reference_autoencoder_s=ref, encode_s=enc, decode_s=dec,
                                 encode_over_reference=enc / ref, decode_over_reference=dec / ref)
            if name in processes:
                summary[name]["process"] = processes[name]
    _print(curves, summary, len(paths), folder)
    result = {"folder": str(folder), "images": [p.name for p in paths], "curves": curves,
              "summary": summary, "nc_version": codec.__version__}
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=1))
    print(f"wrote {json_out}")
    if plot_out:
        _plot(curves, summary, plot_out)
        print(f"wrote {plot_out}")
    return result


def _process_seconds(paths: list[Path], work: Path, model: str | None, effort: int | None) -> dict:
    """Mean and largest seconds of whole ``nc encode`` and ``nc decode``
    processes (Python start-up, imports and weights included) over
    ``paths`` at every quality."""
    enc, dec = [], []
    for path in paths:
        for q in NC_QUALITIES:
            out = work / f"{path.stem}.process.nc"
            args = [sys.executable, "-m", "codec.cli", "encode", str(path), "-o", str(out),
                    "--force", "-q", str(q)]
            args += ["--model", model] if model else []
            args += ["--effort", str(effort)] if effort else []
            enc.append(timed_command(args)[0])
            dec.append(timed_command([sys.executable, "-m", "codec.cli", "decode", str(out),
                                      "-o", str(out.with_suffix(".png")), "--force"])[0])
    return {"images": [p.name for p in paths], "encode_s": statistics.mean(enc),
            "encode_max_s": max(enc), "decode_s": statistics.mean(dec), "decode_max_s": max(dec)}


def _progress(name: str, curve: list[dict]) -> None:
    """One line per codec as soon as it is measured: its (bpp, PSNR) points."""
    print(f"{name}: " + " ".join(f"({c['bpp']:.3f}, {c['psnr']:.2f})" for c in curve), flush=True)


def _print(curves, summary, n, folder):
    print(f"\nLossy, {n} images of {folder}: BD-rate against JPEG (PSNR, 0.1-2 bpp)")
    print(f"| {'codec':<10} | {'BD-rate':>8} | points (bpp, PSNR dB, MS-SSIM)")
    print("|------------|----------|---------------------------------")
    for name, pts in curves.items():
        bd = summary[name]["bd_rate_vs_jpeg_pct"]
        bd_s = f"{bd:+7.1f}%" if bd is not None else "     n/a"
        pts_s = " ".join(f"({c['bpp']:.3f}, {c['psnr']:.2f}, " + (
            f"{c['ms_ssim']:.4f})" if c["ms_ssim"] is not None else "-)") for c in pts)
        print(f"| {name:<10} | {bd_s} | {pts_s}")
    for name, s in summary.items():
        if "reference_autoencoder_s" not in s:
            continue
        print(f"{name} encode {s['encode_s']:.2f} s, decode {s['decode_s']:.2f} s per image; plain "
              f"autoencoder pass {s['reference_autoencoder_s']:.2f} s (ratios "
              f"{s['encode_over_reference']:.2f}, {s['decode_over_reference']:.2f}; limit 2)")
        if "process" in s:
            p = s["process"]
            print(f"{name} whole processes ({len(p['images'])} images x {len(NC_QUALITIES)} "
                  f"qualities): encode {p['encode_s']:.2f} s (largest {p['encode_max_s']:.2f}), "
                  f"decode {p['decode_s']:.2f} s (largest {p['decode_max_s']:.2f})")


def _plot(curves, summary, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, pts in curves.items():
        bd = summary[name]["bd_rate_vs_jpeg_pct"]
        label = name if bd is None else f"{name} ({bd:+.1f} %)"
        ax.plot([c["bpp"] for c in pts], [c["psnr"] for c in pts], "o-" if name.startswith("nc") else ".-",
                label=label, linewidth=2.5 if name.startswith("nc") else 1.2)
    ax.set_xlim(0, 2.2)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("RGB PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(title="BD-rate vs JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
