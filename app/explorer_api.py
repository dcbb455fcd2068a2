"""``/explorer``: the explorer's curves as data, for scripts. Each argument is checked by name before anything is
drawn, so a wrong type, null, NaN or a megabyte of text is refused with the argument's name and what it allows."""

from __future__ import annotations

from typing import Any

import gradio as gr

from minsnr_core.registry import describe_value as describe
from minsnr_core.schedules import SCHEDULES
from minsnr_core.settings import SETTINGS
from minsnr_core.weighting import DEFAULT_GAMMA, STRATEGIES, TARGETS, strategy_parameters

from .explorer import DEFAULT_STRATEGIES, EXPLORER_SAMPLERS, TIMESTEPS_RANGE, X_AXES, build_explorer


def _choice(name: str, value: Any, choices: list[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise gr.Error(f"{name}: expects one of {', '.join(choices)}; got {describe(value)}", print_exception=False)
    return value


def _arguments(schedule, num_timesteps, strategies, target, x_axis, gamma, zero_terminal_snr, sampler, params,
               schedule_shift) -> dict:
    low, high = TIMESTEPS_RANGE
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or not low <= num_timesteps <= high:
        raise gr.Error(f"num_timesteps: expects a whole number from {low} to {high}; got {describe(num_timesteps)}",
                       print_exception=False)
    names = list(DEFAULT_STRATEGIES) if strategies is None else strategies
    if not isinstance(names, list) or not 1 <= len(names) <= len(STRATEGIES) or not all(
            isinstance(n, str) and n in STRATEGIES for n in names):
        unknown = [describe(n) for n in names if not (isinstance(n, str) and n in STRATEGIES)][:3] if isinstance(
            names, list) else []
        raise gr.Error(f"strategies: expects a list of strategy names from {', '.join(STRATEGIES.names())}; got "
                       + (f"unknown {', '.join(unknown)}" if unknown else describe(names)), print_exception=False)
    if not isinstance(zero_terminal_snr, bool):
        raise gr.Error(f"zero_terminal_snr: expects true or false; got {describe(zero_terminal_snr)}",
                       print_exception=False)
    try:
        shift = SETTINGS["schedule_shift"].validate(schedule_shift)
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from None
    if params is not None and (not isinstance(params, dict) or len(params) > len(strategy_parameters())):
        raise gr.Error(f"params: expects an object of strategy parameters ({', '.join(strategy_parameters())}); got "
                       f"{describe(params)}", print_exception=False)
    values = {}
    for argument, given in (("gamma", {"gamma": gamma}), ("params", params or {})):
        for key, value in given.items():
            if key not in strategy_parameters():
                raise gr.Error(f"params: unknown parameter {describe(key)}; known: {', '.join(strategy_parameters())}",
                               print_exception=False)
            try:
                values[key] = strategy_parameters()[key].validate(value, "explorer")
            except ValueError as error:
                raise gr.Error(f"{argument}: {error}", print_exception=False) from None
    return {"schedule": _choice("schedule", schedule, SCHEDULES.names()), "T": num_timesteps, "strategies": names,
            "params": values, "target": _choice("target", target, list(TARGETS)),
            "x_axis": _choice("x_axis", x_axis, list(X_AXES)), "zero_terminal_snr": zero_terminal_snr,
            "sampler": _choice("sampler", sampler, EXPLORER_SAMPLERS), "schedule_shift": shift}


def explorer_api(
    schedule: str = "cosine",
    num_timesteps: int = 1000,
    strategies: list[str] | None = None,
    target: str = "eps",
    x_axis: str = "t",
    gamma: float = DEFAULT_GAMMA,
    zero_terminal_snr: bool = False,
    sampler: str = "uniform",
    params: dict | None = None,
    schedule_shift: float = 1.0,
) -> dict:
    """The explorer's curves as data: one entry per strategy with x, y and the notices (with a timestep
    ``sampler``, the weights that give the same expected loss under uniform t, and the sampler's T·p(t) last).
    ``params``: any strategy parameter by name (``{"k": 2}``), besides ``gamma``. ``schedule_shift``: SD3's resolution
    shift α (every log-SNR moved by −2·log α)."""
    a = _arguments(schedule, num_timesteps, strategies, target, x_axis, gamma, zero_terminal_snr, sampler, params,
                   schedule_shift)
    try:
        result = build_explorer(a["schedule"], a["T"], a["strategies"], a["params"], a["target"], a["x_axis"],
                                zero_terminal_snr=a["zero_terminal_snr"], sampler=a["sampler"],
                                schedule_shift=a["schedule_shift"])
    except (ValueError, TypeError) as error:
        raise gr.Error(str(error), print_exception=False) from None
    means = [*result.mean_weights, None]  # the sampler's own curve, when drawn, has no mean weight
    return {
        "traces": [{"name": tr.name.split(" · E[w]")[0], "x": list(map(float, tr.x)), "y": list(map(float, tr.y)),
                    "mean_weight": means[min(i, len(means) - 1)]} for i, tr in enumerate(result.figure.data)],
        "notices": result.notices,
    }
