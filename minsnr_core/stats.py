"""Statistics for paired runs: runs with the same seed share their initialisation, batches and noise, so two
weightings are compared seed by seed (the paired difference), not by whether their spreads overlap.

- :func:`t_interval`: mean and 95 % confidence interval of a small sample (Student's t).
- :func:`paired_comparison`: per target and weighting, the mean paired difference to the target's plain loss at
  the last evaluated step, with its interval.
- :func:`paired_speedups`: per seed, the steps a weighting needs to reach the quality its own baseline run (same
  seed) reaches at the end; the speed-up's geometric mean with an interval on the log scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# Two-sided 95 % quantiles of Student's t, t_{0.975}(df), df = 1 … 30 (standard tables); larger df use 1.96.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError(f"degrees of freedom must be ≥ 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def t_interval(values: Sequence[float]) -> dict[str, float]:
    """{"mean", "low", "high", "sd", "n"}: the mean with its 95 % t interval (low = high = mean for n = 1)."""
    n = len(values)
    if n == 0:
        raise ValueError("t_interval needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "low": mean, "high": mean, "sd": 0.0, "n": 1}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "sd": sd, "n": n}


def _runs(rows: list[dict[str, Any]], group: str) -> dict[tuple, dict[int, dict[int, dict[str, Any]]]]:
    """(target, weighting) → seed → step → row, for one group of the grid."""
    table: dict[tuple, dict[int, dict[int, dict[str, Any]]]] = {}
    for row in rows:
        if row["group"] == group:
            table.setdefault((row["target"], row["weighting"]), {}).setdefault(int(row["seed"]), {})[int(row["step"])] = row
    return table


def paired_comparison(rows: list[dict[str, Any]], metric: str, baselines: dict[str, str],
                      group: str = "comparison", step: int | None = None) -> list[dict[str, Any]]:
    """Per (target, weighting ≠ baseline): the mean of (weighting − baseline) over the seeds both ran, at ``step``
    (default: the last step both reached), with a 95 % t interval. An interval that excludes 0 is a difference the
    seeds agree on."""
    runs = _runs(rows, group)
    table = []
    for (target, weighting), seeds in runs.items():
        base = runs.get((target, baselines[target]))
        if base is None or weighting == baselines[target]:
            continue
        common = sorted(set(seeds) & set(base))
        if not common:
            continue
        at = step if step is not None else min(max(seeds[s]) for s in common)
        at = min(at, min(max(base[s]) for s in common))
        pairs = [(float(seeds[s][at][metric]), float(base[s][at][metric])) for s in common
                 if at in seeds[s] and at in base[s]]
        if not pairs:
            continue
        interval = t_interval([a - b for a, b in pairs])
        table.append({"target": target, "weighting": weighting, "baseline": baselines[target], "step": at,
                      "value": sum(a for a, _ in pairs) / len(pairs), "baseline_value": sum(b for _, b in pairs) / len(pairs),
                      "diff": interval["mean"], "low": interval["low"], "high": interval["high"], "n": interval["n"]})
    return table


def steps_to_reach(curve: dict[int, float], threshold: float, higher_is_better: bool) -> float | None:
    """The first step (linear interpolation between evaluations) at which ``curve`` reaches ``threshold``."""
    previous_step, previous_value = 0, None
    for step in sorted(curve):
        value = curve[step]
        if (value >= threshold) if higher_is_better else (value <= threshold):
            if previous_value is None or value == previous_value:
                return float(step)
            return previous_step + (step - previous_step) * (threshold - previous_value) / (value - previous_value)
        previous_step, previous_value = step, value
    return None


def paired_speedups(rows: list[dict[str, Any]], metric: str, baselines: dict[str, str], higher_is_better: bool,
                    group: str = "comparison") -> list[dict[str, Any]]:
    """Per (target, weighting): for each seed, steps to reach the same seed's baseline quality at its last step,
    and speed-up = baseline steps / those steps. The summary is the geometric mean with a 95 % t interval of the
    log speed-ups, given only when every seed got there (otherwise ``reached`` < ``n`` says how many did)."""
    runs = _runs(rows, group)
    table = []
    for (target, weighting), seeds in runs.items():
        base = runs.get((target, baselines[target]))
        if base is None:
            continue
        common = sorted(set(seeds) & set(base))
        per_seed = []
        for seed in common:
            final_step = max(base[seed])
            if max(seeds[seed]) < final_step:
                continue
            curve = {s: float(r[metric]) for s, r in seeds[seed].items() if s <= final_step}
            steps = steps_to_reach(curve, float(base[seed][final_step][metric]), higher_is_better)
            per_seed.append(final_step / steps if steps else None)
        if not per_seed:
            continue
        reached = [s for s in per_seed if s is not None]
        entry = {"target": target, "weighting": weighting, "baseline": baselines[target], "n": len(per_seed),
                 "reached": len(reached), "speedups": per_seed, "geomean": None, "low": None, "high": None}
        if len(reached) == len(per_seed):
            interval = t_interval([math.log(s) for s in reached])
            entry.update(geomean=math.exp(interval["mean"]), low=math.exp(interval["low"]), high=math.exp(interval["high"]))
        table.append(entry)
    return table
