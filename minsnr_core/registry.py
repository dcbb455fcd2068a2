"""Registries: name → entry with display name, LaTeX formula, parameters and reference.

The app, the CLI and the notebooks list schedules and weighting strategies from here, never
from a list of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar


def describe_value(value: Any) -> str:
    """A short description of a refused value for an error message: the value itself when short, never a whole
    megabyte of text or a long list."""
    if isinstance(value, str):
        return f"a text of {len(value):,} characters" if len(value) > 40 else repr(value)
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value):,} items"
    return repr(value) if isinstance(value, (int, float, bool)) or value is None else type(value).__name__


@dataclass(frozen=True)
class Param:
    """A numeric parameter of a registry entry, with its default and allowed range."""

    name: str
    default: float
    minimum: float
    maximum: float
    description: str
    # Strictly positive parameters (γ, σ_data…) exclude the lower bound itself.
    exclusive_minimum: bool = False
    step: float = 0.1
    integer: bool = False  # a count (features, buckets, a history length): whole numbers only
    exclusive_maximum: bool = False  # a decay of 1 never learns: the upper bound itself excluded

    @property
    def lowest_setting(self) -> float:
        """The smallest value a slider offers: the minimum, or one step above an excluded one (γ = 0 is not a γ)."""
        return self.minimum + self.step if self.exclusive_minimum else self.minimum

    def validate(self, value: Any, owner: str) -> float:
        shown = describe_value(value)
        try:
            if isinstance(value, (str, bool)):  # "5" and True are not numbers a control sends
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{owner}: parameter '{self.name}' must be a number, got {shown}") from None
        low, high = "(" if self.exclusive_minimum else "[", ")" if self.exclusive_maximum else "]"
        allowed = f"{low}{self.minimum:g}, {self.maximum:g}{high}"
        if not math.isfinite(number):
            raise ValueError(f"{owner}: parameter '{self.name}' must be finite, in {allowed}; got {shown}")
        too_low = number <= self.minimum if self.exclusive_minimum else number < self.minimum
        too_high = number >= self.maximum if self.exclusive_maximum else number > self.maximum
        if too_low or too_high:
            raise ValueError(f"{owner}: parameter '{self.name}' must be in {allowed}, got {number:g}")
        if self.integer and number != int(number):
            raise ValueError(f"{owner}: parameter '{self.name}' must be a whole number in {allowed}, got {number:g}")
        return number


@dataclass(frozen=True)
class Entry:
    """One registered item: a function plus everything needed to show and explain it."""

    name: str
    display_name: str
    latex: str
    description: str
    reference: str
    function: Callable[..., Any]
    params: tuple[Param, ...] = ()

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params}

    def resolve_params(self, given: Mapping[str, Any], *, ignore_unknown: bool = False) -> dict[str, float]:
        """Fill defaults and validate values; unknown names raise unless ``ignore_unknown``."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown and not ignore_unknown:
            allowed = ", ".join(known) or "none"
            raise ValueError(f"{self.name}: unknown parameter(s) {unknown}; allowed: {allowed}")
        return {
            name: param.validate(given.get(name, param.default), self.name) for name, param in known.items()
        }


T = TypeVar("T", bound=Entry)


class Registry(Generic[T]):
    """An ordered name → entry mapping that names the allowed values when a lookup fails."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} '{entry.name}' is already registered")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove an entry (a plug-in's, or a test's throw-away one)."""
        return self._entries.pop(self.get(name).name)

    def get(self, name: str) -> T:
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; allowed: {', '.join(self._entries)}")
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def parameters(self) -> dict[str, Param]:
        """Every distinct parameter of the entries by name (a name shared by entries, like γ, means one thing)."""
        found: dict[str, Param] = {}
        for entry in self._entries.values():
            for param in entry.params:
                found.setdefault(param.name, param)
        return found

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
