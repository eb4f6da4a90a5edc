"""Lossless benchmark: nc's codecs and the classic ones on every image of a
folder, each file written to disk, read back, decoded and compared.

Prints per-image and mean bpp / bpsp and encode / decode seconds, and nc's
ideal (model) size against its actual file size; writes the figures as JSON.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

import codec
from codec import api

from .process import timed_command
from .reference import lossless_codecs


def _timed(work, repeats: int = 1):
    """(work()'s first result, the least of ``repeats`` timings of it in
    seconds): on a shared host the least is the one other load disturbed
    least, and a ratio of two codecs' times is only fair with both timed
    alike (``--timing-repeats``)."""
    times = []
    for k in range(repeats):
        t = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - t)
        if k == 0:
            result = out
    return result, min(times)


def _measure_nc(path: Path, work: Path, codec_spec: str, process: bool = False,
                effort: int | None = None, repeats: int = 1) -> dict:
    """``codec_spec`` is a codec name, or ``codec:model`` to pin the model;
    ``process``: also time a whole ``nc decode`` process of the file;
    ``effort``: nc's encode effort (None: its default); ``repeats``: decodes
    are timed this many times, the least kept (the encode runs once)."""
    codec_name, _, model = codec_spec.partition(":")
    slug = codec_spec.replace(":", "-") + (f"-e{effort}" if effort else "")
    out = work / f"{path.stem}.{slug}.nc"
    back = work / f"{path.stem}.{slug}.png"
    t = time.perf_counter()
    r = api.encode_file(path, out, codec_name, force=True, model=model or None, effort=effort)
    enc = time.perf_counter() - t
    dec = _timed(lambda: api.decode_file(out, back, force=True), repeats)[1]
    original = Image.open(path)
    exact = np.array_equal(np.asarray(Image.open(back)), np.asarray(original))
    size = out.stat().st_size
    row = {"bytes": size, "encode_s": enc, "decode_s": dec, "exact": exact,
           "ideal_bits": r.ideal_bits, "actual_bits": 8 * size,
           "model": api.info(out.read_bytes())["model"]}
    if process:
        command = [sys.executable, "-m", "codec.cli", "decode", str(out), "-o", str(back), "--force"]
        row["decode_process_s"] = min(timed_command(command)[0] for _ in range(repeats))
    return row


def _measure_reference(rc, pixels: np.ndarray, stem: str, work: Path, repeats: int = 1) -> dict:
    slug = "".join(c if c.isalnum() else "-" for c in rc.name.lower())
    out = work / f"{stem}.{slug}{rc.suffix}"
    data, enc = _timed(lambda: rc.encode(pixels), repeats)
    out.write_bytes(data)
    data = out.read_bytes()
    back, dec = _timed(lambda: rc.decode(data), repeats)
    return {"bytes": len(data), "encode_s": enc, "decode_s": dec,
            "exact": np.array_equal(back, pixels)}


def run(folder: Path, nc_codecs: list[str], references: bool, limit: int | None,
        json_out: Path | None, per_image: bool, process_images: int = 2,
        efforts: tuple[int, ...] = (), timing_repeats: int = 1) -> dict:
    """``process_images``: time whole ``nc decode`` processes (start-up
    included) on this many of the images; ``efforts``: nc's encode efforts,
    each its own row (none: the default effort, rows named by codec alone);
    ``timing_repeats``: nc's decodes and the classic codecs' encodes and
    decodes are timed this many times each, the least kept."""
    paths = sorted(Path(folder).glob("*.png"))[:limit]
    if not paths:
        raise SystemExit(f"no PNG images in {folder}")
    refs = lossless_codecs() if references else []
    runs = [(c, e, f"nc {c} e{e}" if e else f"nc {c}") for c in nc_codecs for e in (efforts or (None,))]
    rows: dict[str, list[dict]] = {name: [] for _, _, name in runs}
    rows.update({rc.name: [] for rc in refs})
    with tempfile.TemporaryDirectory(prefix="nc-bench-") as tmp:
        work = Path(tmp)
        for i, path in enumerate(paths):
            img = Image.open(path)
            pixels = np.asarray(img)
            npx = img.width * img.height
            for c, effort, name in runs:
                m = _measure_nc(path, work, c, process=i < process_images, effort=effort,
                                repeats=timing_repeats)
                rows[name].append({"image": path.name, "pixels": npx, **m})
            for rc in refs:
                m = _measure_reference(rc, pixels, path.stem, work, timing_repeats)
                rows[rc.name].append({"image": path.name, "pixels": npx, **m})
            if per_image:
                print(path.name, "  ".join(f"{k}: {8 * v[-1]['bytes'] / npx:.3f}" for k, v in rows.items()),
                      flush=True)
    summary = {}
    for name, rs in rows.items():
        bpp = [8 * r["bytes"] / r["pixels"] for r in rs]
        s = {"bpp": statistics.mean(bpp), "bpsp": statistics.mean(bpp) / 3,
             "encode_s": statistics.mean(r["encode_s"] for r in rs),
             "decode_s": statistics.mean(r["decode_s"] for r in rs),
             "all_exact": all(r["exact"] for r in rs)}
        if "model" in rs[0]:
            s["images_per_model"] = dict(Counter(r["model"] for r in rs))
        if "ideal_bits" in rs[0]:
            s["ideal_bpp"] = statistics.mean(r["ideal_bits"] / r["pixels"] for r in rs)
            s["overhead_pct"] = 100 * (sum(r["actual_bits"] for r in rs)
                                       / sum(r["ideal_bits"] for r in rs) - 1)
        summary[name] = s
    _print_table(summary, len(paths), folder)
    for _, _, name in runs:
        per_model = summary[name]["images_per_model"]
        print(f"{name}: images per model " + ", ".join(f"{m} {k}" for m, k in per_model.items()))
    jxl = summary.get("JPEG XL e9")
    for _, _, name in runs:
        timed = [r for r in rows[name] if "decode_process_s" in r]
        if timed:
            summary[name]["decode_process_s"] = statistics.mean(r["decode_process_s"] for r in timed)
        if jxl:
            ratio = summary[name]["decode_s"] / jxl["encode_s"]
            summary[name]["decode_over_jxl_e9_encode"] = ratio
            print(f"{name}: decode time / JPEG XL e9 encode time = {ratio:.2f} (in-process, means)")
            if timed:
                # image by image: the whole decode process against JPEG XL e9 encoding the same image
                jxl_s = {r["image"]: r["encode_s"] for r in rows["JPEG XL e9"]}
                ratios = [r["decode_process_s"] / jxl_s[r["image"]] for r in timed]
                summary[name]["decode_process_over_jxl_e9_encode_max"] = max(ratios)
                print(f"{name}: whole nc decode process / JPEG XL e9 encode, image by image "
                      f"({len(timed)} images): " + ", ".join(f"{x:.2f}" for x in ratios))
    result = {"folder": str(folder), "images": [p.name for p in paths], "summary": summary,
              "per_image": rows, "nc_version": codec.__version__, "timing_repeats": timing_repeats}
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1))
        print(f"wrote {json_out}")
    return result


def _print_table(summary: dict, n: int, folder: Path) -> None:
    print(f"\nLossless, {n} images of {folder} (means)")
    print(f"| {'codec':<24} | {'bpp':>7} | {'bpsp':>6} | {'enc s':>6} | {'dec s':>6} | exact | "
          f"{'ideal bpp':>9} | {'overhead':>8} |")
    print("|" + "|".join("-" * w for w in (26, 9, 8, 8, 8, 7, 11, 10)) + "|")
    for name, s in summary.items():
        ideal = f"{s['ideal_bpp']:9.4f}" if "ideal_bpp" in s else " " * 9
        over = f"{s['overhead_pct']:+7.3f}%" if "overhead_pct" in s else " " * 8
        print(f"| {name:<24} | {s['bpp']:7.3f} | {s['bpsp']:6.3f} | {s['encode_s']:6.2f} | "
              f"{s['decode_s']:6.2f} | {'yes' if s['all_exact'] else 'NO':>5} | {ideal} | {over} |")
