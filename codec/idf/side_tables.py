"""An IDF segment's feedback table and the prior change's row levels,
range-coded at the head of the stream (nc 0.35).

Why.  Until nc 0.34 a segment carried these as raw bytes after its layout
byte: the feedback table (``feedback.py``) 634 int8 bytes for idf-v9, the
change's row levels (``adaptation.py``) 72 bytes.  Their values are small
and skewed (most coefficients within a few 1/64 units of 0, most row levels
0-4), so since nc 0.35 (layout byte bit CODED_TABLES) they open the stream
instead, as **rows** (``rows.py``): each row one scale level, coded under
a uniform model of the coder's levels, then its integers as latent
residuals of mean 0 at that level, under the flow's own tables (as the
prior change's rows already were).  On eight held-out 768x512
photographs the feedback table takes 281-341 bytes instead of 634
(docs/MODELS.md).

The rows, in order: the levels' scale shifts (one per latent level, finest
first), every coefficient of the feedback table (levels finest first,
channels in order, as ``IDFFeedback.to_bytes`` lists them), the change's
row levels.  The decoder checks every value's range as it did for the raw
bytes; the codec (``codec.py``) says what is in range.
"""
from __future__ import annotations

import numpy as np

from codec.idf.feedback import IDFFeedback
from codec.idf.rows import RowCoder


def _rows(feedback: IDFFeedback | None, change_levels: np.ndarray | None) -> list[np.ndarray]:
    rows = []
    if feedback is not None:
        shifts, coeffs = feedback.values()
        rows += [shifts, coeffs]
    if change_levels is not None:
        rows.append(change_levels.astype(np.int64))
    return rows


def table_bits(rows: RowCoder, feedback: IDFFeedback | None, change_levels: np.ndarray | None) -> float:
    """The ideal bits of the coded tables (what the encoder weighs plans by)."""
    return sum(rows.bits(r) for r in _rows(feedback, change_levels))


def encode(encoder, rows: RowCoder, feedback: IDFFeedback | None, change_levels: np.ndarray | None) -> None:
    for r in _rows(feedback, change_levels):
        rows.encode(encoder, r)


def decode(decoder, rows: RowCoder, z_channels: list[int], with_feedback: bool,
           change_rows: int | None) -> tuple[IDFFeedback | None, np.ndarray | None]:
    """(the feedback table or None, the change's row levels (unchecked) or
    None); raises ``FormatError`` on a feedback value out of range."""
    feedback = None
    if with_feedback:
        shifts = rows.decode(decoder, len(z_channels))
        coeffs = rows.decode(decoder, IDFFeedback.coefficient_count(z_channels))
        feedback = IDFFeedback.from_values(shifts, coeffs, z_channels)
    levels = None if change_rows is None else rows.decode(decoder, change_rows)
    return feedback, levels
