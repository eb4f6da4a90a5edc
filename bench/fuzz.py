"""Mutation fuzzing of the .nc container parser and every codec's decoder.

``python -m bench fuzz --count 10000 --codec arm`` encodes a few small real
images with each codec (the seeds), damages them in the ways of
``bench/fuzz_mutations.py`` and decodes every damaged file through the
public API in worker processes (``bench/fuzz_worker.py``), then counts, per
codec and kind of damage, what happened:

- rejected: an ``NcError`` (the one-line ``error:``), nothing left on disk;
- accepted-correct: decoded to the undamaged file's image;
- traceback (any other exception), crash (the worker died), hang (killed
  at ``--timeout``), accepted-corrupted (decoded without error to another
  image) and partial (a failed ``decode_file`` left a file behind) are
  failures: the exit status is 1 when there is any.

Every case is reproducible from ``--seed`` and its id (``arm:123``):
``python -m bench fuzz --seed S --case arm:123`` redoes just that one.

This harness is written against the public API only, so it keeps working
while the container changes; what it knows of the format (to recompute
checksums after an edit) is in ``fuzz_mutations.reseal`` and its layout.
"""
from __future__ import annotations

import io
import json
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from .fuzz_mutations import KINDS, Seed, mutate
from .fuzz_worker import (
    ACCEPTED_CORRECT,
    ACCEPTED_CORRUPTED,
    CRASH,
    HANG,
    OK_OUTCOMES,
    OUTCOMES,
    REJECTED,
    TRACEBACK,
    DecodePool,
)

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "sample.png"
CODECS = ("arm", "idf", "lossy")


@dataclass(frozen=True)
class SeedSpec:
    """A crop of the sample image and how to encode it."""

    codec: str
    mode: str
    size: tuple[int, int]
    at: tuple[int, int]
    quality: float | None = None

    @property
    def name(self) -> str:
        q = f"-q{self.quality:g}" if self.quality is not None else ""
        return f"{self.codec}-{self.mode}-{self.size[0]}x{self.size[1]}{q}"

    def encode_kwargs(self) -> dict:
        return {"quality": self.quality} if self.quality is not None else {"codec": self.codec}


SEED_SPECS = (
    SeedSpec("arm", "RGB", (48, 40), (100, 90)),
    SeedSpec("arm", "RGBA", (32, 24), (40, 120)),
    SeedSpec("arm", "L", (24, 16), (150, 30)),
    SeedSpec("arm", "LA", (24, 16), (10, 10)),
    SeedSpec("arm", "1", (24, 16), (200, 150)),
    SeedSpec("idf", "RGB", (32, 24), (100, 90)),
    SeedSpec("idf", "RGBA", (24, 16), (40, 120)),
    SeedSpec("idf", "L", (24, 16), (150, 30)),
    SeedSpec("lossy", "RGB", (48, 40), (100, 90), quality=2),
    SeedSpec("lossy", "RGB", (48, 40), (100, 90), quality=6),
    SeedSpec("lossy", "RGBA", (32, 24), (40, 120), quality=4),
    SeedSpec("lossy", "L", (24, 16), (150, 30), quality=3),
)


def _crop_png(spec: SeedSpec, sample: Path) -> bytes:
    from PIL import Image

    with Image.open(sample) as im:
        crop = im.convert("RGBA").crop((*spec.at, spec.at[0] + spec.size[0], spec.at[1] + spec.size[1]))
    if spec.mode in ("RGBA", "LA"):                 # an alpha plane worth coding: a soft ramp
        a = Image.linear_gradient("L").resize(spec.size)
        crop.putalpha(a)
    buf = io.BytesIO()
    crop.convert(spec.mode).save(buf, format="PNG")
    return buf.getvalue()


def make_seeds(pool: DecodePool, sample: Path = SAMPLE) -> list[Seed]:
    """Every seed file, encoded by a worker (the harness's process never loads a model)."""
    seeds = []
    for spec in SEED_SPECS:
        data, digest = pool.call(("encode", _crop_png(spec, sample), spec.encode_kwargs()))
        seeds.append(Seed(spec.name, spec.codec, data, digest))
    return seeds


# -- cases ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str           # "arm:123"
    codec: str
    seed: str
    kind: str
    detail: str
    size: int


def make_case(run_seed: int, codec: str, index: int, seeds: list[Seed], kinds=KINDS):
    """The ``index``-th mutation of ``codec``'s seeds: kinds in turn, a seed
    file and the damage drawn from a generator seeded by the run seed and the
    case id, so any case can be redone alone."""
    case_id = f"{codec}:{index}"
    rng = random.Random(f"{run_seed}:{case_id}")
    own = [s for s in seeds if s.codec == codec]
    kind = kinds[index % len(kinds)]
    seed = rng.choice(own)
    m = mutate(rng, kind, seed, seeds)
    return Case(case_id, codec, seed.name, kind, m.detail, len(m.data)), m


def parse_case_id(text: str) -> tuple[str, int]:
    codec, _, index = text.partition(":")
    if codec not in CODECS or not index.isdigit():
        raise ValueError(f"a case id is CODEC:INDEX, e.g. arm:12 (got {text!r})")
    return codec, int(index)


# -- the report ---------------------------------------------------------------------------
SHORT = {REJECTED: "rejected", TRACEBACK: "traceback", CRASH: "crash", HANG: "hang",
         ACCEPTED_CORRECT: "correct", ACCEPTED_CORRUPTED: "corrupted"}


def _message_shape(message: str) -> str:
    """A refusal with its numbers and digests blanked, to count refusals by reason."""
    return re.sub(r"\d+", "N", re.sub(r"\b[0-9a-f]{8,}\b", "X", message))[:90]


class Tally:
    """Counts per codec, kind and outcome, and the failures in full."""

    def __init__(self):
        self.counts = defaultdict(lambda: defaultdict(Counter))   # codec -> kind -> outcome -> n
        self.failures: list[dict] = []
        self.tolerated: list[dict] = []   # damage that decoded to the right image (first 200)
        self.rejections = Counter()
        self.tracebacks = Counter()
        self.seconds = Counter()
        self.slowest: list[tuple[float, str]] = []   # (seconds, case id), the 10 slowest decodes

    def add(self, case: Case, verdict) -> bool:
        c = self.counts[case.codec][case.kind]
        c[verdict.outcome] += 1
        if verdict.partial:
            c["partial"] += 1
        self.seconds[case.codec] += verdict.seconds
        self.slowest = sorted(self.slowest + [(round(verdict.seconds, 2), case.id)], reverse=True)[:10]
        if verdict.outcome == REJECTED:
            self.rejections[_message_shape(verdict.message)] += 1
        if verdict.outcome == TRACEBACK:
            self.tracebacks[f"{verdict.message.split(':')[0]} at {verdict.where}"] += 1
        if verdict.outcome == ACCEPTED_CORRECT and len(self.tolerated) < 200:
            self.tolerated.append({"id": case.id, "seed": case.seed, "kind": case.kind, "detail": case.detail})
        failed = verdict.outcome not in OK_OUTCOMES or verdict.partial
        if failed:
            self.failures.append({**asdict(case), "outcome": verdict.outcome, "partial": verdict.partial,
                                  "message": verdict.message, "where": verdict.where,
                                  "leftovers": verdict.leftovers})
        return failed

    def totals(self, codec: str) -> Counter:
        t = Counter()
        for kind_counts in self.counts[codec].values():
            t.update(kind_counts)
        return t

    def failure_count(self) -> int:
        return len(self.failures)

    def table(self) -> str:
        cols = [*OUTCOMES, "partial"]
        head = f"{'codec':6} {'kind':12} {'cases':>6} " + " ".join(f"{SHORT.get(c, c):>9}" for c in cols)
        lines = [head, "-" * len(head)]
        for codec in self.counts:
            for kind in [k for k in KINDS if k in self.counts[codec]]:
                c = self.counts[codec][kind]
                n = sum(c[o] for o in OUTCOMES)
                lines.append(f"{codec:6} {kind:12} {n:6d} " + " ".join(f"{c[o]:9d}" for o in cols))
            t = self.totals(codec)
            n = sum(t[o] for o in OUTCOMES)
            lines.append(f"{codec:6} {'all':12} {n:6d} " + " ".join(f"{t[o]:9d}" for o in cols))
            lines.append("")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"counts": {codec: {kind: dict(c) for kind, c in kinds.items()}
                           for codec, kinds in self.counts.items()},
                "totals": {codec: dict(self.totals(codec)) for codec in self.counts},
                "decode_seconds": {k: round(v, 1) for k, v in self.seconds.items()},
                "slowest": [{"id": i, "seconds": t} for t, i in self.slowest],
                "failures": self.failures,
                "tolerated": self.tolerated,
                "tracebacks": dict(self.tracebacks.most_common()),
                "rejections": dict(self.rejections.most_common())}


def _describe(f: dict) -> str:
    partial = f" + partial output {f['leftovers']}" if f["partial"] else ""
    where = f" [{f['where']}]" if f["where"] else ""
    return (f"{f['id']:>10} {f['outcome']}{partial}: {f['kind']} of {f['seed']}: {f['detail']}\n"
            f"{'':>11} -> {f['message']}{where}")


# -- the run ---------------------------------------------------------------------------------
def run(codecs=CODECS, count: int = 300, seed: int = 0, timeout: float = 10.0, jobs: int = 1,
        kinds=KINDS, cases: list[str] = (), save_failures: Path | None = None, json_out: Path | None = None,
        show: int = 10, memory_gib: float | None = 4.0, api_name: str = "codec", echo=print) -> dict:
    """Fuzz ``count`` mutations per codec (or only the ``cases`` given by id);
    returns the report (also written to ``json_out``)."""
    t0 = time.perf_counter()
    kinds = tuple(kinds)
    wanted = ([parse_case_id(c) for c in cases] if cases
              else [(codec, i) for codec in codecs for i in range(count)])
    with DecodePool(jobs=jobs, timeout=timeout, memory_gib=memory_gib, api_name=api_name) as pool:
        seeds = make_seeds(pool)
        pool.set_warmup([s.data for s in seeds])
        echo(f"seeds: {', '.join(f'{s.name} ({len(s.data)} B)' for s in seeds)}")
        made = {}

        def work():
            for codec, i in wanted:
                case, m = make_case(seed, codec, i, seeds, kinds)
                made[case.id] = (case, m)
                yield case.id, m.data, m.accept, None

        tally = Tally()
        done = 0
        for case_id, _, verdict in pool.run(work()):
            case, m = made.pop(case_id)
            failed = tally.add(case, verdict)
            done += 1
            if failed and save_failures is not None:
                save_failures.mkdir(parents=True, exist_ok=True)
                stem = f"{case.id.replace(':', '-')}-{case.kind}-{verdict.outcome}"
                (save_failures / f"{stem}.nc").write_bytes(m.data)
                (save_failures / f"{stem}.json").write_text(json.dumps(tally.failures[-1], indent=1) + "\n")
            if cases:
                echo(_describe({**asdict(case), **asdict(verdict)}))
            elif done % 500 == 0:
                echo(f"  {done}/{len(wanted)} cases, {tally.failure_count()} failures, "
                     f"{time.perf_counter() - t0:.0f} s")
        restarts = pool.restarts
    elapsed = time.perf_counter() - t0
    report = {"config": {"codecs": list(codecs), "count": count, "seed": seed, "timeout": timeout,
                         "jobs": jobs, "kinds": list(kinds), "cases": list(cases),
                         "memory_gib": memory_gib},
              "seeds": [{"name": s.name, "bytes": len(s.data)} for s in seeds],
              "seconds": round(elapsed, 1), "worker_restarts": restarts, **tally.to_json()}
    echo("")
    echo(tally.table())
    if tally.tracebacks:
        echo("tracebacks by place:")
        for where, n in tally.tracebacks.most_common(10):
            echo(f"  {n:5d}  {where}")
    if tally.failures and not cases:
        flags = "".join(f" --kind {k}" for k in kinds) if kinds != KINDS else ""
        echo(f"first {min(show, len(tally.failures))} of {len(tally.failures)} failures "
             f"(redo one: python -m bench fuzz --seed {seed}{flags} --case ID):")
        for f in tally.failures[:show]:
            echo(_describe(f))
    echo(f"{len(wanted)} cases in {elapsed:.0f} s, {tally.failure_count()} failures, "
         f"{restarts} worker restarts")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1) + "\n")
    return report
