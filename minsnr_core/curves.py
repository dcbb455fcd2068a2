"""The grid's rows as curves (:mod:`minsnr_core.experiment` writes the rows): the mean curve of each arm over its
seeds, the runs far from the rest of their arm, and the steps each arm's mean curve needs to reach the baseline's
final quality (the paper's speed-up, on means; :func:`minsnr_core.stats.paired_speedups` is the seed-by-seed one)."""

from __future__ import annotations

import math
import statistics
from typing import Any

from .experiment import BASELINE, HIGHER_IS_BETTER
from .stats import steps_to_reach


def mean_curves(rows: list[dict[str, Any]], metric: str, group: str = "comparison",
                by: tuple[str, ...] = ("target", "weighting")) -> dict[tuple, dict[str, list[float]]]:
    """Mean and standard deviation over seeds of ``metric`` at each evaluated step, per (target, weighting)."""
    buckets: dict[tuple, dict[int, list[float]]] = {}
    for row in rows:
        if row["group"] != group and group != "all":
            continue
        buckets.setdefault(tuple(row[k] for k in by), {}).setdefault(int(row["step"]), []).append(float(row[metric]))
    curves = {}
    for key, per_step in sorted(buckets.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        steps = sorted(per_step)
        values = [per_step[s] for s in steps]
        curves[key] = {
            "step": steps,
            "mean": [sum(v) / len(v) for v in values],
            "std": [math.sqrt(sum((x - sum(v) / len(v)) ** 2 for x in v) / max(1, len(v) - 1)) for v in values],
            "n": [len(v) for v in values],
        }
    return curves


# A run whose final Fréchet distance exceeds this many times the median of its arm's runs is far from the rest.
FAR_FROM_THE_REST = 3.0


def far_runs(rows: list[dict[str, Any]], target: str, metric: str = "fd") -> tuple[list[tuple[str, int]], int]:
    """The (weighting, seed) comparison runs of ``target`` whose ``metric`` (lower is better) at the last step all
    its runs reached is over FAR_FROM_THE_REST × the median of the same weighting's seeds there (diverged or
    stalled, not merely a slower weighting), and how many runs ``target`` has. A weighting needs 3 seeds with a
    value to be judged; where most of its seeds diverged, the median is a diverged one and none is named."""
    by_run: dict[tuple[str, int], dict[int, float]] = {}
    for row in rows:
        if row["group"] == "comparison" and row["target"] == target:
            value = row.get(metric)
            value = float(value) if isinstance(value, int | float) else math.nan
            by_run.setdefault((row["weighting"], int(row["seed"])), {})[int(row["step"])] = value
    if not by_run:
        return [], 0
    step = min(max(steps) for steps in by_run.values())  # the last step every run reached
    at_step = {key: values.get(step, math.nan) for key, values in by_run.items()}
    far = []
    for weighting in {w for w, _ in at_step}:
        arm = {seed: v for (w, seed), v in at_step.items() if w == weighting and math.isfinite(v)}
        if len(arm) >= 3:
            median = statistics.median(arm.values())
            far += [(weighting, seed) for seed, v in arm.items() if v > FAR_FROM_THE_REST * median]
    return sorted(far), len(by_run)


def steps_to_threshold(curves: dict[tuple, dict[str, list[float]]], metric: str) -> list[dict[str, Any]]:
    """Per target and weighting: the first step (linear interpolation) at which the mean curve reaches the
    baseline's final mean quality, and the speed-up = baseline steps / those steps."""
    table = []
    for (target, weighting), curve in curves.items():
        baseline = curves.get((target, BASELINE[target]))
        if baseline is None:
            continue
        threshold, baseline_steps = baseline["mean"][-1], baseline["step"][-1]
        reached = steps_to_reach(dict(zip(curve["step"], curve["mean"], strict=True)), threshold,
                                 HIGHER_IS_BETTER.get(metric, True))
        table.append({"target": target, "weighting": weighting, "baseline": BASELINE[target], "threshold": threshold,
                      "steps_to_threshold": reached,
                      "speedup": baseline_steps / reached if reached else None})
    return table
