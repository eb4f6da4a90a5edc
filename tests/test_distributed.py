"""Every trainer runs under PyTorch's launcher: two gloo processes, a few
steps on tiny crops of docs/sample.png, end with the same weights (each
having drawn different crops), rank 0's checkpoint holds them, and a single
process resumes it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_probe import state_digest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TRAINERS = ("arm", "idf", "lossy")

pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason="this torch has no gloo process groups")


def photo_folders(root: Path) -> tuple[Path, Path]:
    """(train, photos): 16 crops of docs/sample.png, 80x72 so that 64x64
    training crops still vary; 6 in train/ (the last 4 held out) and 10 in
    two sub-folders of photos/ (the 10th held out)."""
    with Image.open(ROOT / "docs" / "sample.png") as im:
        im = im.convert("RGB")
        crops = [im.crop((x, y, x + 80, y + 72)) for y in (0, 60, 120) for x in (0, 58, 116, 176)]
        crops += [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((x, 100, x + 80, 172))
                  for x in (10, 90, 170, 30)]
    train, photos = root / "train", root / "photos"
    for k, crop in enumerate(crops):
        folder = train if k < 6 else photos / ("a" if k < 11 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        crop.save(folder / f"{k:03}.png")
    return train, photos


def options(trainer: str, run: Path, train: Path, photos: Path | str, steps: int) -> list[str]:
    # --max-minutes: the processes agree on the time-bounded schedule (steps end these runs)
    common = ["--run-dir", str(run), "--data", str(train), "--photos", str(photos),
              "--steps", str(steps), "--batch", "2", "--threads", "1", "--eval-every", "1000",
              "--max-minutes", "30"]
    tiny = {"arm": ["--crop", "32", "--hidden", "8", "--layers", "1"],
            "idf": ["--crop", "32", "--hidden", "8", "--couplings", "1", "--levels", "2"],
            "lossy": ["--crop", "64", "--lr", "1e-3"]}
    return common + tiny[trainer]


def launcher_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def torchrun(args: list[str], cwd: Path) -> None:
    """Run ``torchrun --nproc_per_node 2 --standalone ARGS`` (as PyTorch's
    own module, so no script needs to be on the PATH) to its end."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", *args]
    # a session of its own, so that a hung run's workers end with the launcher
    launch = subprocess.Popen(argv, cwd=cwd, env=launcher_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = launch.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        output, _ = launch.communicate()
        pytest.fail("the two-process run did not end in 300 s:\n" + output[-3000:])
    assert launch.returncode == 0, output[-6000:]


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """(runs folder, photo folders, per trainer the two processes' records):
    one launch of tests/ddp_probe.py training each trainer 3 steps."""
    tmp = tmp_path_factory.mktemp("ddp")
    train, photos = photo_folders(tmp)
    out = tmp / "out"
    out.mkdir()
    args = [str(ROOT / "tests" / "ddp_probe.py"), str(out)]
    for trainer in TRAINERS:
        args += [trainer, " ".join(options(trainer, tmp / trainer, train, photos, 3))]
    torchrun(args, tmp)
    records = {t: [json.loads((out / f"{t}-rank{r}.json").read_text()) for r in (0, 1)] for t in TRAINERS}
    return tmp, (train, photos), records


@pytest.mark.parametrize("trainer", TRAINERS)
def test_two_processes_end_with_the_same_weights_from_different_crops(two_process_runs, trainer):
    tmp, _, records = two_process_runs
    rank0, rank1 = records[trainer]
    assert rank0["wrapped"] == rank1["wrapped"], "the processes started from different weights"
    assert rank0["first_batch"] != rank1["first_batch"], "both processes drew the same crops"
    assert rank0["trained"] != rank0["wrapped"], "three steps changed nothing"
    assert rank0["trained"] == rank1["trained"], "the processes' weights drifted apart"

    # rank 0 alone wrote the run, and its checkpoint holds the shared weights
    ck = torch.load(tmp / trainer / "last.pt", weights_only=False)
    assert ck["step"] == 3 and ck["world_size"] == 2
    assert len(ck["held_out"]) == 5  # train/'s last 4 and photos/' 10th
    log = (tmp / trainer / "log.txt").read_text()
    assert log.count("new run") == 1 and log.count("done") == 1, log
    assert state_digest(ck["model"]) == rank0["trained"]


@pytest.mark.parametrize("trainer, photos_again", [("arm", False), ("idf", True), ("lossy", True)])
def test_a_single_process_resumes_a_two_process_run(two_process_runs, trainer, photos_again):
    """Checkpoints hold the bare network (no DDP prefixes), so a run resumes
    under any number of processes; one resumed on other held-out photographs
    (here --photos none) starts its model selection anew."""
    import importlib

    tmp, (train, photos), _ = two_process_runs
    run = tmp / f"{trainer}-resumed"
    run.mkdir()
    (run / "last.pt").write_bytes((tmp / trainer / "last.pt").read_bytes())
    main = importlib.import_module(f"models.{trainer}.train").main
    threads = torch.get_num_threads()
    try:
        main(options(trainer, run, train, photos if photos_again else "none", 5))
    finally:
        torch.set_num_threads(threads)  # the trainer sets it for the whole process
    log = (run / "log.txt").read_text()
    assert "resumed at step 3" in log
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 5
    assert ("selection starts anew" in log) == (trainer == "arm"), log


def test_the_trainer_command_resumes_under_torchrun(two_process_runs):
    """The command line as the README gives it, under the launcher: the
    trainer starts and ends its own process group and resumes the run."""
    tmp, (train, photos), _ = two_process_runs
    run = tmp / "arm-torchrun"
    run.mkdir()
    (run / "last.pt").write_bytes((tmp / "arm" / "last.pt").read_bytes())
    torchrun(["-m", "models.arm.train", *options("arm", run, train, photos, 5)], tmp)
    log = (run / "log.txt").read_text()
    assert "resumed at step 3" in log and log.count("done") == 1, log
    ck = torch.load(run / "last.pt", weights_only=False)
    assert ck["step"] == 5 and ck["world_size"] == 2


@pytest.mark.parametrize("trainer", TRAINERS)
def test_torchrun_passes_every_trainer_option_through(trainer):
    """torchrun parses its own options out of the whole command line, and
    Python's argparse takes a prefix of one of them for it (--run for
    --run-path): every trainer option but the --run alias must reach the
    trainer untouched."""
    import importlib

    from torch.distributed.run import get_args_parser

    launcher = get_args_parser()
    parser = importlib.import_module(f"models.{trainer}.train").parser()
    names = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    assert "--run-dir" in names
    for name in names:
        if name in ("--run", "--help"):
            continue
        args = launcher.parse_args(["--nproc_per_node", "2", "-m", f"models.{trainer}.train", name, "1"])
        assert args.training_script_args == [name, "1"], name
