"""Every setting of a run, once: its type, default, range or choices, help text, the data it applies to, its
automatic rule and whether a continued run may change it.

:class:`minsnr_core.config.TrainConfig` is built from this table (its fields, defaults and validation), and so are
``minsnr-train``'s flags and their help, the checks of ``--resume`` and of a checkpoint being continued, the
``minsnr-experiment`` flags that are run settings, the app's controls (defaults and ranges) and the settings a link
carries. A setting added here reaches all of them.

A default of ``None`` means "automatic": :meth:`Setting.auto` fills it in from the other settings when a config is
resolved, in the table's order (so ``model`` is chosen before ``batch_size`` and ``lr``, which read its preset).
The weighting, timestep-sampler and adaptive-weighting *parameters* are not here: they live with their registry
entries (``weighting_params`` and its kin are the settings that hold them).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .adaptive import ADAPTIVE_WEIGHTINGS
from .data import LABELLED_DATASETS, TOY_DATASETS, data_kind, dataset_names
from .models import MODEL_PRESETS
from .registry import describe_value
from .schedules import SCHEDULES
from .timesteps import TIMESTEP_SAMPLERS
from .weighting import STRATEGIES, TARGETS

# The automatic choices (used by the rules below).
DEFAULT_MODELS = {"mnist": "mnist-small", "cifar10": "cifar", "folder": "cifar", "points": "toy-mlp"}
DEFAULT_BATCH = {"image": 64, "points": 512}  # where the model preset names none (models.ModelPreset.batch_size)
DEFAULT_LR = 2e-3  # where the model preset names none (models.ModelPreset.lr)
# x0 for images: with Min-SNR-5 and a short MNIST budget it gave a far lower FD than ε (docs/performance.md); on the
# toys x0-prediction collapses the clusters onto their mean early on.
DEFAULT_TARGETS = {"image": "x0", "points": "eps"}
DEFAULT_STEPS = 2000
# How often a run reports and how many samples it draws: a toy's preview is a 512-point scatter, an image preview a
# 4×4 grid (a larger grid costs time a short budget does not train); the metric's sample counts are those of
# docs/results.md's first phase.
RUN_DEFAULTS = {
    "points": {"log_every": 5, "preview_every": 100, "preview_count": 512, "metric_samples": 512},
    "image": {"log_every": 10, "preview_every": 200, "preview_count": 16, "metric_samples": 200},
}
LR_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class Setting:
    """One setting.

    ``kind``: int, float, bool, str, or dict (a registry entry's parameters, validated by that entry: ``registry``,
    the entry named by the setting ``entry_setting``). ``low``/``high``: the allowed range of a number
    (``open_low``/``open_high``: the bound itself excluded). ``choices``: the allowed names (a function, so a later
    entry counts; or a registry, whose own refusal is used). ``auto``: the rule that fills a ``None`` in, and
    ``auto_help`` says it in words. ``applies``: the data kinds ("image", "points") or "labelled" where the setting
    means something. ``on_resume``: "may change" when a continued run may set it anew, else the continued run must
    have the checkpoint's value. ``flag``: the command-line flag ("": ``--<name>``; None: none); ``negative_flag``: a
    switch's "off" flag where ``--no-<name>`` would read badly."""

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: Callable[[], Sequence[str]] | Any = None
    auto: Callable[[Any], Any] | None = None
    auto_help: str = ""
    applies: tuple[str, ...] = ("image", "points")
    on_resume: str = "must match"
    flag: str | None = ""  # "": --<name with dashes>
    negative_flag: str | None = None
    # Shown in the app as a control of its own where the app does not place it by hand (the Train and Compare tabs'
    # "more settings"), and carried by a link as ``train_<name>``.
    app: bool = False
    link: bool = False
    registry: Any = None  # for kind dict: the registry whose entry (named by ``entry_setting``) owns the parameters
    entry_setting: str = ""

    @property
    def cli_flag(self) -> str | None:
        return None if self.flag is None else "--" + (self.flag or self.name.replace("_", "-"))

    def allowed(self) -> str:
        """What the setting allows, in words (for help texts and refusals)."""
        if self.kind is bool:
            allowed = "true or false"
        elif self.choices is not None:
            allowed = "one of " + ", ".join(self._choices())
        elif self.kind in (int, float):
            noun = "an integer" if self.kind is int else "a number"
            low, high = (self._shown(bound) for bound in (self.low, self.high))
            if self.low is not None and self.high is not None:
                allowed = f"{noun} in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"
            elif self.low is not None:
                allowed = f"{noun} {'>' if self.open_low else '≥'} {low}"
            else:
                allowed = noun
        else:
            allowed = "a text" if self.kind is str else "a mapping"
        return allowed + (" or None (automatic)" if self.default is None or self.auto else "")

    def _choices(self) -> Sequence[str]:
        return self.choices.names() if hasattr(self.choices, "names") else self.choices()

    def _shown(self, bound: float | None) -> str:
        if bound is None:
            return ""
        return str(int(bound)) if self.kind is int else f"{bound:g}"

    def validate(self, value: Any) -> Any:
        """The value, checked against this setting (None only where the setting is automatic or optional); a
        refusal names the setting and what it allows."""
        if value is None and (self.default is None or self.auto is not None):
            return None
        if self.kind is str and isinstance(value, os.PathLike):  # a folder given as a Path: kept as its text
            value = os.fspath(value)
        shown = describe_value(value)
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        elif self.kind is dict:
            ok = isinstance(value, dict)
        else:
            ok = isinstance(value, str)
        if ok and self.choices is not None:
            if hasattr(self.choices, "get"):
                self.choices.get(value)  # the registry's refusal: "unknown <kind> …; allowed: …"
            ok = value in self._choices()
        if ok and self.kind in (int, float):
            if self.low is not None:
                ok = value > self.low if self.open_low else value >= self.low
            if ok and self.high is not None:
                ok = value < self.high if self.open_high else value <= self.high
        if not ok:
            raise ValueError(f"{self.name} must be {self.allowed()}; got {shown}")
        return float(value) if self.kind is float else value


def _kind(cfg: Any) -> str:
    return data_kind(cfg.dataset)


def _auto_model(cfg: Any) -> str:
    return DEFAULT_MODELS["points" if cfg.dataset in TOY_DATASETS else cfg.dataset]


def _auto_target(cfg: Any) -> str:  # rectified flow trains on its velocity (ε cannot recover x0 at its t = 1)
    return "v" if SCHEDULES.get(cfg.schedule).process == "rf" else DEFAULT_TARGETS[_kind(cfg)]


def _auto_metric_every(cfg: Any) -> int:
    from .metrics import CLASSIFIERS  # the datasets whose samples can be scored

    return cfg.preview_every if cfg.dataset in TOY_DATASETS or cfg.dataset in CLASSIFIERS else 0


def _run_default(name: str) -> Callable[[Any], int]:
    return lambda cfg: RUN_DEFAULTS[_kind(cfg)][name]


def _run_default_help(name: str) -> str:
    return f"{RUN_DEFAULTS['points'][name]} for the toys, {RUN_DEFAULTS['image'][name]} for images"


IMAGES, LABELLED = ("image",), ("labelled",)
MAY_CHANGE = "may change"

TABLE: list[Setting] = [
    Setting("dataset", str, "mnist", "what to train on", choices=dataset_names, link=True),
    Setting("data_root", str, None, "folder that holds (or will receive) the dataset", on_resume=MAY_CHANGE),
    Setting("download", bool, True, "download the dataset when it is missing", applies=IMAGES, on_resume=MAY_CHANGE),
    Setting("schedule", str, "cosine", "noise schedule", choices=SCHEDULES, link=True),
    Setting("timesteps", int, 1000, "diffusion steps T", low=2, high=100_000),
    Setting("zero_terminal_snr", bool, False, "rescale the schedule to SNR = 0 at t = T (Lin et al. 2023)"),
    Setting("schedule_shift", float, 1.0, "SD3's resolution shift α: every log-SNR moved by −2·log α, so α > 1 "
            "trains more at high noise (1: none; Esser et al. 2024)", low=0.1, high=10.0, app=True, link=True),
    Setting("weighting", str, "min_snr", "loss weighting strategy", choices=STRATEGIES),
    Setting("weighting_params", dict, {}, "the weighting's parameters", flag=None, registry=STRATEGIES,
            entry_setting="weighting"),
    Setting("timestep_sampling", str, "uniform", "how each batch draws its timesteps", choices=TIMESTEP_SAMPLERS),
    Setting("timestep_params", dict, {}, "the timestep sampler's parameters", flag=None, registry=TIMESTEP_SAMPLERS,
            entry_setting="timestep_sampling"),
    Setting("adaptive_weighting", str, "none", "a factor on the weighting learned while training",
            choices=ADAPTIVE_WEIGHTINGS),
    Setting("adaptive_params", dict, {}, "the adaptive weighting's parameters", flag=None, registry=ADAPTIVE_WEIGHTINGS,
            entry_setting="adaptive_weighting"),
    Setting("target", str, None, "what the network predicts, and the space of the loss", choices=lambda: TARGETS, link=True,
            auto=_auto_target, auto_help=f"{DEFAULT_TARGETS['points']} for the 2D toys, {DEFAULT_TARGETS['image']} for images, "
            "v for rectified flow"),
    Setting("class_conditional", bool, None, "learn from the class labels (with label dropout), so samples can be "
            "asked for a class", auto=lambda cfg: cfg.dataset in LABELLED_DATASETS, applies=LABELLED,
            auto_help=f"on for the datasets with labels ({', '.join(LABELLED_DATASETS)})", negative_flag="--unconditional"),
    Setting("label_dropout", float, 0.1, "share of each batch trained without its label, for classifier-free "
            "guidance", low=0, high=1, applies=LABELLED),
    Setting("guidance", float, 2.0, "classifier-free guidance scale of the previews and the metric (1: none)", low=0,
            applies=LABELLED),
    Setting("sample_eta", float, 1.0, "DDIM η of the previews and the metric, and minsnr-sample's default "
            "(0: deterministic)", low=0, high=1),
    Setting("model", str, None, "model preset", choices=MODEL_PRESETS, auto=_auto_model,
            auto_help="by dataset: " + ", ".join(f"{d} {m}" for d, m in DEFAULT_MODELS.items())),
    Setting("batch_size", int, None, "examples per step", low=1, high=8192,
            auto=lambda cfg: MODEL_PRESETS.get(cfg.model).batch_size or DEFAULT_BATCH[_kind(cfg)],
            auto_help=f"the model preset's, else {DEFAULT_BATCH['image']} for images and {DEFAULT_BATCH['points']} "
            "for the toys"),
    Setting("lr", float, None, "learning rate", low=0, high=1, open_low=True, open_high=True,
            auto=lambda cfg: MODEL_PRESETS.get(cfg.model).lr or DEFAULT_LR,
            auto_help=f"the model preset's, else {DEFAULT_LR:g}"),
    Setting("lr_schedule", str, "cosine", "learning-rate schedule after the warm-up", choices=lambda: LR_SCHEDULES),
    Setting("warmup_steps", int, 100, "steps of linear learning-rate warm-up", low=0),
    Setting("steps", int, None, "total training steps", low=1, on_resume=MAY_CHANGE, link=True,
            auto=lambda cfg: DEFAULT_STEPS if cfg.minutes is None else None,
            auto_help=f"{DEFAULT_STEPS} unless minutes is given"),
    Setting("minutes", float, None, "wall-clock budget in minutes", low=0, open_low=True, on_resume=MAY_CHANGE),
    Setting("seed", int, 0, "seed of the weights, batches, timesteps and noise", low=0, high=2**63 - 1,
            link=True),
    Setting("device", str, "auto", "where to train: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps",
            on_resume=MAY_CHANGE),  # checked by config.resolve_device (which also knows what this machine has)
    Setting("ema_decay", float, 0.999, "decay of the weights' exponential moving average", low=0, high=1,
            open_high=True),
    Setting("log_every", int, None, "steps between loss reports", low=1, on_resume=MAY_CHANGE,
            auto=_run_default("log_every"), auto_help=_run_default_help("log_every")),
    Setting("preview_every", int, None, "steps between sample previews (0: none)", low=0, on_resume=MAY_CHANGE,
            auto=_run_default("preview_every"), auto_help=_run_default_help("preview_every")),
    Setting("preview_count", int, None, "samples in a preview", low=1, on_resume=MAY_CHANGE,
            auto=_run_default("preview_count"), auto_help=_run_default_help("preview_count")),
    Setting("preview_sample_steps", int, 20, "DDIM steps of a preview (at most T)", low=1, on_resume=MAY_CHANGE),
    Setting("metric_every", int, 0, "steps between sample-quality measurements (0: none)", low=0,
            on_resume=MAY_CHANGE, auto=_auto_metric_every,
            auto_help="with each preview, where the dataset has a metric"),
    Setting("metric_samples", int, None, "samples scored by each quality measurement", low=2, on_resume=MAY_CHANGE,
            auto=_run_default("metric_samples"), auto_help=_run_default_help("metric_samples")),
    Setting("checkpoint_every", int, 500, "steps between checkpoints (0: at the end only)", low=0,
            on_resume=MAY_CHANGE),
    Setting("out_dir", str, None, "run folder: metrics.jsonl, samples.png, checkpoint.pt", flag="out",
            on_resume=MAY_CHANGE),
    Setting("image_size", int, 32, "side of the images of an image folder, in pixels", low=4, applies=IMAGES),
    Setting("toy_size", int, 20_000, "points drawn for a 2D toy dataset", low=8, applies=("points",)),
    Setting("buckets", int, 10, "noise-level buckets of the per-level loss report", low=1, on_resume=MAY_CHANGE),
    Setting("compile", bool, False, "torch.compile the model (a slower start; on CUDA for eager steps only)"),
    Setting("cuda_graph", bool, True, "on CUDA, replay each training step as one CUDA graph", on_resume=MAY_CHANGE),
]
SETTINGS: dict[str, Setting] = {s.name: s for s in TABLE}
# Where the app's Train tab starts, against the table's defaults: a 2D toy that trains in seconds on a laptop's CPU,
# so a class sees a whole run before it tries MNIST.
APP_START = {"dataset": "moons", "steps": 1000}


def register(setting: Setting) -> None:
    """Add a setting (before :mod:`minsnr_core.config` is imported: ``TrainConfig`` is built from the table then)."""
    if setting.name in SETTINGS:
        raise ValueError(f"setting {setting.name!r} is already registered")
    TABLE.append(setting)
    SETTINGS[setting.name] = setting


def may_change_on_resume() -> set[str]:
    """The settings a continued run may set anew (its budget, where it runs and reads data, how often it reports)."""
    return {s.name for s in TABLE if s.on_resume == MAY_CHANGE}
