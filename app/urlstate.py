"""Settings ⇄ URL query parameters, so a teacher can hand out a link that opens on a given view.

Invalid values never raise: they fall back to the default and produce a notice the page shows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from minsnr_core.registry import Param

from .explorer_js import read_script

# The page's link writer: one function, given each field's rule (:func:`link_writer_js`).
LINKS_JS = read_script("links.js")
# How a flag (false, true) and a list are written into a link; the page writes them the same way (the rules say so).
FLAG_TEXT = ("0", "1")
LIST_SEPARATOR = ","


@dataclass(frozen=True)
class Field:
    key: str
    default: Any
    parse: Callable[[str], Any]
    encode: Callable[[Any], str] = str


# Each parser carries its rule (``parse.rule``), so the page can write a field into a link itself with the same
# checks and encoding (link_writer_js).


def choice(allowed: Sequence[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"allowed: {', '.join(allowed)}")
        return raw

    parse.rule = {"kind": "choice", "allowed": list(allowed)}
    return parse


def multi_choice(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(raw: str) -> list[str]:
        items = [item for item in raw.split(LIST_SEPARATOR) if item]
        bad = [item for item in items if item not in allowed]
        if bad:
            raise ValueError(f"unknown {bad}; allowed: {', '.join(allowed)}")
        return items

    parse.rule = {"kind": "list", "allowed": list(allowed), "separator": LIST_SEPARATOR}
    return parse


def number(low: float, high: float, integer: bool = False, exclusive_low: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not math.isfinite(value) or value > high or (value <= low if exclusive_low else value < low):
            raise ValueError(f"allowed: {low:g} to {high:g}")
        if integer:
            if value != int(value):
                raise ValueError("must be a whole number")
            return int(value)
        return value

    parse.rule = {"kind": "number", "low": low, "high": high, "integer": integer, "exclusive_low": exclusive_low}
    return parse


def param_number(param: Param) -> Callable[[str], float]:
    """A registry parameter's value, within its range."""
    return number(param.minimum, param.maximum, exclusive_low=param.exclusive_minimum)


def flag(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"allowed: {FLAG_TEXT[True]} or {FLAG_TEXT[False]}")


flag.rule = {"kind": "flag", "text": list(FLAG_TEXT)}


def encode_flag(value: Any) -> str:
    return FLAG_TEXT[bool(value)]


def encode_list(value: Any) -> str:
    return LIST_SEPARATOR.join(value)


def read_query(fields: Sequence[Field], query: Mapping[str, str]) -> tuple[list[Any], list[str]]:
    """Values for ``fields`` from a query mapping, and a notice for each value that was rejected."""
    values, notices = [], []
    for spec in fields:
        raw = query.get(spec.key)
        if raw is None:
            values.append(spec.default)
            continue
        try:
            values.append(spec.parse(raw))
        except (ValueError, TypeError) as error:
            values.append(spec.default)
            notices.append(f"Link parameter `{spec.key}={raw}` ignored ({error}); using the default.")
    return values, notices


def write_query(fields: Sequence[Field], values: Sequence[Any]) -> str:
    """The query string (without '?') for the current values; defaults are left out to keep links short. The page
    writes its links itself (:func:`link_writer_js`); tests check that it writes what this function writes."""
    pairs = {spec.key: spec.encode(value) for spec, value in zip(fields, values, strict=True) if value != spec.default}
    return urlencode(pairs, safe=LIST_SEPARATOR)


def link_writer_js(fields: Sequence[Field]) -> str:
    """The js= hook with which the page writes the link's query for ``fields`` itself (app/static/links.js), checked
    and encoded as :func:`read_query` and :func:`write_query` do, from each field's key, default and parser rule."""
    spec = json.dumps([[f.key, f.default, f.parse.rule] for f in fields])
    return f"(query, ...values) => ({LINKS_JS.strip()})({spec}, query, values)"
