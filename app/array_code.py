"""The exported explorer's numbers, compactly: the file holds ~0.1 MB of data next to Plotly's 4.8 MB.

Arrays travel as the base64 VLQ (as in source maps) of their 32-bit words' 4th differences; explorer_static.js's
decodeArray reverses it, as :func:`decode_array` does here for the tests.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import numpy as np

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _vlq(values: Iterable[int]) -> str:
    """Integers as base64 VLQ (as in source maps): sign in the lowest bit, 5 bits a digit, 32 = more digits follow."""
    out = []
    for value in values:
        z = 2 * value if value >= 0 else 2 * -value + 1
        while True:
            digit, z = z & 31, z >> 5
            out.append(_B64[digit | (32 if z else 0)])
            if not z:
                break
    return "".join(out)


# The words of a smooth curve's numbers have small differences of this order (4: the fewest characters for these).
DIFFERENCES = 4


def _words_code(words: np.ndarray) -> str:
    """32-bit words (uint32) as the VLQ of their DIFFERENCES-th differences (each an integer below 2⁴⁰)."""
    values = words.astype(np.int64)
    for _ in range(DIFFERENCES):
        values = np.diff(values, prepend=0)
    return _vlq(int(v) for v in values)


def encode_float32(values: np.ndarray) -> dict[str, str]:
    """``values`` rounded to float32 (relative error ≤ 2⁻²⁴), coded by their bit patterns (explorer_static.js's
    decodeArray reverses it)."""
    single = np.ascontiguousarray(values, dtype="<f4")
    if not np.all(np.isfinite(single)):
        raise ValueError("encode_float32: values must be finite in float32")
    return {"f4": _words_code(single.view("<u4"))}


def encode_float64(values: np.ndarray) -> dict[str, str]:
    """``values`` exactly (float64): the high words coded as :func:`encode_float32`'s, the low words (noise to a
    coder) as base64."""
    words = np.ascontiguousarray(values, dtype="<f8").view("<u4").reshape(-1, 2)
    return {"hi": _words_code(words[:, 1]), "lo": base64.b64encode(words[:, 0].astype("<u4").tobytes()).decode("ascii")}


def decode_array(code: dict[str, str]) -> np.ndarray:
    """The float64 values of an :func:`encode_float32` or :func:`encode_float64` code (the page decodes the same)."""

    def words(text: str) -> np.ndarray:
        values, value, shift = [], 0, 0
        for char in text:
            digit = _B64.index(char)
            value |= (digit & 31) << shift
            if digit & 32:
                shift += 5
                continue
            values.append(-(value >> 1) if value & 1 else value >> 1)
            value, shift = 0, 0
        words = np.array(values, dtype=np.int64)
        for _ in range(DIFFERENCES):
            words = np.cumsum(words)
        return words.astype("<u4")

    if "f4" in code:
        return words(code["f4"]).view("<f4").astype(np.float64)
    low = np.frombuffer(base64.b64decode(code["lo"]), dtype="<u4")
    return np.stack([low, words(code["hi"])], axis=1).copy().view("<f8").ravel()
