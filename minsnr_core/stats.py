"""Statistics for paired runs: runs with the same seed share their initialisation, batches and noise, so two
weightings are compared seed by seed (the paired difference), not by whether their spreads overlap.

- :func:`t_interval`: mean and 95 % confidence interval of a small sample (Student's t), with the two-sided
  p-value of a one-sample t-test against 0 (quantiles and p-values from ``scipy.stats``).
- :func:`holm`: Holm's step-down adjustment of a family of p-values (Holm 1979), which keeps the chance of any
  false rejection in the family at most α.
- :func:`paired_comparison`: per target and weighting, the mean paired difference to the target's plain loss at
  the last evaluated step, with its interval and p-value.
- :func:`paired_speedups`: per seed, the steps a weighting needs to reach the quality its own baseline run (same
  seed) reaches at the end; the speed-up's geometric mean with an interval on the log scale.
- :func:`ratio_of_speedups`: two sets of speed-ups from runs that are *not* paired (another model, another
  machine): the ratio of their geometric means with Welch's interval on the log scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scipy import stats as _scipy_stats


def t_quantile_975(df: int) -> float:
    """Student's t two-sided 95 % quantile, t_{0.975}(df)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be ≥ 1, got {df}")
    return float(_scipy_stats.t.ppf(0.975, df))


def t_interval(values: Sequence[float]) -> dict[str, float]:
    """{"mean", "low", "high", "sd", "n", "p"}: the mean with its 95 % t interval (low = high = mean for n = 1) and
    the two-sided p-value of the one-sample t-test of mean = 0 (None for n = 1, or when every value is the same)."""
    n = len(values)
    if n == 0:
        raise ValueError("t_interval needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "low": mean, "high": mean, "sd": 0.0, "n": 1, "p": None}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    p = float(_scipy_stats.ttest_1samp(values, 0.0).pvalue) if sd > 0 else None
    return {"mean": mean, "low": mean - half, "high": mean + half, "sd": sd, "n": n, "p": p}


def ratio_of_speedups(first: Sequence[float], second: Sequence[float]) -> dict[str, float]:
    """{"ratio", "low", "high", "p"}: the geometric mean of ``first`` over that of ``second`` with its 95 % interval
    and two-sided p-value, from Welch's t-test on the logs (unequal variances; Welch 1947). For speed-ups of runs
    that share no seeds, so no paired difference exists. Each side needs two values or more."""
    if len(first) < 2 or len(second) < 2:
        raise ValueError(f"ratio_of_speedups needs at least 2 values on each side, got {len(first)} and {len(second)}")
    if min(*first, *second) <= 0:
        raise ValueError("speed-ups must be positive")
    result = _scipy_stats.ttest_ind([math.log(v) for v in first], [math.log(v) for v in second], equal_var=False)
    interval = result.confidence_interval(0.95)
    log_ratio = sum(math.log(v) for v in first) / len(first) - sum(math.log(v) for v in second) / len(second)
    return {"ratio": math.exp(log_ratio), "low": math.exp(float(interval.low)), "high": math.exp(float(interval.high)),
            "p": float(result.pvalue)}


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's adjusted p-values (Holm 1979, "A simple sequentially rejective multiple test procedure"): sorted
    ascending, the i-th smallest of m is multiplied by (m − i + 1), made monotone, capped at 1. Rejecting where the
    adjusted value is below α keeps the family-wise error rate at most α. None (no test) stays None and does not
    count in m."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(tested)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must lie in [0, 1], got {p!r}")
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


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
    (default: the last step both reached), with a 95 % t interval and the paired t-test's p-value. An interval that
    excludes 0 is a difference the seeds agree on; one that includes 0 is a difference not detected."""
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
                      "diff": interval["mean"], "low": interval["low"], "high": interval["high"], "n": interval["n"],
                      "p": interval["p"]})
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
                 "reached": len(reached), "speedups": per_seed, "geomean": None, "low": None, "high": None, "p": None}
        if len(reached) == len(per_seed):
            interval = t_interval([math.log(s) for s in reached])  # p: the t-test of log speed-up = 0 (no speed-up)
            entry.update(geomean=math.exp(interval["mean"]), low=math.exp(interval["low"]), high=math.exp(interval["high"]),
                         p=interval["p"])
        table.append(entry)
    return table
