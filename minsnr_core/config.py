"""What defines a run: :class:`TrainConfig`, its validation and automatic choices, and the rules for continuing a
run. The training loop (:mod:`minsnr_core.training`), the CLI and the app all build runs from it, so the same settings
give the same run everywhere."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .adaptive import ADAPTIVE_WEIGHTINGS, build_adaptive
from .checkpoint import CheckpointError
from .data import LABELLED_DATASETS, TOY_DATASETS, data_kind, dataset_names
from .diffusion import check_target_fits
from .models import MODEL_PRESETS
from .sampling import check_guidance
from .schedules import SCHEDULES, get_schedule
from .timesteps import TIMESTEP_SAMPLERS, timestep_probabilities
from .weighting import STRATEGIES, check_target, schedule_weights

DEFAULT_MODELS = {"mnist": "mnist-small", "cifar10": "cifar", "folder": "cifar"}
# Where the model preset names none (models.ModelPreset.batch_size, .lr).
DEFAULT_BATCH = {"image": 64, "points": 512}
DEFAULT_LR = 2e-3
# Measured on a 2-core CPU (benchmarks/mnist_quality.py, README): with Min-SNR-5 and a 2-minute MNIST budget the x0
# target gave FD 50 against 174 for ε; on the toys, x0-prediction collapses the clusters onto their mean early on.
DEFAULT_TARGETS = {"image": "x0", "points": "eps"}
DEFAULT_STEPS = 2000
# How often a run reports and how many samples it draws, where the config leaves them automatic (None): the CLI, the
# app and the notebooks get the same run from the same settings. A toy's preview is a 512-point scatter; an image
# preview a 4×4 grid (0.9 s on a 2-core CPU for MNIST, 36 images took 1.5 s: time a short budget does not train);
# the metric's sample counts are those of docs/results.md's first phase (200 images).
RUN_DEFAULTS = {
    "points": {"log_every": 5, "preview_every": 100, "preview_count": 512, "metric_samples": 512},
    "image": {"log_every": 10, "preview_every": 200, "preview_count": 16, "metric_samples": 200},
}
MAX_TIMESTEPS, MAX_BATCH = 100_000, 8192  # beyond these a run cannot fit in memory


@dataclass
class TrainConfig:
    """Everything that defines a run. ``steps`` and/or ``minutes`` bound it (default: 2000 steps)."""

    dataset: str = "mnist"
    data_root: str | None = None
    download: bool = True
    schedule: str = "cosine"
    timesteps: int = 1000
    zero_terminal_snr: bool = False
    weighting: str = "min_snr"
    weighting_params: dict[str, float] = field(default_factory=dict)
    # How each batch's timesteps are drawn (minsnr_core.timesteps): uniform, logit_normal, log_normal, importance.
    timestep_sampling: str = "uniform"
    timestep_params: dict[str, float] = field(default_factory=dict)
    # A factor on the weighting learned during training (minsnr_core.adaptive): none, edm2, loss_ema.
    adaptive_weighting: str = "none"
    adaptive_params: dict[str, float] = field(default_factory=dict)
    target: str | None = None  # None: ε for the 2D toys, x0 for images (see DEFAULT_TARGETS)
    # Class-conditional training with label dropout, for classifier-free guidance. None: on for the datasets with
    # labels (MNIST, CIFAR-10, an image folder's class sub-folders), off for the toys.
    class_conditional: bool | None = None
    label_dropout: float = 0.1
    # How this run's samples are drawn by the previews, the metric and (as its defaults) minsnr-sample. Measured on
    # MNIST after 5 CPU minutes with the `mnist` preset (docs/performance.md): with guidance 2, stochastic DDIM
    # (η = 1) recognised 84.8–94.2 % of the digits in four runs, deterministic DDIM 74.8–87.3 %; unconditional MNIST
    # models and the toys also sample better with η = 1. The fresh noise lets the sampler correct a young model's mistakes.
    guidance: float = 2.0
    sample_eta: float = 1.0
    model: str | None = None
    batch_size: int | None = None
    lr: float | None = None  # None: the model preset's (models.ModelPreset.lr), else DEFAULT_LR
    lr_schedule: str = "cosine"
    warmup_steps: int = 100
    steps: int | None = None
    minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    ema_decay: float = 0.999
    # None: by the kind of data (RUN_DEFAULTS). metric_every None: with each preview, where the dataset has a metric.
    log_every: int | None = None
    preview_every: int | None = None
    preview_count: int | None = None
    preview_sample_steps: int = 20
    metric_every: int | None = 0
    metric_samples: int | None = None
    checkpoint_every: int = 500
    out_dir: str | None = None
    image_size: int = 32
    toy_size: int = 20_000
    buckets: int = 10
    compile: bool = False
    # On CUDA, replay each training step as one CUDA graph where the run allows (steps.uses_cuda_graph).
    cuda_graph: bool = True

    def resolved(self) -> TrainConfig:
        """A validated copy with the automatic choices (model, batch size, step budget) filled in."""
        cfg = dataclasses.replace(self, weighting_params=dict(self.weighting_params),
                                  timestep_params=dict(self.timestep_params), adaptive_params=dict(self.adaptive_params))
        if cfg.dataset not in dataset_names():
            raise ValueError(f"dataset must be one of {', '.join(dataset_names())}; got {cfg.dataset!r}")
        kind, is_toy = cfg.kind, cfg.dataset in TOY_DATASETS
        cfg.model = cfg.model or ("toy-mlp" if is_toy else DEFAULT_MODELS[cfg.dataset])
        preset = MODEL_PRESETS.get(cfg.model)
        if preset.kind != kind:
            raise ValueError(f"model {cfg.model!r} does not fit dataset {cfg.dataset!r}")
        if cfg.batch_size is None:
            cfg.batch_size = preset.batch_size or DEFAULT_BATCH[kind]
        if cfg.lr is None:
            cfg.lr = preset.lr or DEFAULT_LR
        for name, value in RUN_DEFAULTS[kind].items():
            if getattr(cfg, name) is None:
                setattr(cfg, name, value)
        if cfg.metric_every is None:
            from .metrics import CLASSIFIERS  # the datasets whose samples can be scored

            cfg.metric_every = cfg.preview_every if is_toy or cfg.dataset in CLASSIFIERS else 0
        if cfg.target is None:  # rectified flow trains on its velocity (ε cannot recover x0 at its t = 1)
            cfg.target = "v" if SCHEDULES.get(cfg.schedule).process == "rf" else DEFAULT_TARGETS[kind]
        if cfg.class_conditional is None:
            cfg.class_conditional = cfg.dataset in LABELLED_DATASETS
        if not isinstance(cfg.class_conditional, bool):
            raise ValueError(f"class_conditional must be true, false or None (automatic), got {cfg.class_conditional!r}")
        for name in ("compile", "cuda_graph", "download", "zero_terminal_snr"):
            if not isinstance(getattr(cfg, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(cfg, name)!r}")
        if cfg.class_conditional and cfg.dataset not in LABELLED_DATASETS:
            raise ValueError(f"class_conditional needs a dataset with labels ({', '.join(LABELLED_DATASETS)}); "
                             f"{cfg.dataset!r} has none")
        if isinstance(cfg.label_dropout, bool) or not (isinstance(cfg.label_dropout, int | float)
                                                         and 0 <= cfg.label_dropout <= 1):
            raise ValueError(f"label_dropout must be in [0, 1], got {cfg.label_dropout!r}")
        check_guidance(cfg.guidance)
        check_sampling_guidance(cfg, cfg.guidance)
        if isinstance(cfg.sample_eta, bool) or not (isinstance(cfg.sample_eta, int | float) and 0 <= cfg.sample_eta <= 1):
            raise ValueError(f"sample_eta must be in [0, 1], got {cfg.sample_eta!r}")
        if cfg.steps is None and cfg.minutes is None:
            cfg.steps = DEFAULT_STEPS
        check_target(cfg.target)
        cfg.weighting_params = STRATEGIES.get(cfg.weighting).resolve_params(cfg.weighting_params)
        if cfg.zero_terminal_snr and cfg.target == "eps":
            raise ValueError("zero_terminal_snr needs target 'v' or 'x0': an ε-prediction cannot recover x0 at SNR = 0 "
                             "(Lin et al. 2023, Sec. 3.2)")
        for name, low in (("timesteps", 2), ("batch_size", 1), ("log_every", 1), ("preview_count", 1),
                          ("preview_sample_steps", 1), ("buckets", 1), ("image_size", 4), ("toy_size", 8),
                          ("metric_samples", 2), ("warmup_steps", 0), ("preview_every", 0), ("metric_every", 0),
                          ("checkpoint_every", 0), ("seed", 0)):
            value = getattr(cfg, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
        for name, high in (("timesteps", MAX_TIMESTEPS), ("batch_size", MAX_BATCH), ("seed", 2**63 - 1)):
            if getattr(cfg, name) > high:  # larger values exhaust memory (T, batch) or the generator (seed)
                raise ValueError(f"{name} must be at most {high}, got {getattr(cfg, name)!r}")
        if cfg.steps is not None and (isinstance(cfg.steps, bool) or not isinstance(cfg.steps, int) or cfg.steps < 1):
            raise ValueError(f"steps must be an integer ≥ 1, got {cfg.steps!r}")
        if cfg.minutes is not None and not (isinstance(cfg.minutes, int | float) and 0 < cfg.minutes < math.inf):
            raise ValueError(f"minutes must be a positive number, got {cfg.minutes!r}")
        if isinstance(cfg.lr, bool) or not (isinstance(cfg.lr, int | float) and 0 < cfg.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {cfg.lr!r}")
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {cfg.lr_schedule!r}")
        if not (isinstance(cfg.ema_decay, int | float) and 0 <= cfg.ema_decay < 1):
            raise ValueError(f"ema_decay must be in [0, 1), got {cfg.ema_decay!r}")
        if cfg.preview_sample_steps > cfg.timesteps:
            raise ValueError(f"preview_sample_steps must be ≤ timesteps ({cfg.timesteps})")
        resolve_device(cfg.device)
        schedule = get_schedule(cfg.schedule, cfg.timesteps, zero_terminal_snr=cfg.zero_terminal_snr)
        check_target_fits(cfg.target, schedule)
        schedule_weights(cfg.weighting, schedule, cfg.target, **cfg.weighting_params)  # names an undefined weight
        if not isinstance(cfg.timestep_sampling, str):
            raise ValueError(f"timestep_sampling must be a sampler's name, got {cfg.timestep_sampling!r}")
        cfg.timestep_params = TIMESTEP_SAMPLERS.get(cfg.timestep_sampling).resolve_params(cfg.timestep_params)
        timestep_probabilities(cfg.timestep_sampling, schedule, **cfg.timestep_params)  # its own checks
        if not isinstance(cfg.adaptive_weighting, str):
            raise ValueError(f"adaptive_weighting must be a name, got {cfg.adaptive_weighting!r}")
        cfg.adaptive_params = ADAPTIVE_WEIGHTINGS.get(cfg.adaptive_weighting).resolve_params(cfg.adaptive_params)
        build_adaptive(cfg.adaptive_weighting, schedule, cfg.adaptive_params)  # its own checks
        return cfg

    @property
    def kind(self) -> str:
        """The kind of data this run learns: "points" (a 2-D toy) or "image"."""
        return data_kind(self.dataset)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config saved by :meth:`to_dict`. Configs saved before class conditioning existed lack its key: those
        runs were unconditional and sampled with deterministic DDIM."""
        known = {f.name for f in dataclasses.fields(cls)}
        before_conditioning = {} if "class_conditional" in values else {"class_conditional": False, "sample_eta": 0.0}
        return cls(**{**before_conditioning, **{k: v for k, v in values.items() if k in known}})


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps; got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available here; use device 'auto' or 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but Apple's MPS is not available here; use device 'auto' or 'cpu'")
    return torch.device(name)


LR_SCHEDULES = ("cosine", "constant")


def continued_config(config: TrainConfig, done_steps: int, steps: int | None = None,
                     minutes: float | None = None, session_start: int = 0) -> TrainConfig:
    """The config that continues a run (``minsnr-train --resume`` and the app's "Keep training" both use it).
    A budget given here is the new budget, ``steps`` as a total count; with none, the run continues for the budget
    of its last session again, in the same kinds: its minutes again, and ``done_steps`` + the steps that session
    was given (``config.steps`` − ``session_start``, the step it started from), so each continuation adds the
    same amount."""
    if steps is not None or minutes is not None:
        return dataclasses.replace(config, steps=steps, minutes=minutes)
    if config.steps is None and config.minutes is None:
        return dataclasses.replace(config, steps=done_steps + DEFAULT_STEPS)
    again = None if config.steps is None else done_steps + max(1, config.steps - session_start)
    return dataclasses.replace(config, steps=again, minutes=config.minutes)


def saved_config(state: dict[str, Any]) -> TrainConfig:
    """The config stored in a checkpoint; a missing or malformed one is a :class:`CheckpointError`."""
    try:
        return TrainConfig.from_dict(state["config"])
    except (KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"the checkpoint's config is missing or malformed ({type(error).__name__}: {error})") from None


def check_sampling_guidance(config: TrainConfig, guidance: float, unconditional: bool = False) -> None:
    """Refuse guidance or unconditional sampling from a run that never learns its unconditional mode (that mode is
    learned from the batches whose labels are dropped)."""
    if config.class_conditional and config.label_dropout == 0 and (guidance != 1 or unconditional):
        raise ValueError("a run with label_dropout 0 has no unconditional mode: sample it with guidance 1 and "
                         "with labels")
