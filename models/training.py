"""What every training script shares: a run folder with a log, resumable
checkpoints written every few minutes, the learning-rate schedule, and the
photographs a run trains and selects on.  Under ``torchrun`` (see
``models.distributed``) the same run is shared by every process: all of
them resume from it, only the first writes to it."""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .data import (
    DEFAULT_PHOTOS_DIR,
    DEFAULT_TRAIN_DIR,
    PhotoSplit,
    RandomCrops,
    centre_crops,
    downscaled,
    noisy_crops,
    read_rgb,
    split_photos,
)
from .distributed import World


class Run:
    """A run folder: ``log.txt``, ``last.pt`` (resume) and ``best.pt`` (selection).

    On a process other than the ``world``'s first, nothing is written or
    printed; checkpoints are still read, so every process resumes alike."""

    def __init__(self, folder: Path, checkpoint_minutes: float = 3.0, world: World | None = None):
        self.world = world or World()
        self.folder = Path(folder)
        self._log = None
        if self.world.is_main:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._log = open(self.folder / "log.txt", "a")
        self.checkpoint_seconds = checkpoint_minutes * 60
        self._last_save = time.time()
        self._cpu_start = time.process_time()
        self._wall_start = time.time()
        self.cpu_seconds_before = 0.0
        self.held_out: list[str] | None = None  # the selection photographs, recorded in checkpoints
        self._resume_read, self._resumed = False, None

    def say(self, msg: str) -> None:
        if self._log is None:
            return
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        self._log.write(line + "\n")
        self._log.flush()

    @property
    def wall_minutes(self) -> float:
        """Minutes since this process opened the run (a GPU run's cost)."""
        return (time.time() - self._wall_start) / 60

    @property
    def cpu_hours(self) -> float:
        """CPU time of the run so far; with several processes, this one's
        times their number (they do the same work)."""
        now = (time.process_time() - self._cpu_start) * self.world.size
        return (self.cpu_seconds_before + now) / 3600

    def resume(self) -> dict | None:
        """``last.pt`` as it was when the run was opened (None: a new run),
        read once: the network, the optimizer and the loop each take their
        part of it."""
        if not self._resume_read:
            self._resume_read = True
            last = self.folder / "last.pt"
            self._resumed = torch.load(last, weights_only=False, map_location="cpu") if last.exists() else None
            if self._resumed:
                self.cpu_seconds_before = self._resumed.get("cpu_seconds", 0.0)
        return self._resumed

    def save(self, name: str, state: dict) -> None:
        if not self.world.is_main:
            return
        state = dict(state, cpu_seconds=self.cpu_hours * 3600)
        if self.held_out is not None:
            state["held_out"] = self.held_out
        tmp = self.folder / f".{name}.tmp"
        torch.save(state, tmp)
        tmp.replace(self.folder / name)

    def checkpoint_due(self) -> bool:
        if time.time() - self._last_save > self.checkpoint_seconds:
            self._last_save = time.time()
            return True
        return False


def cosine_lr(step: int, total: int, peak: float, warmup: int = 500, floor: float = 0.01,
              progress: float | None = None) -> float:
    """Cosine decay over ``total`` steps (or over ``progress`` in [0, 1] when
    a run is bounded by time instead), after a linear warm-up of ``warmup`` steps."""
    done = min(1.0, step / total) if progress is None else min(1.0, progress)
    lr = peak * 0.5 * (1 + math.cos(math.pi * done))
    return max(lr, peak * floor) * min(1.0, (step + 1) / warmup)


def constant_lr(step: int, peak: float, warmup: int = 500) -> float:
    """``peak`` after the same linear warm-up: a run meant to go on across
    sessions (resumed from snapshots), where a cosine would restart at its
    peak each time and spend its first thousand steps climbing back."""
    return peak * min(1.0, (step + 1) / warmup)


class TrainingBudget:
    """When a run stops: after ``steps`` steps, or after ``minutes`` of wall
    clock where given (a run on a borrowed GPU has a fixed time, not a
    known speed); ``progress`` drives the learning-rate schedule.  With
    several processes, the first one's clock decides for all of them, so
    that they use the same learning rate and stop at the same step."""

    def __init__(self, steps: int, minutes: float | None, world: World | None = None):
        self.steps = steps
        self.seconds = minutes * 60 if minutes else None
        self.world = world or World()
        self.t0 = time.time()

    def progress(self, step: int) -> float:
        """Fraction of the run done after ``step`` steps (1: stop).  With
        several processes and a time bound, every process must call this
        at the same steps (it is a collective)."""
        by_steps = step / self.steps
        if self.seconds is None:
            return by_steps
        return max(by_steps, self.world.agreed((time.time() - self.t0) / self.seconds))


def photos_folder(text: str) -> Path | None:
    return None if text.lower() == "none" else Path(text)


def add_run_arguments(p, *, run: str, steps: int, batch: int, crop: int, lr: float) -> None:
    """The options every training script takes."""
    # --run-dir: torchrun's own parser refuses --run (a prefix of its --run-path)
    p.add_argument("--run-dir", "--run", dest="run", type=Path, default=Path(run), metavar="DIR",
                   help="run folder (log, checkpoints); --run for short, but not under torchrun")
    p.add_argument("--data", type=Path, default=DEFAULT_TRAIN_DIR,
                   help="folder of training photographs (the last 4 by name are held out)")
    p.add_argument("--photos", type=photos_folder, default=DEFAULT_PHOTOS_DIR, metavar="DIR|none",
                   help="folder of sub-folders of more photographs (every 10th by relative path "
                        "is held out); 'none' trains on --data alone, as runs before it did")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch", type=int, default=batch,
                   help="crops a step per process (under torchrun, N processes train on N x this)")
    p.add_argument("--crop", type=int, default=crop)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=2000, help="steps between held-out figures")
    p.add_argument("--device", default="cpu",
                   help="torch device to train on (cpu, cuda; under torchrun, cuda is cuda:LOCAL_RANK)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this much wall clock (the schedule then runs over the time)")
    p.add_argument("--ckpt-minutes", type=float, default=3.0)
    p.add_argument("--init-from", type=Path,
                   help="start a new run from this checkpoint's weights (.pt or .safetensors)")


def add_fit_arguments(p) -> None:
    """The lossless trainers' options on the loop itself (read by :func:`fit_bits`)."""
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning rate: cosine decay over the run, or constant after the warm-up "
                        "(for a run continued across sessions)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="also keep an exponential moving average of the weights (e.g. 0.999); "
                        "it is what is evaluated, selected and written to best.pt")


def add_photo_arguments(p) -> None:
    """The trainers' options on what photographs they see: grain and sizes
    (read by :func:`photo_sets`)."""
    p.add_argument("--noise-prob", type=float, default=0.0,
                   help="fraction of training crops given Gaussian noise (grain augmentation)")
    p.add_argument("--noise-max", type=float, default=3.0, help="largest noise sigma, in levels")
    p.add_argument("--scales", default="1",
                   help="comma-separated downscaling factors of the photographs to train on "
                        "(each drawn equally often), e.g. 1,2; held-out selection averages them")


def photo_scales(text: str) -> list[float]:
    """The ``--scales`` factors, each at least 1."""
    try:
        factors = [float(f) for f in text.split(",")]
    except ValueError:
        factors = []
    if not factors or min(factors) < 1:
        raise SystemExit(f"--scales {text}: comma-separated factors of at least 1, e.g. 1,2")
    return factors


def photo_split(args) -> PhotoSplit:
    """The training and held-out photographs of ``--data`` and ``--photos``."""
    return split_photos(args.data, args.photos)


def photo_sets(args, split: PhotoSplit, seed: int, grey_prob: float = 0.1,
               say=print) -> tuple[RandomCrops, dict]:
    """(training batches, held-out crops by name) for :func:`add_photo_arguments`'s
    options: crops of the training photographs at every ``--scales`` size,
    noisy where asked, drawn from ``seed``; held out, centre crops of up to
    256x256 (sides a multiple of 64) at every size (``x1/F``) and, with
    noise augmentation, noisy (sigma 2) ones too (``noisy``).  ``say``
    reports how many photographs each size keeps."""
    train, held = [read_rgb(p) for p in split.train], [read_rgb(p) for p in split.held_out]
    factors = photo_scales(args.scales)
    val_sets = {f"x1/{f:g}": centre_crops(downscaled(held, f), 256, 64) for f in factors}
    if args.noise_prob > 0:
        val_sets["noisy"] = noisy_crops(next(iter(val_sets.values())), 2.0)
    batches = RandomCrops([downscaled(train, f) for f in factors], args.crop, args.batch, seed=seed,
                          grey_prob=grey_prob, noise_prob=args.noise_prob, noise_max=args.noise_max)
    say(f"photographs: {len(split.train)} to train on (at least {args.crop}x{args.crop}: "
        + ", ".join(f"{n} at x1/{f:g}" for n, f in zip(batches.counts, factors))
        + f"), {len(split.held_out)} held out")
    return batches, val_sets


def photo_data(args, run: Run, evaluate, split: PhotoSplit, step: int):
    """(training batches, held-out figure) of :func:`photo_sets`, the crops
    drawn from this process's seed at ``step``; the figure is the mean of
    ``evaluate(net, crops)`` over every held-out set, so selection weighs
    every size, and clean and grainy photographs, alike."""
    batches, val_sets = photo_sets(args, split, run.world.seed(step), say=run.say)

    def held_out(net) -> float:
        figures = {name: evaluate(net, crops) for name, crops in val_sets.items()}
        if len(figures) > 1:
            run.say("held-out " + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()) + " bpsp")
        return sum(figures.values()) / len(figures)

    return batches, held_out


def training_device(name: str | torch.device) -> torch.device:
    """The device a trainer runs on; on a GPU, convolutions and matrix
    products in TF32 (training only: the codec's integer networks never
    run there) and cuDNN's fastest algorithms for the fixed crop size."""
    device = torch.device(name)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return device


def on_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch from the CPU on ``device``; to a GPU through pinned memory, so
    that the copy does not wait for the steps still queued there."""
    if device.type == "cuda":
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True)


def optimizer_step(net: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """One step on ``loss``; returns it detached, not as a number, so a GPU
    run does not wait for each step to finish (see :class:`RunningMean`)."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    return loss.detach()


class RunningMean:
    """The mean training loss since the last log line, over every process;
    the losses stay on their device until it is read."""

    def __init__(self, world: World):
        self.world = world
        self.losses: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> None:
        self.losses.append(loss)

    def take(self) -> float:
        value = float(torch.stack(self.losses).double().mean()) if self.losses else math.nan
        self.losses = []
        return self.world.mean(value)


def export_main(export, doc: str, argv=None, tables_from: bool = False) -> None:
    """Command line of the export scripts: CHECKPOINT OUT [--model-id]
    [--tables-from MODEL, where ``tables_from``]."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--model-id", default=None, help="defaults to the output file's stem")
    if tables_from:
        p.add_argument("--tables-from", metavar="MODEL",
                       help="leave the entropy tables in this shipped model (the same spec's) and refer to it")
    a = p.parse_args(argv)
    export(a.checkpoint, a.out, a.model_id or a.out.stem,
           **({"tables_from": a.tables_from} if tables_from else {}))


# Shipped weights hold integer networks; these modules' ``float_state`` turns
# them back into training state.  Snapshots (no "kind") are float already.
FLOAT_STATE_OF_SHIPPED = {"arm": "models.arm.export", "idf": "models.idf.export",
                          "lossy": "models.lossy.export"}


def load_safetensors(path: Path) -> tuple[dict, dict, dict]:
    """(model state dict, spec dict, metadata) of a committed snapshot
    (``models/checkpoints``) or of shipped ARM, IDF or lossy weights, in one read."""
    import importlib
    import json

    from safetensors import safe_open

    from models.int_storage import widen_torch

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = widen_torch({k: f.get_tensor(k) for k in f.keys()}, meta)
    spec = json.loads(meta["spec"])
    if meta.get("kind") in FLOAT_STATE_OF_SHIPPED:
        tensors = importlib.import_module(FLOAT_STATE_OF_SHIPPED[meta["kind"]]).float_state(tensors, spec)
    return tensors, spec, meta


def load_state(path: Path) -> tuple[dict, dict]:
    """(model state dict, spec dict) of a training checkpoint (.pt), a
    committed snapshot or shipped ARM, IDF or lossy weights (.safetensors)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        state, spec, _ = load_safetensors(path)
        return state, spec
    ck = torch.load(path, weights_only=False, map_location="cpu")
    return ck["model"], ck["spec"]


def resume_or_start(run: Run, spec, spec_cls, make_net, make_opt, init_from: Path | None = None,
                    overrides=None, adapt_state=None, split: PhotoSplit | None = None):
    """(spec, net, opt, step, best): from ``RUN/last.pt`` if it exists, else a
    new run, starting from ``init_from``'s weights (and spec, with the fields
    ``overrides(old_spec_dict)`` returns replaced; parameters the new spec
    adds keep their initial values) when given.
    ``adapt_state(state, old_spec_dict, new_spec, new_net)`` maps the old
    weights onto a reshaped model (a warm start across a change of shape).
    ``split``: the photographs this run selects on, recorded in its
    checkpoints; a run resumed on other held-out photographs (one from
    before ``--photos``, say) starts its selection anew, since its best
    figure was measured on those."""
    step, best = 0, math.inf
    ck = run.resume()
    if split is not None:
        run.held_out = split.held_out_names
    init = None
    if ck:
        spec = spec_cls.from_dict(ck["spec"])
    elif init_from:
        init, init_spec = load_state(init_from)
        changed = overrides(init_spec) if overrides else {}
        spec = spec_cls.from_dict({**init_spec, **changed})
    net = make_net(spec)
    if init is not None and adapt_state is not None:
        init = adapt_state(init, init_spec, spec, net)
    if init is not None:
        missing, unexpected = net.load_state_dict(init, strict=not changed)
        if unexpected:
            raise SystemExit(f"{init_from} has parameters this model lacks: {unexpected}")
        run.say(f"initialised from {init_from}")
    opt = make_opt(net)
    if ck:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best = ck["step"], ck.get("best", math.inf)
        run.say(f"resumed at step {step}, best {best:.4f}")
        if split is not None and not split.selects_as(ck.get("held_out")) and best < math.inf:
            run.say(f"the held-out photographs differ from those of best {best:.4f}: selection starts anew")
            best = math.inf
    else:
        import json
        run.say(f"new run: {json.dumps(spec.to_dict())}")
    return spec, net, opt, step, best


def fit_bits(run: Run, spec, net, opt, *, step: int, best: float, steps: int, peak_lr: float,
             batches, evaluate, before_step=None, log_every: int = 200, eval_every: int = 2000,
             max_minutes: float | None = None, schedule: str = "cosine", ema: float | None = None):
    """Minimise bits per subpixel: the loop shared by the lossless models.

    Logs the running training loss, evaluates on held-out crops, keeps the best
    model in ``best.pt`` and checkpoints ``last.pt`` every few minutes.  Each
    optimizer group may carry an ``lr_mult``; ``before_step(step, progress)``
    runs before each step.  Batches go to the network's
    device; ``max_minutes`` bounds the run by time (:class:`TrainingBudget`).
    ``ema``: the decay of a moving average of the weights (Polyak
    averaging), which then stands for the run: held-out figures, selection
    and ``best.pt`` are the average's; the raw network's figure is logged
    beside it.  Small batches on a CPU make each step's weights noisy, and
    an average over the last thousand steps smooths that noise away.
    With several processes (``run.world``) each trains ``net`` wrapped for
    DistributedDataParallel on its own batches; the first alone evaluates
    and writes."""
    device = next(net.parameters()).device
    world = run.world
    model = world.wrap(net)
    budget = TrainingBudget(steps, max_minutes, world)

    averaged = None
    if ema is not None and world.is_main:   # the process that evaluates and writes keeps it
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(ema))
        resumed = run.resume()
        if resumed and "ema" in resumed:
            averaged.load_state_dict(resumed["ema"])

    def state(selected: bool = False):
        """``selected``: for best.pt, whose weights are the run's (the average's)."""
        model = averaged.module if selected and averaged is not None else net
        out = {"spec": spec.to_dict(), "model": model.state_dict(), "opt": opt.state_dict(),
               "step": step, "best": best, "world_size": world.size}
        if averaged is not None:
            out["ema"] = averaged.state_dict()
        return out

    running = RunningMean(world)
    progress = budget.progress(step)
    while progress < 1:
        lr = (constant_lr(step, peak_lr) if schedule == "constant"
              else cosine_lr(step, steps, peak_lr, progress=progress))
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        if before_step:
            before_step(step, progress)
        x = on_device(batches(), device)
        running.add(optimizer_step(model, opt, model(x).sum() / x.numel()))
        if averaged is not None:
            averaged.update_parameters(net)
        step += 1
        progress = budget.progress(step)
        if step % log_every == 0:
            mean_loss = running.take()  # on every process: a mean over them
            run.say(f"step {step} lr {lr:.2e} train {mean_loss:.4f} bpsp")
        if (step % eval_every == 0 or progress >= 1) and world.is_main:
            v = evaluate(net)
            raw = ""
            if averaged is not None:
                raw, v = f" (raw weights {v:.4f})", evaluate(averaged.module)
            if v < best:
                best = v
                run.save("best.pt", state(selected=True))
            run.say(f"step {step} held-out {v:.4f} bpsp{raw} (best {best:.4f}) cpu-h {run.cpu_hours:.2f} "
                    f"wall-min {run.wall_minutes:.1f}")
        if run.checkpoint_due():
            run.save("last.pt", state())
    run.save("last.pt", state())
    run.say("done")


def save_weights(out: Path, tensors: dict, kind: str, model_id: str, spec, checkpoint: dict,
                 **extra: str) -> None:
    """Write shipped weights (safetensors) with the metadata the codec reads."""
    import json

    from safetensors.numpy import save_file

    from models.int_storage import narrow

    meta = {"model_id": model_id, "kind": kind, "spec": json.dumps(spec.to_dict()),
            "train_step": str(checkpoint["step"]),
            "cpu_hours": f"{checkpoint.get('cpu_seconds', 0) / 3600:.2f}", **extra}
    if "best" in checkpoint:
        meta["held_out_bpsp"] = f"{checkpoint['best']:.4f}"
    tensors, widen = narrow(tensors)     # lossless; the loaders restore the types
    meta.update(widen)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), step {checkpoint['step']}")


def load_checkpoint(path: Path, spec_cls, net_cls):
    """(checkpoint dict, spec, network with its weights) of a training
    checkpoint, or of a committed snapshot (``models/checkpoints``) or shipped
    weights file, whose checkpoint dict then holds only the spec, weights and step."""
    path = Path(path)
    if path.suffix == ".safetensors":
        state, spec_dict, meta = load_safetensors(path)
        ck = {"spec": spec_dict, "model": state,
              "step": int(meta.get("step", meta.get("train_step", 0)))}
    else:
        ck = torch.load(path, weights_only=False, map_location="cpu")
    spec = spec_cls.from_dict(ck["spec"])
    net = net_cls(spec)
    net.load_state_dict(ck["model"])
    return ck, spec, net
