"""nc with many files, folders, pipes, progress and options that mean what
they say.  Images are small synthetic ones, so these run without ../shared."""
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codec import batch
from codec.format import container

ROOT = Path(__file__).resolve().parents[1]


def nc(*args, input=None, text=True, cwd=None):
    return subprocess.run([sys.executable, "-m", "codec.cli", *map(str, args)], input=input,
                          capture_output=True, text=text, cwd=cwd or ROOT, timeout=300)


def small(mode="RGB", seed=0, size=(32, 24)) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgba = np.clip((x * 5 + y * 3)[..., None] + rng.integers(0, 40, (h, w, 4)), 0, 255)
    rgba = rgba.astype(np.uint8)
    rgba[..., 3] = rng.integers(0, 256, (h, w))
    im = Image.fromarray(rgba, "RGBA")
    return im if mode == "RGBA" else im.convert(mode)


def pixels(path) -> tuple[str, np.ndarray]:
    with Image.open(path) as im:
        return im.mode, np.asarray(im)


def same_image(a, b) -> bool:
    (ma, pa), (mb, pb) = pixels(a), pixels(b)
    return ma == mb and np.array_equal(pa, pb)


@pytest.fixture()
def pngs(tmp_path):
    """Three small PNGs in tmp_path/in."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for i, mode in enumerate(["RGB", "L", "RGBA"]):
        p = folder / f"img{i}.png"
        small(mode, seed=i).save(p)
        paths.append(p)
    return paths


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# -- many files -------------------------------------------------------------------
def test_batch_with_one_bad_input_writes_the_others_and_exits_1(pngs, tmp_path):
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    out = tmp_path / "out"
    r = nc("encode", pngs[0], bad, pngs[1], pngs[2], "-o", f"{out}/", "-j", "2")
    assert r.returncode == 1, r.stderr
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and "broken.png" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["img0.nc", "img1.nc", "img2.nc"]
    summary = r.stderr.strip().splitlines()[-1]
    assert summary.startswith("encoded 4 files (1 failed):") and "bpp" in summary, summary
    assert r.stdout == ""


def test_directory_output_keeps_names_and_round_trips(pngs, tmp_path):
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    r = nc("encode", *pngs, "-o", f"{enc}/")
    assert r.returncode == 0, r.stderr
    assert "encoded 3 files:" in r.stderr
    r = nc("decode", *sorted(enc.glob("*.nc")), "-o", f"{dec}/", "--format", "tiff", "-v")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dec.iterdir()) == ["img0.tiff", "img1.tiff", "img2.tiff"]
    for p in pngs:
        assert same_image(p, dec / f"{p.stem}.tiff")
    assert r.stdout.count("32x24") == 3            # -v: one line a file, on stdout


def test_recursive_walk_keeps_subfolders(pngs, tmp_path):
    sub = tmp_path / "in" / "sub"
    sub.mkdir()
    small("RGB", seed=7).save(sub / "deep.png")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    out, back = tmp_path / "out", tmp_path / "back"
    r = nc("encode", "-r", tmp_path / "in", "-o", f"{out}/")
    assert r.returncode == 0, r.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.nc")) == [
        "img0.nc", "img1.nc", "img2.nc", "sub/deep.nc"]
    r = nc("decode", "-r", out, "-o", f"{back}/")
    assert r.returncode == 0, r.stderr
    assert same_image(sub / "deep.png", back / "sub" / "deep.png")


def test_decode_recursive_into_existing_folder(pngs, tmp_path):
    out, back = tmp_path / "out", tmp_path / "back"
    back.mkdir()
    assert nc("encode", *pngs, "-o", f"{out}/").returncode == 0
    r = nc("decode", "-r", out, "-o", back)       # an existing folder needs no trailing /
    assert r.returncode == 0, r.stderr
    for p in pngs:
        assert same_image(p, back / f"{p.stem}.png")


def test_default_outputs_sit_beside_each_input(pngs):
    r = nc("encode", *pngs[:2], "--quiet")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert all(p.with_suffix(".nc").exists() for p in pngs[:2])


def test_pool_and_single_process_write_the_same_files(pngs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert nc("encode", *pngs, "-o", f"{a}/", "-j", "1").returncode == 0
    assert nc("encode", *pngs, "-o", f"{b}/", "-j", "3").returncode == 0
    for p in pngs:
        assert (a / f"{p.stem}.nc").read_bytes() == (b / f"{p.stem}.nc").read_bytes()


@pytest.mark.parametrize("args,message", [
    (["encode", "{0}", "{1}", "-o", "{tmp}/one.nc"], "names one file"),
    (["encode", "{0}", "--codec", "idf", "-q", "3"], "lossless"),
    (["encode", "{0}", "--codec", "arm", "--target-bpp", "1"], "lossless"),
    (["encode", "{0}", "-q", "3", "--target-bpp", "1"], "exclude each other"),
    (["encode", "{0}", "--effort", "10"], "effort"),
    (["encode", "{dir}"], "use -r"),
    (["encode", "-", "{0}", "-o", "{tmp}/x/"], "stdin"),
    (["decode", "{0}", "--format", "nosuch"], "unknown output format"),
    (["decode", "-r", "{tmp}/empty"], "no input files"),
])
def test_usage_mistakes_exit_2_and_write_nothing(pngs, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    before = sorted(tmp_path.rglob("*"))
    r = nc(*[a.format(pngs[0], pngs[1], tmp=tmp_path, dir=tmp_path / "in") for a in args])
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_two_inputs_with_one_name_are_refused(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        small().save(tmp_path / d / "same.png")
    r = nc("encode", tmp_path / "a" / "same.png", tmp_path / "b" / "same.png", "-o", f"{tmp_path}/o/")
    assert r.returncode == 2 and "both be written" in r.stderr


# -- pipes --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_pipes_round_trip_binary_safe(tmp_path, mode):
    src = tmp_path / "p.png"
    small(mode, seed=3).save(src)
    r = nc("encode", "-", "-o", "-", input=src.read_bytes(), text=False)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert r.stdout.startswith(container.MAGIC)
    nc_file = tmp_path / "p.nc"
    nc_file.write_bytes(r.stdout)
    assert nc("info", nc_file).returncode == 0           # the bytes are a whole, valid file
    r = nc("decode", "-", "-o", "-", input=r.stdout, text=False)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert r.stdout.startswith(b"\x89PNG\r\n\x1a\n")
    back = tmp_path / "back.png"
    back.write_bytes(r.stdout)
    assert same_image(src, back)


def test_pipe_formats_and_defaults(tmp_path):
    src = tmp_path / "p.png"
    small("RGB").save(src)
    data = nc("encode", "-", input=src.read_bytes(), text=False)     # stdin -> stdout by default
    assert data.returncode == 0 and data.stdout.startswith(container.MAGIC)
    r = nc("decode", "-", "--format", "ppm", "-v", input=data.stdout, text=False)
    assert r.returncode == 0 and r.stdout.startswith(b"P6")
    assert b"32x24" in r.stderr                # -v goes to stderr when stdout is the image
    r = nc("decode", "-", "-o", tmp_path / "f.bmp", input=data.stdout, text=False)
    assert r.returncode == 0 and same_image(src, tmp_path / "f.bmp")


def test_bad_stdin_is_one_line_error():
    r = nc("decode", "-", "-o", "-", input=b"garbage", text=False)
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode().count("\n") == 1 and r.stderr.startswith(b"error: ")
    r = nc("encode", "-", "-o", "-", input=b"", text=False)
    assert r.returncode == 1 and r.stdout == b"" and b"stdin" in r.stderr


# -- progress -------------------------------------------------------------------------
def run_on_terminal(args, columns=100, timeout=300) -> tuple[int, str]:
    """Run nc with stderr on a pseudo-terminal ``columns`` wide (0: one that does
    not say); return its status and what it drew."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "codec.cli", *map(str, args)], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    drawn = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise TimeoutError("nc did not finish")
        try:
            chunk = os.read(master, 4096)
        except OSError:          # the terminal closed: the process is gone
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    proc.stdout.read()
    return proc.wait(timeout), drawn.decode(errors="replace")


def test_progress_bar_on_a_terminal_and_quiet_silences_it(pngs, tmp_path):
    status, drawn = run_on_terminal(["encode", *pngs, "-o", f"{tmp_path}/bar/"])
    assert status == 0, drawn
    assert "encoded" in drawn and "/3" in drawn and "file" in drawn, drawn   # e.g. "2/3 [..., 1.2file/s]"
    status, drawn = run_on_terminal(["encode", *pngs, "-o", f"{tmp_path}/quiet/", "--quiet"])
    assert status == 0 and drawn == "", drawn
    status, drawn = run_on_terminal(["decode", *sorted((tmp_path / "bar").glob("*.nc")), "-o",
                                     f"{tmp_path}/back/"], columns=0)
    assert status == 0 and "decoded" in drawn and "/3" in drawn, drawn


def test_no_progress_bar_when_stderr_is_not_a_terminal(pngs, tmp_path):
    r = nc("encode", *pngs, "-o", f"{tmp_path}/o/")
    assert r.returncode == 0
    assert "\r" not in r.stderr and "file/s" not in r.stderr and "/3" not in r.stderr
    assert r.stderr.startswith("encoded 3 files:")


# -- what -v and info say ------------------------------------------------------------------
def test_verbose_and_info_show_the_quality(pngs, tmp_path):
    out = tmp_path / "q.nc"
    r = nc("encode", pngs[0], "-o", out, "-q", "3", "-v", "--effort", "1")    # effort: not what is tested
    assert r.returncode == 0, r.stderr
    assert "quality 3.000" in r.stdout
    r = nc("info", out)
    assert "quality: 3" in r.stdout
    r = nc("encode", pngs[1], "-o", tmp_path / "t.nc", "--target-bpp", "2", "-v", "--effort", "1")
    chosen = float(r.stdout.split("quality ")[1].split(",")[0])
    assert r.returncode == 0 and 1 <= chosen <= 8
    facts = json.loads(nc("info", tmp_path / "t.nc", "--json").stdout)
    assert facts["quality"] == pytest.approx(chosen, abs=1e-3)


def test_info_takes_several_files(pngs, tmp_path):
    assert nc("encode", *pngs, "-o", f"{tmp_path}/o/").returncode == 0
    files = sorted((tmp_path / "o").glob("*.nc"))
    r = nc("info", *files)
    assert r.returncode == 0 and r.stdout.count("codec arm") == 3
    r = nc("info", files[0], pngs[0], files[1])          # a PNG is not an .nc file
    assert r.returncode == 1 and r.stdout.count("codec arm") == 2
    assert error_lines(r.stderr) == [r.stderr.strip()] and "img0.png" in r.stderr
    facts = json.loads(nc("info", "--json", *files).stdout)
    assert sorted(Path(k).name for k in facts) == ["img0.nc", "img1.nc", "img2.nc"]


def test_effort_strip_and_jobs_reach_the_codec(pngs, tmp_path, monkeypatch):
    """In-process, with the codec's encode_image recording what it was given."""
    from click.testing import CliRunner

    from codec import api, cli

    seen = {}
    real = api.encode_image

    def recording(image, codec="arm", **kwargs):
        seen.update(kwargs, codec=codec)
        return real(image, codec, **{k: v for k, v in kwargs.items()
                                     if k in ("model", "quality", "target_bpp")})

    monkeypatch.setattr(api, "encode_image", recording)
    r = CliRunner().invoke(cli.main, ["encode", str(pngs[0]), "-o", str(tmp_path / "e.nc"),
                                      "--effort", "3", "--strip", "-j", "5", "--codec", "arm"])
    assert r.exit_code == 0, r.output
    assert seen["effort"] == 3 and seen["strip"] is True and seen["jobs"] == 5
    assert seen["codec"] == "arm" and seen["quality"] is None


def test_cores_are_split_between_files_and_their_tiles():
    assert batch.shares(8, 1) == (1, 8)        # one file: all cores to its tiles
    assert batch.shares(8, 2) == (2, 4)
    assert batch.shares(8, 100) == (8, 1)      # a folder: one core a file
    assert batch.shares(2, 3) == (2, 1) and batch.shares(1, 5) == (1, 1)
    calls = []
    batch.run([batch.Task("a.png", "a.nc")], lambda task, jobs: calls.append(jobs) or
              batch.Outcome(task), 8)
    assert calls == [8]

class BarStub:
    """Records redraws, with tqdm's start time and start-up delay."""

    def __init__(self, delay):
        import time

        self.start_t, self.delay, self.redraws, self.n = time.time(), delay, 0, 0

    def refresh(self):
        self.redraws += 1

    def update(self, n):
        self.n += n


def slow(task, jobs):
    import time

    time.sleep(0.8)
    return batch.Outcome(task)


@pytest.mark.parametrize("delay,redrawn", [(0, True), (30, False)])
def test_a_long_single_file_keeps_the_bar_moving_after_its_delay(delay, redrawn):
    bar = BarStub(delay)
    summary = batch.run([batch.Task("a.png", "a.nc")], slow, 1, progress=bar)
    assert (bar.redraws > 0) is redrawn and bar.n == 1 and not summary.failed
