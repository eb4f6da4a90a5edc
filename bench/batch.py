"""Batch throughput: a folder encoded and decoded by ``nc``'s process pool
(``codec/batch.py``, the code ``nc encode A B … -o DIR/`` runs) against the
same files one at a time, as a shell loop over ``nc encode`` would code them.

One at a time, each file gets every core for its own tiles (``jobs=``); in
the batch, files run side by side.  The figure is the batch's wall time over
the sum of the single-file times (the issue asks for at most 0.65 with two
cores); every decoded image is compared with its original, and the batch's
.nc files with the single runs' (the codec is deterministic).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

import codec
from codec import batch, files
from codec.options import EncodeOptions


def _exact(original: Path, decoded: Path) -> bool:
    a, b = files.read_picture(original), files.read_picture(decoded)
    return a.mode == b.mode and np.array_equal(a.samples, b.samples)


def _tasks(paths: list[Path], src_dir: Path | None, dst_dir: Path, suffix: str):
    return [batch.Task(str(src_dir / f"{p.stem}.nc") if src_dir else str(p),
                       str(dst_dir / f"{p.stem}{suffix}")) for p in paths]


def _one_at_a_time(tasks, work, jobs: int) -> float:
    seconds = 0.0
    for task in tasks:
        s = batch.run([task], work, jobs)
        if s.failed:
            raise SystemExit(f"error: {s.failed[0].error}")
        seconds += s.seconds
    return seconds


def _all_at_once(tasks, work, jobs: int) -> float:
    s = batch.run(tasks, work, jobs)
    if s.failed:
        raise SystemExit(f"error: {s.failed[0].error}")
    return s.seconds


def run(folder: Path, jobs: int | None, codec_name: str, limit: int | None,
        json_out: Path | None) -> dict:
    paths = sorted(Path(folder).glob("*.png"))[:limit]
    if len(paths) < 2:
        raise SystemExit(f"error: a batch needs at least two PNG images in {folder}")
    jobs = jobs or batch.available_cores()
    encode = batch.encoder(EncodeOptions(codec=codec_name), force=True)
    decode = batch.decoder("PNG", force=True)
    with tempfile.TemporaryDirectory(prefix="nc-bench-batch-") as tmp:
        single, many = Path(tmp, "single"), Path(tmp, "batch")
        single.mkdir()
        many.mkdir()
        print(f"{len(paths)} images from {folder}, codec {codec_name}, {jobs} jobs")
        enc_single = _one_at_a_time(_tasks(paths, None, single, ".nc"), encode, jobs)
        dec_single = _one_at_a_time(_tasks(paths, single, single, ".png"), decode, jobs)
        print(f"one at a time: encode {enc_single:.2f} s + decode {dec_single:.2f} s")
        enc_batch = _all_at_once(_tasks(paths, None, many, ".nc"), encode, jobs)
        dec_batch = _all_at_once(_tasks(paths, many, many, ".png"), decode, jobs)
        print(f"batch:         encode {enc_batch:.2f} s + decode {dec_batch:.2f} s")
        exact = all(_exact(p, d / f"{p.stem}.png") for p in paths for d in (single, many))
        same_files = all((single / f"{p.stem}.nc").read_bytes() == (many / f"{p.stem}.nc").read_bytes()
                         for p in paths)
    ratio = (enc_batch + dec_batch) / (enc_single + dec_single)
    print(f"batch / one at a time: {ratio:.3f} (encode {enc_batch / enc_single:.3f}, "
          f"decode {dec_batch / dec_single:.3f}); exact: {'yes' if exact else 'NO'}; "
          f"same .nc files: {'yes' if same_files else 'NO'}")
    result = {"folder": str(folder), "images": [p.name for p in paths], "codec": codec_name,
              "jobs": jobs, "encode_single_s": enc_single, "decode_single_s": dec_single,
              "encode_batch_s": enc_batch, "decode_batch_s": dec_batch, "ratio": ratio,
              "exact": exact, "same_files": same_files, "nc_version": codec.__version__}
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1))
        print(f"wrote {json_out}")
    if not (exact and same_files):
        raise SystemExit(1)
    return result
