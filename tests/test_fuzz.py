"""The fuzz harness (bench/fuzz*.py): its mutations, its judgement of a
decode, its workers, and a short fuzz run of every codec's decoder."""
from __future__ import annotations

import random
import textwrap
import types
from pathlib import Path

import pytest
from PIL import Image

import codec
from bench import fuzz
from bench.fuzz_mutations import KINDS, ContainerLayout, Seed, mutate, reseal
from bench.fuzz_worker import (
    ACCEPTED_CORRECT,
    ACCEPTED_CORRUPTED,
    CRASH,
    HANG,
    REJECTED,
    TRACEBACK,
    DecodePool,
    image_digest,
    judge,
)

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "sample.png"


@pytest.fixture(scope="module")
def seeds() -> list[Seed]:
    """Two small files per kind of layout: one segment (ARM L) and three (lossy RGBA)."""
    with Image.open(SAMPLE) as im:
        grey = im.convert("L").crop((0, 0, 16, 12))
        rgba = im.convert("RGBA").crop((0, 0, 16, 12))
    out = []
    for name, kind, image, kw in (("arm-L", "arm", grey, {"codec": "arm"}),
                                  ("lossy-RGBA", "lossy", rgba, {"quality": 3})):
        data = codec.encode(image, **kw)
        out.append(Seed(name, kind, data, image_digest(codec.decode(data))))
    return out


# -- what the harness knows of the format ----------------------------------------------------
def test_reseal_leaves_a_valid_file_as_it_is(seeds):
    """If this fails, the container changed: update fuzz_mutations.reseal and
    ContainerLayout (docs/FORMAT.md) so the deep mutations still reach the decoders."""
    for s in seeds:
        assert reseal(s.data) == s.data
        lay = ContainerLayout.of(s.data)
        assert lay.payload_end + 4 == len(s.data)
        assert [n for n in codec.info(s.data)["segments"].values()] == list(lay.lengths)


def test_deep_mutations_get_past_the_container(seeds):
    """Payload edits with every CRC recomputed must reach the decoder: the
    container's parser accepts them."""
    for i in range(40):
        s = seeds[i % 2]
        m = mutate(random.Random(i), "deep", s, seeds)
        assert m.data != s.data
        codec.info(m.data)          # raises if a CRC or a length was left wrong


def test_every_kind_changes_the_file_and_is_reproducible(seeds):
    for kind in KINDS:
        for s in seeds:
            a = mutate(random.Random(f"x{kind}"), kind, s, seeds)
            b = mutate(random.Random(f"x{kind}"), kind, s, seeds)
            assert a.data != s.data and a.kind == kind and a.detail
            assert (a.data, a.detail) == (b.data, b.detail)


def test_case_ids_redo_the_same_case(seeds):
    assert fuzz.make_case(3, "arm", 17, seeds)[1] == fuzz.make_case(3, "arm", 17, seeds)[1]
    assert fuzz.make_case(3, "arm", 17, seeds)[1] != fuzz.make_case(4, "arm", 17, seeds)[1]
    assert fuzz.parse_case_id("lossy:5") == ("lossy", 5)
    with pytest.raises(ValueError):
        fuzz.parse_case_id("arm-5")


# -- the judgement of one decode --------------------------------------------------------------
class _Refused(Exception):
    pass


def _api(decode_file) -> types.SimpleNamespace:
    return types.SimpleNamespace(NcError=_Refused, info=lambda data: {}, decode_file=decode_file)


def _refuse_leaving_a_file(src, dst):
    Path(dst).with_suffix(".part").write_bytes(b"half")
    raise _Refused("bad file")


def _raise(exc):
    def decode_file(src, dst):
        raise exc
    return decode_file


def _decode_to(image):
    def decode_file(src, dst):
        image.save(dst)
        return image
    return decode_file


def test_judge_tells_each_outcome_apart(tmp_path):
    good = Image.new("RGB", (4, 3), (1, 2, 3))
    bad = Image.new("RGB", (4, 3), (1, 2, 4))
    accept = (image_digest(good),)
    cases = [
        (_raise(_Refused("corrupt payload")), REJECTED, False),
        (_raise(AssertionError("deep inside")), TRACEBACK, False),
        (_raise(MemoryError()), TRACEBACK, False),
        (_refuse_leaving_a_file, REJECTED, True),
        (_decode_to(good), ACCEPTED_CORRECT, False),
        (_decode_to(bad), ACCEPTED_CORRUPTED, False),
        (_decode_to(good.convert("L")), ACCEPTED_CORRUPTED, False),
    ]
    for i, (decode_file, outcome, partial) in enumerate(cases):
        v = judge(_api(decode_file), b"data", accept, tmp_path / str(i))
        assert (v.outcome, v.partial) == (outcome, partial), (i, v)
    v = judge(types.SimpleNamespace(NcError=_Refused, info=lambda data: {}["width"],
                                    decode_file=None),
              b"data", accept, tmp_path / "info")
    assert v.outcome == TRACEBACK and v.message.startswith("info: KeyError")


# -- the workers: a real hang is killed, a crash is seen, both replaced ----------------------------
FAKE_API = '''
import os, time
class NcError(Exception):
    pass
def info(data):
    return {}
def decode(data):
    raise NcError("no reference images here")
def decode_file(src, dst):
    data = open(src, "rb").read()
    if data == b"hang":
        time.sleep(600)
    if data == b"crash":
        os._exit(3)
    raise NcError("refused " + data.decode())
'''


def test_pool_kills_hangs_and_replaces_crashed_workers(tmp_path, monkeypatch):
    (tmp_path / "nc_fuzz_fake_api.py").write_text(textwrap.dedent(FAKE_API))
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = [(name, name.encode(), (), None) for name in ("a", "hang", "b", "crash", "c")]
    with DecodePool(jobs=2, timeout=1.5, memory_gib=None, api_name="nc_fuzz_fake_api") as pool:
        got = {case_id: v for case_id, _, v in pool.run(cases)}
        assert pool.restarts == 2
    assert {k: v.outcome for k, v in got.items()} == {
        "a": REJECTED, "b": REJECTED, "c": REJECTED, "hang": HANG, "crash": CRASH}
    assert got["b"].message == "refused b"


# -- a short fuzz run over every codec ----------------------------------------------------------------
COUNT = 150   # per codec: 450 mutated files, about 15 s on two busy cores


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return fuzz.run(count=COUNT, seed=1, timeout=10.0, echo=lambda *a: None,
                    save_failures=tmp_path_factory.mktemp("fuzz-failures"))


def _count(report, outcome) -> int:
    return sum(t.get(outcome, 0) for t in report["totals"].values())


def _first(report, outcome) -> str:
    return "\n".join([f"{f['id']} {f['kind']} of {f['seed']}: {f['detail']} -> {f['message']}"
                      for f in report["failures"] if f["outcome"] == outcome][:5])


def test_fuzz_run_covers_every_codec_and_kind(report):
    assert set(report["counts"]) == set(fuzz.CODECS)
    for codec_name, kinds in report["counts"].items():
        assert set(kinds) == set(KINDS)
        assert sum(sum(v for k, v in c.items() if k != "partial") for c in kinds.values()) == COUNT
    assert _count(report, REJECTED) > COUNT     # most damage is refused


def test_fuzz_no_partial_outputs(report):
    assert _count(report, "partial") == 0, [f for f in report["failures"] if f["partial"]][:5]


def test_fuzz_no_hangs_or_crashes(report):
    assert _count(report, HANG) == 0, _first(report, HANG)
    assert _count(report, CRASH) == 0, _first(report, CRASH)


def test_fuzz_no_tracebacks(report):
    assert _count(report, TRACEBACK) == 0, _first(report, TRACEBACK)


def test_fuzz_no_corrupted_images_accepted(report):
    assert _count(report, ACCEPTED_CORRUPTED) == 0, _first(report, ACCEPTED_CORRUPTED)
