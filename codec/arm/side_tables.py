"""An ARM segment's calibration and feedback tables, range-coded (nc 0.34).

Why.  Until nc 0.33 a segment of layout 1 or 2 carried these tables as raw
int8 bytes after its prefix: 96 + 288 bytes for an RGB image.  Their values
are small and skewed (most context shifts are 0 or -1, most band shifts
within +-2), so since nc 0.34 (layout byte flag CODED_TABLES) they open the
range-coded stream instead, column by column under the model's own logistic
tables (``columns.py``): the band shifts a column per channel, the feedback
coefficients one column, the context shifts a column per channel.  On the
eight held-out 768x512 photographs that is 129-138 bytes in place of 384,
0.06 % of a file (docs/MODELS.md).

The decoder checks every value's range as it did for the raw bytes; the
codec (``codec.py``) says what is in range.
"""
from __future__ import annotations

import numpy as np

from codec.arm.columns import column_levels, decode_columns, encode_columns
from codec.arm.feedback import CONTEXTS, ErrorFeedback


def _columns(calibration: np.ndarray, feedback: ErrorFeedback | None) -> list[np.ndarray]:
    """The tables as the (rows, cols) blocks of integers coded one after the other."""
    blocks = [calibration.T.astype(np.int64)]
    if feedback is not None:
        blocks += [np.concatenate(feedback.coeffs).astype(np.int64)[:, None],
                   feedback.context_shift.T.astype(np.int64)]
    return blocks


def table_bits(calibration: np.ndarray, feedback: ErrorFeedback | None, tables) -> float:
    """The ideal bits of the coded tables (what the encoder weighs layouts by)."""
    return sum(column_levels(block, tables)[1] for block in _columns(calibration, feedback))


def encode(encoder, tables, calibration: np.ndarray, feedback: ErrorFeedback | None) -> None:
    """The band shifts (C, bands), then the feedback table if any: first in the stream."""
    for block in _columns(calibration, feedback):
        encode_columns(encoder, tables, block, column_levels(block, tables)[0])


def decode(decoder, tables, channels: int, bands: int, with_feedback: bool
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """(the band shifts (C, bands), the feedback table's integers in
    ``ErrorFeedback.to_bytes``'s order, or None), unchecked; raises ValueError
    on a scale level out of range."""
    calibration = decode_columns(decoder, tables, (bands, channels)).T
    if not with_feedback:
        return np.ascontiguousarray(calibration), None
    coeffs = decode_columns(decoder, tables, (ErrorFeedback.coefficient_count(channels), 1))
    shifts = decode_columns(decoder, tables, (CONTEXTS, channels)).T
    return np.ascontiguousarray(calibration), np.concatenate([coeffs.ravel(), shifts.ravel()])

