"""Golden weight tables, and a check of someone else's per-timestep weights against the registry.

A table lists, per timestep of a schedule, t, ᾱ_t, SNR, log-SNR and one strategy's weight in a target space, written
with every digit a float64 holds, so a port can be tested against it. :func:`check_weights` reads a user's weights
(a CSV with columns t and weight) and fits every registry strategy in every space to them: it says which one they
are, or where they depart from the nearest, and names the known port bugs (:data:`minsnr_core.implementations.PORT_BUGS`)
when the fit finds one.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import optimize

from .implementations import PORT_BUGS, PortBug
from .registry import Param, describe_value
from .schedules import Schedule, get_schedule
from .weighting import STRATEGIES, TARGET_NAMES, TARGETS, check_target, loss_weight

TABLE_COLUMNS = ("t", "alpha_bar", "snr", "log_snr", "weight")
MAX_ROWS = 4001  # the largest T the explorer draws is 4000; a header and at most this many rows
MAX_CHARACTERS = 400_000  # 4001 rows of two 17-digit numbers fit many times over
# A fit "matches" within this largest relative error: a port computing SNR in float32 is off by up to ~1e-3 at the
# cleanest steps (1 − ᾱ_t ≈ 4e-5 keeps 3 significant digits), while a different formula is off by far more there.
MATCH_TOLERANCE = 1e-2
# The weight on each target's loss from the x0-space weight w_x0 (VP; minsnr_core.weighting.x0_error_scale).
CONVERSION = {"eps": "/ SNR", "x0": "itself", "v": "/ (SNR + 1)"}


def weight_table(schedule: Schedule, strategy: str, target: str = "eps", **params: float) -> dict[str, np.ndarray]:
    """Per timestep of ``schedule``: t, ᾱ_t, SNR, log-SNR (−inf where SNR = 0) and ``strategy``'s weight on the
    ``target`` MSE (:func:`~minsnr_core.weighting.loss_weight`, its parameters defaulting from the registry)."""
    check_target(target)
    weight = loss_weight(strategy, schedule.snr, target, log_snr_density=schedule.log_snr_density(),
                         process=schedule.process, **params)
    return {"t": np.arange(schedule.num_timesteps), "alpha_bar": schedule.alphas_cumprod.numpy(),
            "snr": schedule.snr.numpy(), "log_snr": schedule.log_snr.numpy(), "weight": weight.numpy()}


def view_table(schedule: Schedule, strategies: list[str], target: str, params: dict[str, float]) -> tuple[
        dict[str, np.ndarray], list[str]]:
    """The table of several strategies at once (the explorer's view): the columns of :func:`weight_table`, with one
    ``weight_<name>`` column per strategy (just ``weight`` for one, so it equals :func:`weight_table`'s). Each takes
    its parameters from ``params`` by name. Returns the table and the strategies left out, with why (a weight that
    is not defined on this schedule in this space)."""
    table: dict[str, np.ndarray] = {}
    left_out = []
    for name in strategies:
        entry = STRATEGIES.get(name)
        own = {p.name: params[p.name] for p in entry.params if p.name in params}
        try:
            one = weight_table(schedule, name, target, **own)
        except ValueError as error:
            left_out.append(f"{entry.display_name}: {error}")
            continue
        weight = one.pop("weight")
        table = table or one
        table[f"weight_{name}"] = weight
    if len(strategies) == 1 and table:  # one strategy: the CLI's own table
        table["weight"] = table.pop(next(c for c in table if c.startswith("weight_")))
    return table, left_out


def _number(value: float | int) -> str:
    """Every digit of a float64 (repr round-trips), "inf"/"-inf" where not finite."""
    return str(int(value)) if isinstance(value, (int, np.integer)) else repr(float(value))


def table_csv(table: dict[str, np.ndarray]) -> str:
    """The table as CSV with a header; numbers written with all their digits."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = list(table)
    writer.writerow(columns)
    for row in zip(*(table[c] for c in columns), strict=True):
        writer.writerow([_number(v) for v in row])
    return out.getvalue()


def table_json(table: dict[str, np.ndarray], about: dict) -> str:
    """The table as JSON: ``about`` (schedule, T, target, strategy, parameters) and one list per column; a value JSON
    cannot hold (log-SNR −inf at SNR = 0) is null, as the ``notes`` say."""
    columns = {name: [None if not math.isfinite(float(v)) else (int(v) if name == "t" else float(v)) for v in values]
               for name, values in table.items()}
    notes = "null marks a value that is not finite: log-SNR is −inf where SNR = 0 (zero terminal SNR)"
    return json.dumps({**about, "columns": list(table), "notes": notes, **columns}, ensure_ascii=False)


@dataclass(frozen=True)
class UserWeights:
    """Per-timestep weights read from a user's file: ``t`` (ints, distinct) and ``weight`` (finite floats)."""

    t: np.ndarray
    weight: np.ndarray


def read_weights_csv(text: str, num_timesteps: int) -> UserWeights:
    """Read a CSV whose header names the columns ``t`` and ``weight`` (others are ignored), one row per timestep.
    Raises ``ValueError`` with one clear message naming the row for the first thing wrong: too long, no header, a
    t that is not a whole number in [0, T − 1] or appears twice, a weight that is not a finite number ≥ 0."""
    if not isinstance(text, str):
        raise ValueError(f"the weights file must be text (CSV), got {describe_value(text)}")
    if len(text) > MAX_CHARACTERS:
        raise ValueError(f"the weights file has {len(text):,} characters; at most {MAX_CHARACTERS:,} are read "
                         f"(a header and up to {MAX_ROWS:,} rows of t,weight)")
    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if not lines:
        raise ValueError("the weights file is empty: it needs a header line 't,weight' and one row per timestep")
    try:
        rows = list(csv.reader(lines))
    except csv.Error as error:
        raise ValueError(f"the weights file is not readable as CSV: {error}") from None
    header = [cell.strip().lower() for cell in rows[0]]
    if "t" not in header or "weight" not in header:
        raise ValueError(f"line 1 must be a header naming the columns t and weight, got {describe_value(lines[0])}")
    t_at, weight_at = header.index("t"), header.index("weight")
    data = rows[1:]
    if not data:
        raise ValueError("the weights file has a header but no rows")
    if len(data) > MAX_ROWS:
        raise ValueError(f"the weights file has {len(data):,} rows; at most {MAX_ROWS:,} are allowed")
    steps, weights, seen = [], [], {}
    for number, row in enumerate(data, start=1):
        where = f"row {number} (line {number + 1})"
        if len(row) != len(header):
            raise ValueError(f"{where} has {len(row)} values; the header names {len(header)} columns")
        t_text, weight_text = row[t_at].strip(), row[weight_at].strip()
        try:
            t_value = float(t_text)
        except ValueError:
            raise ValueError(f"{where}: t must be a whole number, got {describe_value(t_text)}") from None
        if not (math.isfinite(t_value) and t_value == int(t_value) and 0 <= t_value < num_timesteps):
            raise ValueError(f"{where}: t must be a whole number in [0, {num_timesteps - 1}] (T = {num_timesteps}), "
                             f"got {describe_value(t_text)}")
        if int(t_value) in seen:
            raise ValueError(f"{where}: t = {int(t_value)} appears twice (first in row {seen[int(t_value)]})")
        try:
            weight = float(weight_text)
        except ValueError:
            raise ValueError(f"{where}: weight must be a number, got {describe_value(weight_text)}") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{where}: weight must be a finite number ≥ 0, got {describe_value(weight_text)}")
        seen[int(t_value)] = number
        steps.append(int(t_value))
        weights.append(weight)
    return UserWeights(np.array(steps), np.array(weights, dtype=np.float64))


@dataclass(frozen=True)
class Fit:
    """One candidate fitted to the user's weights: ``strategy``'s weight in ``space`` (or a known port bug's formula,
    ``bug``), with fitted ``params`` and constant ``scale``; ``error`` is the largest relative error over the rows,
    at ``worst_t``; ``departs`` the timesteps where it exceeds :data:`MATCH_TOLERANCE`."""

    strategy: str
    space: str
    params: dict[str, float]
    scale: float
    error: float
    worst_t: int
    yours: float
    theirs: float
    departs: list[int] = field(default_factory=list)
    bug: PortBug | None = None

    @property
    def matches(self) -> bool:
        return self.error <= MATCH_TOLERANCE


def _relative_errors(weight: np.ndarray, model: np.ndarray) -> np.ndarray:
    size = np.maximum(np.abs(weight), np.abs(model))
    return np.where(size > 0, np.abs(weight - model) / np.where(size > 0, size, 1.0), 0.0)


def _scale(weight: np.ndarray, model: np.ndarray) -> float:
    """The constant factor that best maps ``model`` onto ``weight`` (median log-ratio), 1 when within rounding."""
    both = (weight > 0) & (model > 0) & np.isfinite(model)
    if not both.any():
        return 1.0
    scale = float(np.exp(np.median(np.log(weight[both] / model[both]))))
    return 1.0 if abs(scale - 1.0) < 1e-6 else scale


def _errors(weight: np.ndarray, model: np.ndarray) -> tuple[float, np.ndarray, float]:
    """The fitted scale, each row's relative error after it, and the largest (inf where the model is not finite)."""
    if not np.all(np.isfinite(model)):
        return 1.0, np.full(len(weight), np.inf), math.inf
    scale = _scale(weight, model)
    errors = _relative_errors(weight, scale * model)
    return scale, errors, float(errors.max())


def _fit_params(objective: Callable[[dict[str, float]], float], params: tuple[Param, ...]) -> dict[str, float]:
    """Parameters minimising ``objective``: a grid over each one's range (log-spaced where it is positive), then a
    bounded refinement from the best point."""
    if not params:
        return {}
    grids = []
    for p in params:
        low = p.minimum + (1e-3 if p.exclusive_minimum else 0.0)
        count = 160 if len(params) == 1 else 40
        grids.append(np.geomspace(max(low, 1e-3), p.maximum, count) if low >= 0 else np.linspace(low, p.maximum, count))
    best, best_value = None, math.inf
    for point in np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, len(params)):
        value = objective(dict(zip((p.name for p in params), point.tolist(), strict=True)))
        if value < best_value:
            best, best_value = point, value
    if best is None:  # nowhere finite
        return {p.name: p.default for p in params}
    bounds = [(p.minimum + (1e-9 if p.exclusive_minimum else 0.0), p.maximum) for p in params]
    result = optimize.minimize(lambda x: objective(dict(zip((p.name for p in params), x.tolist(), strict=True))),
                               best, method="Nelder-Mead", bounds=bounds,
                               options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 2000})
    chosen = result.x if result.fun <= best_value else best
    return {p.name: float(v) for p, v in zip(params, chosen, strict=True)}


@dataclass(frozen=True)
class _Arrays:
    """A schedule's SNR and log-SNR density, computed once for the thousands of evaluations of a fit."""

    snr: torch.Tensor
    density: torch.Tensor
    process: str

    @classmethod
    def of(cls, schedule: Schedule) -> _Arrays:
        return cls(schedule.snr, schedule.log_snr_density(), schedule.process)


def _candidate_weights(strategy: str, space: str, arrays: _Arrays, params: dict[str, float]) -> np.ndarray:
    """``strategy``'s per-timestep weight in ``space`` on a schedule (inf where undefined there)."""
    try:
        return loss_weight(strategy, arrays.snr, space, log_snr_density=arrays.density, process=arrays.process,
                           **params).numpy()
    except ValueError:  # unbounded ε weight at SNR = 0, or a per-unit-λ weight where λ is not finite
        return np.full(len(arrays.snr), np.inf)


def _fit(user: UserWeights, name: str, space: str, params: tuple[Param, ...],
         weights_of: Callable[[dict[str, float]], np.ndarray], bug: PortBug | None = None) -> Fit:
    def objective(values: dict[str, float]) -> float:
        model = weights_of(values)[user.t]
        if not np.all(np.isfinite(model)):
            return math.inf
        scale = _scale(user.weight, model)
        # First the timesteps it misses (so the nearest agrees on the most of them), then, below 1, the mean squared
        # log-ratio and the largest relative error, smooth enough to refine an exact match to the last digits.
        both = (user.weight > 0) & (model > 0)
        logs = np.log(user.weight[both] / (scale * model[both])) if both.any() else np.zeros(1)
        errors = _relative_errors(user.weight, scale * model)
        smooth = float(np.mean(logs**2)) + float(errors.max())
        return float(np.count_nonzero(errors > MATCH_TOLERANCE)) + smooth / (1.0 + smooth)

    chosen = _fit_params(objective, params)
    model = weights_of(chosen)[user.t]
    scale, errors, error = _errors(user.weight, model)
    worst = int(np.argmax(errors)) if np.isfinite(error) else 0
    departs = [int(t) for t in user.t[errors > MATCH_TOLERANCE]]
    return Fit(name, space, chosen, scale, error, int(user.t[worst]), float(user.weight[worst]),
               float(scale * model[worst]) if np.isfinite(error) else math.inf, departs, bug)


def fit_registry(user: UserWeights, schedule: Schedule, target: str) -> list[Fit]:
    """Every registry strategy in every space, and every known port bug's formula, fitted to ``user``'s weights on
    ``schedule``; best first (a match in the declared ``target`` space at scale 1 before one that needs another space,
    a factor or more parameters)."""
    check_target(target)
    arrays = _Arrays.of(schedule)
    fits = []
    for entry in STRATEGIES:
        for space in TARGETS:
            fit = _fit(user, entry.name, space, entry.params,
                       lambda values, n=entry.name, s=space: _candidate_weights(n, s, arrays, values))
            bug = next((b for b in PORT_BUGS if b.kind == "space" and b.strategy == entry.name
                        and b.space == space and b.target == target), None)
            fits.append(Fit(**{**fit.__dict__, "bug": bug}) if bug and space != target else fit)
    for bug in PORT_BUGS:
        if bug.kind == "formula" and bug.target == target:
            fits.append(_fit(user, bug.strategy, target, STRATEGIES.get(bug.strategy).params,
                             lambda values, b=bug: b.weights(schedule, target, values), bug))
        elif bug.kind == "schedule" and schedule.process == "vp" and schedule.zero_terminal_snr:
            before = _Arrays.of(get_schedule(schedule.name, schedule.num_timesteps, shift=schedule.shift))
            fit = _fit(user, bug.strategy, target, STRATEGIES.get(bug.strategy).params,
                       lambda values, b=bug, o=before: _candidate_weights(b.strategy, target, o, values), bug)
            fits.append(fit)

    # Among the matches, only those within 100× of the closest compete (a float32 port is off by ~1e-7, another formula
    # that happens to come within the tolerance by far more); among them the declared space at scale 1 comes first.
    closest = min((fit.error for fit in fits if fit.matches), default=math.inf)

    # Without a match, the nearest is the one that agrees within the tolerance on the most timesteps.
    def rank(fit: Fit) -> tuple:
        if not fit.matches:
            return (True, len(fit.departs), fit.error)
        correct = fit.space == target and fit.bug is None
        close = fit.error <= max(100 * closest, 1e-9)
        return (False, not close, not correct, fit.scale != 1.0, len(fit.params), fit.error)

    return sorted(fits, key=rank)


def _shown(params: dict[str, float]) -> str:
    return ", ".join(f"{name} = {value:.4g}" for name, value in params.items())


def _named(fit: Fit) -> str:
    display = STRATEGIES.get(fit.strategy).display_name
    return f"{display} ({_shown(fit.params)})" if fit.params else display


def _ranges(steps: list[int]) -> str:
    """[3, 4, 5, 9] → "3–5, 9"."""
    parts, start = [], None
    for i, t in enumerate(steps):
        if start is None:
            start = t
        if i + 1 == len(steps) or steps[i + 1] != t + 1:
            parts.append(f"{start}" if start == t else f"{start}–{t}")
            start = None
    return ", ".join(parts[:6]) + (" …" if len(parts) > 6 else "")


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_weights` found: ``best`` fit, whether it ``matches``, and the words."""

    best: Fit
    matches: bool
    words: str


def check_weights(user: UserWeights, schedule: Schedule, target: str) -> CheckReport:
    """Which registry weighting ``user``'s weights on the ``target`` loss are, in words: the strategy, its fitted
    parameters, its space and the largest relative error; a known port bug by name with its citation; or, without a
    match within :data:`MATCH_TOLERANCE`, the nearest weighting and where the weights depart from it."""
    best = fit_registry(user, schedule, target)[0]
    rows = f"{len(user.t):,} timestep{'s' if len(user.t) != 1 else ''}"
    error = f"largest relative error {best.error:.2g} over {rows}, at t = {best.worst_t}"
    named = (f"{best.scale:.6g} × " if best.scale != 1.0 else "") + _named(best)  # a constant factor in front
    target_name = TARGET_NAMES[target]
    conversion = "/ (1 + √SNR)²" if target == "v" and schedule.process == "rf" else CONVERSION[target]
    if not best.matches:
        words = (f"No registry weighting matches within {MATCH_TOLERANCE:.0%} in any space. The nearest: {named} "
                 f"in {TARGET_NAMES[best.space]} space. It departs at t = {_ranges(best.departs)} "
                 f"({len(best.departs)} of {rows}); the most at t = {best.worst_t}, where yours is {best.yours:.6g} "
                 f"and it gives {best.theirs:.6g} (relative error {best.error:.2g}).")
        if best.bug:
            words += " " + best.bug.sentence()
        return CheckReport(best, False, words)
    if best.bug is not None:
        words = f"These weights match {named} ({error}), but through a known port bug. {best.bug.sentence()}"
    elif best.space != target:
        words = (f"These are {named}'s weights for the {TARGET_NAMES[best.space]} loss ({error}), but "
                 f"they weight the {target_name} loss: there the same weighting is w_x₀ {conversion} "
                 f"(minsnr-weights table --target {target} gives its values).")
    else:
        words = (f"These weights are {named} on the {target_name} loss, as the registry computes it "
                 f"({error}).")
    meant = next((b for b in PORT_BUGS if b.kind == "strategy" and b.strategy == best.strategy), None)
    if meant is not None:
        words += f" If {STRATEGIES.get(meant.meant).display_name} was meant: {meant.sentence()}"
    return CheckReport(best, True, words)
