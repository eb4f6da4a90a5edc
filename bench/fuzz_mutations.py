"""Mutations of .nc files for the fuzz harness (``bench/fuzz.py``).

Each mutator takes a random generator, the file to damage and the pool of
every seed file, and returns a ``Mutation``: the damaged bytes, a one-line
description precise enough to redo it by hand (offsets, old and new values)
and the seeds whose decoded image would count as a correct decode.

What the harness knows of the container is in ``ContainerLayout`` and
``reseal``, taken from ``docs/FORMAT.md`` and nothing else: the harness never
imports the codec's container code, so a bug there cannot hide itself.
When the format changes, update those two (and ``HEADER_FIELDS``); the
mutators are written against them.

Kinds, from the shallowest to the deepest:

- ``truncate``: cut at a random point (0, inside the header, anywhere, last byte);
- ``bitflip``: flip 1–8 random bits;
- ``byte-edit``: set 1–8 random bytes to random values;
- ``header``: edit header fields, then recompute the header CRC;
- ``table``: segment-table games (lengths, boundaries, swaps, kinds, entry
  count), then recompute the table CRC (and the header CRC when the count
  changed);
- ``splice``: the header of one file with the rest of another, halves of two;
- ``deep``: edit segment payload bytes (flips, bytes, cuts, growth,
  transplants), then recompute every CRC, so the damage reaches the decoders;
- ``deep-header``: edit header fields without growing the image much, then
  recompute every CRC — what only a check of the decoded pixels can catch.
"""
from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Seed:
    """An undamaged file and the digest of its decoded image."""

    name: str           # e.g. "arm-RGB-48x40"
    codec: str          # "arm", "idf", "lossy"
    data: bytes
    image_digest: str   # bench.fuzz_worker.image_digest of codec.decode(data)


@dataclass(frozen=True)
class Mutation:
    kind: str
    data: bytes
    detail: str
    accept: tuple[str, ...]   # digests of the images a decode may correctly give


# -- what the harness knows of the container (docs/FORMAT.md §1–3) ------------
HEADER_SIZE = 64
HEADER_CRC_AT = 60            # CRC-32 of bytes [0, HEADER_CRC_AT), u32 LE
SEGMENT_COUNT_AT = 56         # u16
VERSION_AT = 8                # u8
TABLE_ENTRY_SIZE = 8          # kind u8, method u8, tile u16, length u32
ENTRY_LENGTH_AT = 4
CRC_SIZE = 4

# name: (offset, struct format) of the header fields the mutators edit
HEADER_FIELDS = {
    "version": (8, "B"), "codec": (9, "B"), "mode": (10, "B"), "bit_depth": (11, "B"),
    "width": (12, "I"), "height": (16, "I"), "tile_width": (20, "I"), "tile_height": (24, "I"),
    "model_id": (28, "16s"), "weights_digest": (44, "8s"), "codec_param": (52, "I"),
    "segment_count": (56, "H"), "effort": (58, "B"), "reserved": (59, "B"),
}


@dataclass(frozen=True)
class ContainerLayout:
    """Where the parts of a file lie, read from its header without checking
    anything (a damaged file gives offsets past its end: callers clip)."""

    segment_count: int
    table_at: int
    table_crc_at: int
    lengths: tuple[int, ...]     # from the table, as far as the file holds it
    payload_at: int

    @classmethod
    def of(cls, data: bytes) -> "ContainerLayout":
        count = struct.unpack_from("<H", data, SEGMENT_COUNT_AT)[0] if len(data) >= HEADER_SIZE else 0
        table_crc_at = HEADER_SIZE + TABLE_ENTRY_SIZE * count
        lengths = tuple(struct.unpack_from("<I", data, HEADER_SIZE + TABLE_ENTRY_SIZE * i + ENTRY_LENGTH_AT)[0]
                        for i in range(count)
                        if HEADER_SIZE + TABLE_ENTRY_SIZE * (i + 1) <= len(data))
        return cls(count, HEADER_SIZE, table_crc_at, lengths, table_crc_at + CRC_SIZE)

    def segment_spans(self) -> list[tuple[int, int]]:
        """(start, end) of each segment's bytes in the file."""
        spans, at = [], self.payload_at
        for n in self.lengths:
            spans.append((at, at + n))
            at += n
        return spans

    @property
    def payload_end(self) -> int:
        return self.payload_at + sum(self.lengths)


def _put_crc(data: bytearray, at: int, start: int, end: int) -> None:
    if at + CRC_SIZE <= len(data) and end <= len(data):
        data[at:at + CRC_SIZE] = struct.pack("<I", zlib.crc32(bytes(data[start:end])))


def fix_header_crc(data: bytes) -> bytes:
    d = bytearray(data)
    _put_crc(d, HEADER_CRC_AT, 0, HEADER_CRC_AT)
    return bytes(d)


def fix_table_crc(data: bytes) -> bytes:
    d, lay = bytearray(data), ContainerLayout.of(data)
    _put_crc(d, lay.table_crc_at, lay.table_at, lay.table_crc_at)
    return bytes(d)


def reseal(data: bytes) -> bytes:
    """Recompute every checksum the format has, so that the file's damage is
    what its header, table and lengths say it is: header CRC, table CRC, and
    the CRC of the payload (the segments as the table lays them out), written
    after the payload (the file is cut or padded to end just after it).

    Version 2 (docs/FORMAT.md §1): the last CRC covers header bytes 0..59,
    the table entries and the payload; version 1: the payload only.  A new
    format version changes this function and ``ContainerLayout``."""
    d = bytearray(fix_header_crc(data))
    lay = ContainerLayout.of(bytes(d))
    _put_crc(d, lay.table_crc_at, lay.table_at, lay.table_crc_at)
    end = lay.payload_end
    if lay.payload_at > len(d) or end > len(d):
        return bytes(d)          # the table claims more than the file has: leave it truncated
    del d[end:]
    crc = zlib.crc32(bytes(d[lay.payload_at:end]))
    if len(d) > VERSION_AT and d[VERSION_AT] >= 2:
        crc = zlib.crc32(bytes(d[lay.payload_at:end]),
                         zlib.crc32(bytes(d[lay.table_at:lay.table_crc_at]),
                                    zlib.crc32(bytes(d[:HEADER_CRC_AT]))))
    d += struct.pack("<I", crc)
    return bytes(d)


# -- helpers -------------------------------------------------------------------
def _flip_bits(rng: random.Random, data: bytearray, lo: int, hi: int) -> list[str]:
    notes = []
    for _ in range(rng.randint(1, 8)):
        at, bit = rng.randrange(lo, hi), rng.randrange(8)
        data[at] ^= 1 << bit
        notes.append(f"{at}.{bit}")
    return notes


def _edit_bytes(rng: random.Random, data: bytearray, lo: int, hi: int) -> list[str]:
    notes = []
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(lo, hi)
        old, new = data[at], rng.choice([b for b in range(256) if b != data[at]])
        data[at] = new
        notes.append(f"{at}:{old:#04x}->{new:#04x}")
    return notes


def _field(data: bytes, name: str):
    at, fmt = HEADER_FIELDS[name]
    return struct.unpack_from("<" + fmt, data, at)[0]


def _set_field(data: bytearray, name: str, value) -> None:
    at, fmt = HEADER_FIELDS[name]
    struct.pack_into("<" + fmt, data, at, value)


def _int_candidates(old: int, fmt: str, grow: bool) -> list[int]:
    top = (1 << (8 * struct.calcsize(fmt))) - 1
    near = [old + d for d in (-8, -3, -2, -1, 1, 2, 3, 8)] + [old // 2, old * 2, 0, 1]
    far = [255, 256, 4095, 4096, 4097, 65535, 65536, 65537, 1 << 31, top]
    values = near + (far if grow else [])
    return [v for v in values if 0 <= v <= top and v != old]


def _new_field_value(rng: random.Random, data: bytes, name: str, pool: list[Seed], grow: bool):
    """A different value for a header field; ``grow=False`` keeps the image
    from growing past 4 times its pixels (a file whose every CRC is right
    but which claims a huge image is a valid file that takes long to decode)."""
    old = _field(data, name)
    _, fmt = HEADER_FIELDS[name]
    if name in ("model_id", "weights_digest"):
        donors = [s for s in pool if len(s.data) >= HEADER_SIZE and _field(s.data, name) != old]
        if donors and rng.random() < 0.5:
            return _field(rng.choice(donors).data, name)
        b = bytearray(old)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if fmt == "B":
        return rng.choice([v for v in (0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 255, rng.randrange(256))
                           if v != old])
    values = _int_candidates(old, fmt, grow)
    if not grow and name in ("width", "height"):
        values = [v for v in values if v <= 4 * old]
    if grow:
        values.append(rng.randrange(1 << (8 * struct.calcsize(fmt))))
    values = [v for v in values if v != old]
    return rng.choice(values) if values else old ^ 1


def _shown(name: str, value) -> str:
    if name == "model_id":
        return repr(value.rstrip(b"\0"))
    return value.hex() if isinstance(value, bytes) else str(value)


def _edit_header_fields(rng: random.Random, seed: Seed, pool: list[Seed], grow: bool) -> tuple[bytearray, list[str]]:
    d = bytearray(seed.data)
    names = list(HEADER_FIELDS)
    if not grow:
        names.remove("segment_count")   # the table would no longer match: that is the table game
    notes = []
    for name in rng.sample(names, rng.choice([1, 1, 1, 2, 3])):
        old = _field(bytes(d), name)
        new = _new_field_value(rng, bytes(d), name, pool, grow)
        _set_field(d, name, new)
        notes.append(f"{name}@{HEADER_FIELDS[name][0]} {_shown(name, old)}->{_shown(name, new)}")
    return d, notes


# -- the mutators ------------------------------------------------------------------
def truncate(rng, seed, pool):
    n = len(seed.data)
    at = rng.choice([0, rng.randrange(1, HEADER_SIZE), rng.randrange(HEADER_SIZE, n),
                     rng.randrange(HEADER_SIZE, n), n - 1])
    return Mutation("truncate", seed.data[:at], f"cut at {at} of {n}", ())


def bitflip(rng, seed, pool):
    d = bytearray(seed.data)
    notes = _flip_bits(rng, d, 0, len(d))
    return Mutation("bitflip", bytes(d), "flip bits (offset.bit) " + " ".join(notes), ())


def byte_edit(rng, seed, pool):
    d = bytearray(seed.data)
    notes = _edit_bytes(rng, d, 0, len(d))
    return Mutation("byte-edit", bytes(d), "bytes " + " ".join(notes), ())


def header(rng, seed, pool):
    d, notes = _edit_header_fields(rng, seed, pool, grow=True)
    return Mutation("header", fix_header_crc(bytes(d)), "header " + "; ".join(notes) + "; header CRC fixed",
                    (seed.image_digest,))


def table(rng, seed, pool):
    d, lay = bytearray(seed.data), ContainerLayout.of(seed.data)
    n = lay.segment_count
    entry = lambda i: HEADER_SIZE + TABLE_ENTRY_SIZE * i  # noqa: E731
    pairs = [i for i in range(n - 1) if lay.lengths[i] + lay.lengths[i + 1] > 0]
    games = ["length", "kind", "reserved", "drop-entry", "add-entry"]
    games += ["boundary", "boundary"] if pairs else []
    games += ["swap"] if n >= 2 else []
    game = rng.choice(games)
    i = rng.randrange(n)
    if game == "length":
        old = lay.lengths[i]
        new = rng.choice(_int_candidates(old, "I", grow=True) + [old + 4, max(0, old - 4)])
        new = new if new != old else old + 1
        struct.pack_into("<I", d, entry(i) + ENTRY_LENGTH_AT, new)
        note = f"segment {i} length {old}->{new}"
    elif game == "boundary":                    # same total: the payload CRC still holds
        i = rng.choice(pairs)
        a, b = lay.lengths[i], lay.lengths[i + 1]
        shift = rng.choice([s for s in (-a, -8, -4, -1, 1, 4, 8, b) if s and a + s >= 0 and b - s >= 0])
        struct.pack_into("<I", d, entry(i) + ENTRY_LENGTH_AT, a + shift)
        struct.pack_into("<I", d, entry(i + 1) + ENTRY_LENGTH_AT, b - shift)
        note = f"segments {i},{i + 1} lengths {a},{b}->{a + shift},{b - shift}"
    elif game == "swap":
        i, j = sorted(rng.sample(range(n), 2))
        ei, ej = bytes(d[entry(i):entry(i + 1)]), bytes(d[entry(j):entry(j + 1)])
        d[entry(i):entry(i + 1)], d[entry(j):entry(j + 1)] = ej, ei
        note = f"entries {i},{j} swapped"
    elif game == "kind":
        old = d[entry(i)]
        d[entry(i)] = rng.choice([k for k in (0, 1, 2, 3, 4, 5, 255) if k != old])
        note = f"segment {i} kind {old}->{d[entry(i)]}"
    elif game == "reserved":
        at = entry(i) + rng.randrange(1, ENTRY_LENGTH_AT)
        d[at] = rng.randrange(1, 256)
        note = f"segment {i} reserved byte @{at} -> {d[at]}"
    elif game == "drop-entry":                   # count - 1, entry gone: the payload is then too long
        del d[entry(i):entry(i + 1)]
        _set_field(d, "segment_count", n - 1)
        note = f"entry {i} removed, count {n}->{n - 1}; header CRC fixed"
    else:                                        # add an entry of length 0 or of a few bytes
        kind, length = rng.choice([1, 2, 3, 4, 9]), rng.choice([0, 0, 4, 16])
        d[entry(i):entry(i)] = struct.pack("<B3xI", kind, length)
        _set_field(d, "segment_count", n + 1)
        note = f"entry (kind {kind}, length {length}) inserted at {i}, count {n}->{n + 1}; header CRC fixed"
    data = fix_table_crc(fix_header_crc(bytes(d)))
    return Mutation("table", data, note + "; table CRC fixed", (seed.image_digest,))


def splice(rng, seed, pool):
    other = rng.choice([s for s in pool if s.data != seed.data])
    a, b = seed.data, other.data
    how = rng.choice(["header", "header+table", "halves", "cut"])
    if how == "header":
        data, note = a[:HEADER_SIZE] + b[HEADER_SIZE:], f"header of {seed.name} + rest of {other.name}"
    elif how == "header+table":
        la, lb = ContainerLayout.of(a), ContainerLayout.of(b)
        data = a[:la.payload_at] + b[lb.payload_at:]
        note = f"header and table of {seed.name} + payload of {other.name}"
    elif how == "halves":
        data = a[:len(a) // 2] + b[len(b) // 2:]
        note = f"first half of {seed.name} ({len(a) // 2}) + second half of {other.name} (from {len(b) // 2})"
    else:
        at = rng.randrange(1, min(len(a), len(b)))
        data, note = a[:at] + b[at:], f"{seed.name} up to {at} + {other.name} from {at}"
    return Mutation("splice", data, note, (seed.image_digest, other.image_digest))


def deep(rng, seed, pool):
    lay = ContainerLayout.of(seed.data)
    spans = lay.segment_spans()
    i = rng.randrange(len(spans))
    lo, hi = spans[i]
    d = bytearray(seed.data)
    how = rng.choice(["flip", "flip", "bytes", "bytes", "zero-run", "cut", "grow", "transplant"])
    if hi - lo == 0:
        how = "grow"
    new_length = hi - lo
    if how == "flip":
        note = "flip bits (offset.bit) " + " ".join(_flip_bits(rng, d, lo, hi))
    elif how == "bytes":
        note = "bytes " + " ".join(_edit_bytes(rng, d, lo, hi))
    elif how == "zero-run":
        at = rng.randrange(lo, hi)
        end = min(hi, at + rng.randint(1, 64))
        fill = rng.choice([0, 255])
        d[at:end] = bytes([fill]) * (end - at)
        note = f"bytes {at}..{end - 1} = {fill:#04x}"
    elif how == "cut":
        k = rng.randint(1, hi - lo)
        del d[hi - k:hi]
        new_length -= k
        note = f"last {k} bytes cut"
    elif how == "grow":
        k = rng.choice([1, 4, 16, 64])
        d[hi:hi] = rng.randbytes(k)
        new_length += k
        note = f"{k} random bytes appended"
    else:
        donors = [(s, sl) for s in pool if s.codec == seed.codec and s.data != seed.data
                  for sl in ContainerLayout.of(s.data).segment_spans()]
        donor, (dlo, dhi) = rng.choice(donors) if donors else (seed, (lo, hi))
        d[lo:hi] = donor.data[dlo:dhi]
        new_length = dhi - dlo
        note = f"replaced by {donor.name}'s segment at {dlo}..{dhi}"
    struct.pack_into("<I", d, HEADER_SIZE + TABLE_ENTRY_SIZE * i + ENTRY_LENGTH_AT, new_length)
    return Mutation("deep", reseal(bytes(d)),
                    f"segment {i} ({lo}..{hi}): {note}; every CRC recomputed", (seed.image_digest,))


def deep_header(rng, seed, pool):
    d, notes = _edit_header_fields(rng, seed, pool, grow=False)
    return Mutation("deep-header", reseal(bytes(d)), "header " + "; ".join(notes) + "; every CRC recomputed",
                    (seed.image_digest,))


MUTATORS: dict[str, Callable[[random.Random, Seed, list[Seed]], Mutation]] = {
    "truncate": truncate, "bitflip": bitflip, "byte-edit": byte_edit, "header": header,
    "table": table, "splice": splice, "deep": deep, "deep-header": deep_header,
}
KINDS = tuple(MUTATORS)


def mutate(rng: random.Random, kind: str, seed: Seed, pool: list[Seed]) -> Mutation:
    """One mutation of ``kind`` that changes the file (retried until it does)."""
    for _ in range(100):
        m = MUTATORS[kind](rng, seed, pool)
        if m.data != seed.data:
            return m
    raise RuntimeError(f"{kind} left {seed.name} unchanged 100 times")
