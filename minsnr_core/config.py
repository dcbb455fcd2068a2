"""What defines a run: :class:`TrainConfig`, built from the settings table (:mod:`minsnr_core.settings`), its
validation and automatic choices, and the rules for continuing a run. The training loop
(:mod:`minsnr_core.training`), the CLI and the app all build runs from it, so the same settings give the same run
everywhere."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .checkpoint import CheckpointError
from .data import LABELLED_DATASETS, data_kind
from .models import MODEL_PRESETS
from .schedules import SCHEDULES, reaches_zero_snr
from .settings import DEFAULT_STEPS, MAY_CHANGE, SETTINGS, TABLE
from .weighting import loss_weight


class _TrainConfigMethods:
    """The methods of :class:`TrainConfig` (its fields are the settings table's)."""

    def resolved(self) -> TrainConfig:
        """A validated copy with the automatic choices filled in. Each setting is checked once, by its row of the
        table, in the table's order (an automatic value may read the ones above it); then the rules that join
        settings. A config that is already resolved is returned as it is."""
        if getattr(self, "_resolved", False):
            return self
        cfg = dataclasses.replace(self, **{s.name: dict(getattr(self, s.name) or {}) for s in TABLE if s.kind is dict})
        for setting in TABLE:
            value = getattr(cfg, setting.name)
            if setting.kind is dict:
                entry = setting.registry.get(getattr(cfg, setting.entry_setting))
                value = entry.resolve_params(setting.validate(value))
            else:
                if value is None and setting.auto is not None:
                    value = setting.auto(cfg)
                value = setting.validate(value)
            setattr(cfg, setting.name, value)
        _check_joined(cfg)
        cfg._resolved = True  # not a field: dataclasses.replace gives an unresolved copy
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
        before_conditioning = {} if "class_conditional" in values else {"class_conditional": False, "sample_eta": 0.0}
        return cls(**{**before_conditioning, **{k: v for k, v in values.items() if k in SETTINGS}})


def _field(setting: Any) -> tuple[str, Any, dataclasses.Field]:
    if setting.kind is dict:
        return setting.name, dict, dataclasses.field(default_factory=dict)
    annotation = setting.kind if setting.default is not None and setting.auto is None else setting.kind | None
    return setting.name, annotation, dataclasses.field(default=setting.default)


TrainConfig = dataclasses.make_dataclass("TrainConfig", [_field(s) for s in TABLE], bases=(_TrainConfigMethods,),
                                         namespace={"__module__": __name__})
TrainConfig.__doc__ = ("Everything that defines a run: one field per row of the settings table "
                       "(minsnr_core.settings), at its default. ``steps`` and/or ``minutes`` bound it.")


def _check_joined(cfg: Any) -> None:
    """The rules that join settings (each setting alone is checked by its row of the table)."""
    if MODEL_PRESETS.get(cfg.model).kind != cfg.kind:
        raise ValueError(f"model {cfg.model!r} does not fit dataset {cfg.dataset!r}")
    if cfg.class_conditional and cfg.dataset not in LABELLED_DATASETS:
        raise ValueError(f"class_conditional needs a dataset with labels ({', '.join(LABELLED_DATASETS)}); "
                         f"{cfg.dataset!r} has none")
    check_sampling_guidance(cfg, cfg.guidance)
    if cfg.zero_terminal_snr and cfg.target == "eps":
        raise ValueError("zero_terminal_snr needs target 'v' or 'x0': an ε-prediction cannot recover x0 at SNR = 0 "
                         "(Lin et al. 2023, Sec. 3.2)")
    if cfg.preview_sample_steps > cfg.timesteps:
        raise ValueError(f"preview_sample_steps must be ≤ timesteps ({cfg.timesteps})")
    resolve_device(cfg.device)
    if reaches_zero_snr(cfg.schedule, cfg.zero_terminal_snr):
        if cfg.target == "eps":
            raise ValueError(f"target 'eps' cannot be trained or sampled on schedule {cfg.schedule!r}: its last step "
                             "has SNR = 0, where x0 = (x_t − σ·ε)/α divides by α = 0; use target 'v' or 'x0'")
        # The weight at that last step (its log-SNR density is 0 there): refused by name where it is undefined.
        zero = torch.zeros(1, dtype=torch.float64)
        loss_weight(cfg.weighting, zero, cfg.target, log_snr_density=zero, process=SCHEDULES.get(cfg.schedule).process,
                    **cfg.weighting_params)


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


def resume_differences(saved: Any, config: Any) -> list[tuple[str, Any, Any]]:
    """What a continued run changes that it must keep (both configs resolved), from the settings table's
    ``on_resume``: (name, the run's value, this value); a registry entry's parameters by their own names."""
    differ = []
    for setting in TABLE:
        if setting.on_resume == MAY_CHANGE:
            continue
        before, after = getattr(saved, setting.name), getattr(config, setting.name)
        if setting.kind is dict:
            if getattr(saved, setting.entry_setting) == getattr(config, setting.entry_setting):  # else named above
                differ += [(key, before.get(key), after.get(key)) for key in sorted({*before, *after})
                           if before.get(key) != after.get(key)]
        elif before != after:
            differ.append((setting.name, before, after))
    return differ


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
