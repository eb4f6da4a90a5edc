"""Large images: peak memory per process, time per subpixel, what tiling
costs, and whether lossy tiles leave seams.

Large test photographs are mosaics of the held-in photo folders (never
Kodak): photographs scaled to a common row height and laid side by side,
row after row, until the canvas is full (``mosaic``), since the data sets
hold no 24-megapixel camera images.  Memory is the peak resident set of
any one process of ``nc encode`` / ``nc decode`` (``/usr/bin/time``'s
maximum, which covers the tile workers), times are whole processes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .process import timed_command

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def mosaic(width: int, height: int, grey: bool = False, row_height: int = 1000) -> Image.Image:
    """A deterministic mosaic of the Unsplash and RealSR photographs."""
    paths = sorted((PHOTOS / "unsplash").glob("*.png")) + sorted((PHOTOS / "realsr").glob("*.png"))
    if not paths:
        raise SystemExit(f"no photographs in {PHOTOS}")
    canvas = Image.new("RGB", (width, height))
    i, y = 0, 0
    while y < height:
        x = 0
        while x < width:
            with Image.open(paths[i % len(paths)]) as im:
                im = im.convert("RGB")
                w = round(im.width * row_height / im.height)
                canvas.paste(im.resize((w, row_height), Image.Resampling.LANCZOS), (x, y))
            x, i = x + w, i + 1
        y += row_height
    return canvas.convert("L") if grey else canvas


def _code(src: Path, work: Path, codec: str, quality: float | None, jobs: int) -> dict:
    """Encode and decode ``src`` in two processes; sizes, times, memory, exactness."""
    nc_file, back = work / f"{src.stem}-{codec}.nc", work / f"{src.stem}-{codec}.png"
    lossy = f", quality={quality}" if quality else ""
    enc = (f"import codec; codec.encode_file({str(src)!r}, {str(nc_file)!r}, {codec!r}, "
           f"force=True, jobs={jobs}{lossy})")
    dec = f"import codec; codec.decode_file({str(nc_file)!r}, {str(back)!r}, force=True, jobs={jobs})"
    enc_s, enc_mb = timed_command([sys.executable, "-c", enc])
    dec_s, dec_mb = timed_command([sys.executable, "-c", dec])
    with Image.open(src) as a, Image.open(back) as b:
        exact = bool(np.array_equal(np.asarray(a), np.asarray(b)))
        subpixels = a.width * a.height * len(a.getbands())
    return {"codec": codec, "quality": quality, "bytes": nc_file.stat().st_size,
            "bpsp": 8 * nc_file.stat().st_size / subpixels, "encode_s": enc_s, "decode_s": dec_s,
            "encode_peak_mb": enc_mb, "decode_peak_mb": dec_mb, "exact": exact,
            "us_per_subpixel": 1e6 * (enc_s + dec_s) / subpixels}


def memory_and_speed(work: Path, jobs: int, codecs: list[str]) -> dict:
    """A 24-megapixel RGB mosaic through each codec, a 12-megapixel grey one
    through the ARM, and a Kodak image through the ARM as the reference."""
    out = {}
    rgb24 = work / "mosaic-6000x4000.png"
    grey12 = work / "mosaic-grey-4256x2848.png"
    if not rgb24.exists():
        mosaic(6000, 4000).save(rgb24)
    if not grey12.exists():
        mosaic(4256, 2848, grey=True).save(grey12)
    kodak = KODAK / "kodim05.png"
    if "arm" in codecs and kodak.exists():
        out["kodim05 arm"] = r = _code(kodak, work, "arm", None, jobs)
        print(_line("kodim05 (768x512 RGB)", r), flush=True)
    if "arm" in codecs:
        out["grey12 arm"] = r = _code(grey12, work, "arm", None, jobs)
        print(_line("grey 4256x2848", r), flush=True)
    for name in codecs:
        quality = 4.0 if name == "lossy" else None
        out[f"rgb24 {name}"] = r = _code(rgb24, work, "arm" if name == "lossy" else name,
                                         quality, jobs)
        r["codec"] = name
        print(_line("RGB 6000x4000", r), flush=True)
    return out


def _line(what: str, r: dict) -> str:
    q = f" q{r['quality']:g}" if r["quality"] else ""
    return (f"{what:24s} {r['codec']}{q}: {r['bpsp']:.3f} bpsp, encode {r['encode_s']:.1f} s "
            f"({r['encode_peak_mb']:.0f} MB peak), decode {r['decode_s']:.1f} s "
            f"({r['decode_peak_mb']:.0f} MB peak), {r['us_per_subpixel']:.2f} us/subpixel"
            f"{', exact' if r['exact'] else ''}")


def tiling_cost(work: Path, codecs: list[str], qualities=(1.0, 4.0, 8.0)) -> dict:
    """Size with the codec's tiles (1024 pixels lossless, 2048 lossy) against
    one tile, on a mosaic of four tiles (2048x1536 lossless, 4096x3072
    lossy); for the lossy codec also the squared error in the 8-pixel bands
    along tile borders against elsewhere, tiled and not."""
    import codec
    from codec import api
    from codec.format.tiles import LOSSY_TILE_SIZE, TILE_SIZE

    out = {}
    for name in codecs:
        size = LOSSY_TILE_SIZE if name == "lossy" else TILE_SIZE
        img = mosaic(2 * size, 3 * size // 2, row_height=3 * size // 4)
        x = np.asarray(img).astype(np.int64)
        band = np.zeros(x.shape[:2], bool)
        band[size - 4:size + 4, :] = True
        band[:, size - 4:size + 4] = True
        for q in (qualities if name == "lossy" else (None,)):
            kw = dict(quality=q) if q else dict(codec=name)
            tiled = api.encode_image(img, jobs=None, **kw)
            whole = api.encode_image(img, jobs=None, tile_size=2 * size, **kw)
            r = {"tiled_bytes": len(tiled.data), "whole_bytes": len(whole.data),
                 "cost_pct": 100 * (len(tiled.data) / len(whole.data) - 1)}
            label = f"{name} q{q:g}" if q else name
            if q:
                for key, data in (("tiled", tiled.data), ("whole", whole.data)):
                    err = ((np.asarray(codec.decode(data, jobs=None)).astype(np.int64) - x) ** 2
                           ).mean(axis=2)
                    r[f"{key}_border_mse"] = float(err[band].mean())
                    r[f"{key}_other_mse"] = float(err[~band].mean())
                r["seam"] = ((r["tiled_border_mse"] / r["tiled_other_mse"])
                             / (r["whole_border_mse"] / r["whole_other_mse"]))
                print(f"{label:10s} tiling costs {r['cost_pct']:+.2f} %; border/elsewhere MSE "
                      f"tiled {r['tiled_border_mse']:.2f}/{r['tiled_other_mse']:.2f}, one tile "
                      f"{r['whole_border_mse']:.2f}/{r['whole_other_mse']:.2f} "
                      f"(ratio of ratios {r['seam']:.3f})", flush=True)
            else:
                print(f"{label:10s} tiling costs {r['cost_pct']:+.2f} % "
                      f"({r['whole_bytes']} -> {r['tiled_bytes']} bytes)", flush=True)
            out[label] = r
    return out


def out_of_memory(work: Path, limit_kib: int = 900_000) -> dict:
    """``nc encode`` and ``nc decode`` of the 24-megapixel mosaic under an
    address-space limit too small for a tile: each must end in one
    ``error:`` line, exit status 1 and no output file."""
    src = work / "mosaic-6000x4000.png"
    if not src.exists():
        mosaic(6000, 4000).save(src)
    out = {}
    for name, args in (("arm", []), ("idf", ["--codec", "idf"]), ("lossy", ["-q", "4"])):
        dst = work / f"oom-{name}.nc"
        dst.unlink(missing_ok=True)
        cmd = (f"ulimit -v {limit_kib}; exec {sys.executable} -m codec.cli encode {src} -o {dst} "
               f"-j 1 --force {' '.join(args)}")
        proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
        lines = proc.stderr.strip().splitlines()
        out[name] = r = {"exit": proc.returncode, "stderr_lines": len(lines),
                         "stderr": lines[-1] if lines else "", "output_left": dst.exists()}
        ok = proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:") \
            and not dst.exists() and not list(work.glob(f".{dst.name}.*"))
        r["one_line_error"] = ok
        print(f"encode {name:5s} under ulimit -v {limit_kib} KiB: exit {proc.returncode}, "
              f"{len(lines)} stderr line(s): {r['stderr'][:100]!r}, output left: {r['output_left']}"
              f" -> {'ok' if ok else 'FAILED'}", flush=True)
    return out


def run(what: str, work: Path, jobs: int, codecs: list[str], json_out: Path) -> None:
    import codec

    work.mkdir(parents=True, exist_ok=True)
    result = {"nc_version": codec.__version__, "cores": len(os.sched_getaffinity(0)), "jobs": jobs}
    if what in ("all", "tiling"):
        result["tiling"] = tiling_cost(work, codecs)
    if what in ("all", "memory"):
        result["memory"] = memory_and_speed(work, jobs, codecs)
    if what in ("all", "oom"):
        result["out_of_memory"] = out_of_memory(work)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=2))
    print(f"figures written to {json_out}")
