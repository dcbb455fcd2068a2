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
        items = [item for item in raw.split(",") if item]
        bad = [item for item in items if item not in allowed]
        if bad:
            raise ValueError(f"unknown {bad}; allowed: {', '.join(allowed)}")
        return items

    parse.rule = {"kind": "list", "allowed": list(allowed)}
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


def flag(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("allowed: 1 or 0")


flag.rule = {"kind": "flag"}


def encode_flag(value: Any) -> str:
    return "1" if value else "0"


def encode_list(value: Any) -> str:
    return ",".join(value)


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
    return urlencode(pairs, safe=",")


def link_writer_js(fields: Sequence[Field]) -> str:
    """The link's query with ``fields`` (the last values handed in), written by the page, checked and encoded as
    :func:`read_query` and :func:`write_query` do (a default left out), so a change asks
    the server for the figure at most, never for the link. A value the app would refuse (an empty box included)
    leaves the link as it was."""
    spec = json.dumps([[f.key, f.default, f.parse.rule] for f in fields])
    return f"""(query, ...values) => {{
  const spec = {spec}, search = new URLSearchParams(query || '');
  for (let i = 0; i < spec.length; i++) {{
    const [key, fallback, rule] = spec[i];
    let value = values[values.length - spec.length + i], text;
    if (rule.kind === 'number') {{
      if (value === null || value === undefined || value === '') return query;
      value = Number(value);
      if (!Number.isFinite(value) || value > rule.high || (rule.exclusive_low ? value <= rule.low : value < rule.low)
          || (rule.integer && !Number.isInteger(value))) return query;
      text = String(value);
    }} else if (rule.kind === 'flag') {{
      value = Boolean(value); text = value ? '1' : '0';
    }} else if (rule.kind === 'choice') {{
      if (!rule.allowed.includes(value)) return query;
      text = value;
    }} else {{  // a list
      value = value || [];
      if (!value.every((item) => rule.allowed.includes(item))) return query;
      text = value.join(',');
    }}
    if (JSON.stringify(value) === JSON.stringify(fallback)) search.delete(key);
    else search.set(key, text);
  }}
  return search.toString().replace(/%2C/g, ',');
}}"""
