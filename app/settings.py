"""The Train and Compare tabs' settings, by name: one table from a setting's name to its control, its default and
the :class:`TrainConfig` it builds. The controls, :func:`make_config`, the presets, the links, the tests and the
benchmarks all go through these names, so a new weighting parameter (a new registry entry) needs no change here.

A setting's name is a ``TrainConfig`` field, a weighting parameter (``gamma``, ``k``…), or one of the two app
switches ``quality`` (measure sample quality with each preview) and ``use_labels`` (class-conditional).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from minsnr_core.adaptive import ADAPTIVE_WEIGHTINGS
from minsnr_core.config import TrainConfig
from minsnr_core.data import TOY_DATASETS
from minsnr_core.models import MODEL_PRESETS
from minsnr_core.schedules import SCHEDULES
from minsnr_core.timesteps import TIMESTEP_SAMPLERS, sampler_parameters
from minsnr_core.weighting import STRATEGIES, TARGET_NAMES, TARGETS, strategy_parameters

from .explorer_js import GAMMA_LOG_JS, gamma_follow_js, gamma_log_html
from .jobs import ClassLimits

BEFORE_PARAMS = ("dataset", "data_root", "schedule", "timesteps", "target")
AFTER_PARAMS = ("model", "batch_size", "lr", "steps", "minutes", "seed", "preview_every", "quality", "use_labels",
                "guidance", "sample_eta")
DEFAULTS: dict[str, Any] = {
    "dataset": "moons", "data_root": None, "schedule": "cosine", "timesteps": 1000, "target": "auto", "model": "auto",
    "batch_size": 0, "lr": 0, "steps": 1000, "minutes": 0, "seed": 0, "preview_every": 0, "quality": True,
    "use_labels": True, "guidance": TrainConfig.guidance, "sample_eta": TrainConfig.sample_eta,
    "timestep_sampling": TrainConfig.timestep_sampling, "adaptive_weighting": TrainConfig.adaptive_weighting,
}


def setting_names() -> list[str]:
    """Every setting, in the order of the Train and Compare endpoints' values (after the owner token and the
    weighting): the weighting, timestep-sampler and adaptive-weighting parameters are the registries', read when
    called."""
    return [*BEFORE_PARAMS, *strategy_parameters(), *AFTER_PARAMS, "timestep_sampling", *sampler_parameters(),
            "adaptive_weighting", *ADAPTIVE_WEIGHTINGS.parameters()]


def default_settings(**overrides: Any) -> dict[str, Any]:
    """Every setting at its control's default, with ``overrides`` by name (an unknown name is an error)."""
    registered = {**strategy_parameters(), **sampler_parameters(), **ADAPTIVE_WEIGHTINGS.parameters()}
    values = {**DEFAULTS, **{name: p.default for name, p in registered.items()}}
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known: {', '.join(setting_names())}")
    return {name: {**values, **overrides}[name] for name in setting_names()}


def endpoint_values(owner: str, weighting: str | list[str], **settings: Any) -> list[Any]:
    """The values an API client sends to ``/train`` (one weighting) or ``/compare`` (a list): the owner token, the
    weighting(s), then every setting by :func:`setting_names` order, defaults where not given."""
    return [owner, weighting, *default_settings(**settings).values()]


def dataset_choices(image_roots: Mapping[str, str]) -> list[tuple[str, str]]:
    toys = [(f"2D toy: {e.display_name}", e.name) for e in TOY_DATASETS]
    folders = [(f"Image folder: {name}", f"folder:{name}") for name in image_roots]
    return [*toys, ("MNIST", "mnist"), ("CIFAR-10", "cifar10"), *folders]


@dataclass
class ConfigControls:
    """The controls of one tab by setting name; ``components()`` in :func:`setting_names` order."""

    by_name: dict[str, gr.components.Component]
    # What shows or hides each weighting parameter: its slider, or the column holding γ's slider and its log scale.
    holders: dict[str, gr.components.Component | gr.blocks.BlockContext] = field(default_factory=dict)

    def __getitem__(self, name: str) -> gr.components.Component:
        return self.by_name[name]

    def components(self) -> list[gr.components.Component]:
        return [self.by_name[name] for name in setting_names()]

    def param_sliders(self) -> list[gr.components.Component]:
        return [self.by_name[name] for name in strategy_parameters()]

    def param_holders(self) -> list[gr.components.Component | gr.blocks.BlockContext]:
        """The components :meth:`show_params_of` shows or hides, one per weighting parameter."""
        return [self.holders.get(name, self.by_name[name]) for name in strategy_parameters()]

    def show_params_of(self, weightings: Iterable[str]) -> list[Any]:
        """Visibility updates for :meth:`param_holders`: only the parameters of these weightings."""
        shown = params_of(weightings)
        return [gr.update(visible=name in shown) for name in strategy_parameters()]

    def updates(self, settings: Mapping[str, Any]) -> dict[gr.components.Component, Any]:
        """A Gradio output dict that sets these controls, by setting name."""
        return {self.by_name[name]: value for name, value in settings.items()}


def params_of(weightings: Iterable[str]) -> set[str]:
    """The parameter names of these weightings: the sliders a tab shows (unknown names have none)."""
    return {p.name for name in weightings if name in STRATEGIES for p in STRATEGIES.get(name).params}


def _choice_with_params(c: dict[str, gr.components.Component], prefix: str, value: Mapping[str, Any], name: str,
                        registry: Any, label: str) -> None:
    """A dropdown of a registry's entries (the setting ``name``) and a slider per parameter, only the chosen
    entry's shown."""
    c[name] = gr.Dropdown([(e.display_name, e.name) for e in registry], value=value[name], label=label,
                          elem_id=f"{prefix}-{name.replace('_', '-')}")
    shown = {p.name for p in registry.get(value[name]).params}
    for p in registry.parameters().values():
        c[p.name] = gr.Slider(p.lowest_setting, p.maximum, value=value[p.name], step=p.step, label=p.description,
                              elem_id=f"{prefix}-param-{p.name}", visible=p.name in shown)
    sliders = [c[p] for p in registry.parameters()]

    def show(choice: str) -> list[Any]:
        own = {p.name for p in registry.get(choice).params} if choice in registry else set()
        return [gr.update(visible=p in own) for p in registry.parameters()]

    c[name].change(show, c[name], sliders, api_visibility="undocumented", show_progress="hidden")


def config_controls(prefix: str, data_roots: list[str], image_roots: Mapping[str, str], limits: ClassLimits,
                    shown_params: Iterable[str] = (), **defaults: Any) -> ConfigControls:
    """Build the controls (inside the current Blocks), each at its default or at ``defaults`` by name; of the
    weighting parameters only ``shown_params`` are visible."""
    shown = set(shown_params)
    value = default_settings(**{"data_root": data_roots[0], **defaults})
    c: dict[str, gr.components.Component] = {}
    with gr.Row():
        c["dataset"] = gr.Dropdown(dataset_choices(image_roots), value=value["dataset"], label="Dataset",
                                   elem_id=f"{prefix}-dataset")
        c["data_root"] = gr.Dropdown(data_roots, value=value["data_root"], label="Data root (set with --data-root)")
        c["schedule"] = gr.Dropdown([(e.display_name, e.name) for e in SCHEDULES], value=value["schedule"],
                                    label="Noise schedule")
        c["timesteps"] = gr.Slider(10, limits.max_timesteps, value=value["timesteps"], step=10, label="Timesteps T")
    with gr.Row():
        c["steps"] = gr.Number(value["steps"], label=f"Steps (at most {limits.max_steps:,})", precision=0, minimum=1,
                               maximum=limits.max_steps, elem_id=f"{prefix}-steps")
        c["minutes"] = gr.Number(value["minutes"], label=f"Time budget, minutes (0: none; at most {limits.max_minutes:g})",
                                 minimum=0, maximum=limits.max_minutes)
        c["seed"] = gr.Number(value["seed"], label="Seed", precision=0, minimum=0, maximum=2**31 - 1)
        c["preview_every"] = gr.Number(value["preview_every"], label="Preview every N steps (0: 100 for toys, 200 for "
                                       "images)", precision=0, minimum=0, maximum=limits.max_steps,
                                       elem_id=f"{prefix}-preview")
        c["quality"] = gr.Checkbox(value["quality"], label="Measure sample quality", elem_id=f"{prefix}-measure")
    with gr.Row():
        c["target"] = gr.Radio([("automatic (ε for toys, x₀ for images, v for rectified flow)", "auto"),
                                *[(TARGET_NAMES[t], t) for t in TARGETS]], value=value["target"],
                               label="Prediction target")
        holders: dict[str, gr.blocks.BlockContext] = {}
        for p in strategy_parameters().values():
            if p.name != "gamma":
                c[p.name] = gr.Slider(p.lowest_setting, p.maximum, value=value[p.name], step=p.step,
                                      label=p.description, elem_id=f"{prefix}-param-{p.name}", visible=p.name in shown)
                continue
            with gr.Column(visible=p.name in shown, min_width=220) as holders[p.name]:  # γ: log scale above its box
                box_id = f"{prefix}-param-gamma"
                gr.HTML(gamma_log_html(value[p.name], box_id), js_on_load=GAMMA_LOG_JS)
                c[p.name] = gr.Slider(p.lowest_setting, p.maximum, value=value[p.name], step=p.step,
                                      label=p.description, elem_id=box_id)
                c[p.name].change(None, c[p.name], None, js=gamma_follow_js(box_id))
    with gr.Accordion("Timestep sampling, adaptive weighting, model, batch size, learning rate; class labels, "
                      "guidance and DDIM η of the previews", open=False):
        with gr.Row():
            _choice_with_params(c, prefix, value, "timestep_sampling", TIMESTEP_SAMPLERS, "Timestep sampling p(t)")
        with gr.Row():
            _choice_with_params(c, prefix, value, "adaptive_weighting", ADAPTIVE_WEIGHTINGS,
                                "Adapt the weighting while training")
        with gr.Row():
            c["model"] = gr.Dropdown([("automatic (by dataset)", "auto"), *[(e.display_name, e.name) for e in MODEL_PRESETS]],
                                     value=value["model"], label="Model preset")
            c["batch_size"] = gr.Number(value["batch_size"], label="Batch size (0: automatic)", precision=0, minimum=0,
                                        maximum=limits.max_batch)
            c["lr"] = gr.Number(value["lr"], label="Learning rate (0: automatic)", minimum=0, maximum=1)
        with gr.Row():
            c["use_labels"] = gr.Checkbox(value["use_labels"], label="Class-conditional: learn from the labels (images "
                                          "only), so samples can be asked for a class", elem_id=f"{prefix}-labels")
            c["guidance"] = gr.Slider(0, 6, value=value["guidance"], step=0.5, elem_id=f"{prefix}-guidance",
                                      label="Classifier-free guidance of previews and quality (1: none)")
            c["sample_eta"] = gr.Slider(0, 1, value=value["sample_eta"], step=0.1, elem_id=f"{prefix}-eta",
                                        label="DDIM η of previews and quality (0: deterministic)")
    return ConfigControls(c, holders)


def make_config(image_roots: Mapping[str, str], weighting: str, settings: Mapping[str, Any],
                data_roots: list[str] | None = None) -> TrainConfig:
    """The TrainConfig of these settings (by name; every name of :func:`setting_names`). ``data_roots``: the folders
    the server offers; no other path is accepted from a client. Intervals and sample counts left automatic are the
    core's run rules (:meth:`TrainConfig.resolved`), the same as the CLI's."""
    missing = [name for name in setting_names() if name not in settings]
    if missing:
        raise ValueError(f"missing setting(s) {missing}")
    s = dict(settings)
    dataset, data_root = s["dataset"], s["data_root"]
    if data_roots is not None and data_root not in data_roots:
        raise ValueError(f"data root must be one of the server's folders ({len(data_roots)} offered)")
    if isinstance(dataset, str) and dataset.startswith("folder:"):
        name = dataset.split(":", 1)[1]
        if name not in image_roots:
            raise ValueError(f"unknown image folder {name!r}; configured: {', '.join(image_roots) or 'none'}")
        dataset, data_root = "folder", image_roots[name]
    strategy = STRATEGIES.get(weighting)
    return TrainConfig(
        dataset=dataset, data_root=data_root, schedule=s["schedule"], timesteps=int(s["timesteps"]),
        target=None if s["target"] == "auto" else s["target"],
        weighting=weighting, weighting_params={p.name: s[p.name] for p in strategy.params},
        timestep_sampling=s["timestep_sampling"],
        timestep_params={p.name: s[p.name] for p in TIMESTEP_SAMPLERS.get(s["timestep_sampling"]).params},
        adaptive_weighting=s["adaptive_weighting"],
        adaptive_params={p.name: s[p.name] for p in ADAPTIVE_WEIGHTINGS.get(s["adaptive_weighting"]).params},
        model=None if s["model"] == "auto" else s["model"], batch_size=int(s["batch_size"]) or None,
        lr=float(s["lr"]) or None,
        steps=int(s["steps"]) if s["steps"] else None, minutes=float(s["minutes"]) if s["minutes"] else None,
        seed=int(s["seed"] or 0), preview_every=int(s["preview_every"] or 0) or None,
        metric_every=None if s["quality"] else 0,
        class_conditional=None if s["use_labels"] else False, guidance=float(s["guidance"]),
        sample_eta=float(s["sample_eta"]),
    )
