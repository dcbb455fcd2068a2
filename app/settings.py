"""The Train and Compare tabs' settings, by name: one table from a setting's name to its control, its default and
the :class:`TrainConfig` it builds. The controls, :func:`make_config`, the presets, the links, the tests and the
benchmarks all go through these names, so a new weighting parameter (a new registry entry) needs no change here.

A setting's name is a ``TrainConfig`` field, a weighting parameter (``gamma``, ``k``…), or one of the two app
switches ``quality`` (measure sample quality with each preview) and ``use_labels`` (class-conditional).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from minsnr_core.adaptive import ADAPTIVE_WEIGHTINGS
from minsnr_core.config import TrainConfig
from minsnr_core.data import TOY_DATASETS
from minsnr_core.models import MODEL_PRESETS
from minsnr_core.schedules import SCHEDULES
from minsnr_core.settings import APP_START, SETTINGS, TABLE, Setting
from minsnr_core.timesteps import TIMESTEP_SAMPLERS, sampler_parameters
from minsnr_core.weighting import STRATEGIES, TARGET_NAMES, TARGETS, strategy_parameters

from . import urlstate as us
from .explorer_js import GAMMA_LOG_JS, gamma_follow_js, gamma_log_html
from .jobs import ClassLimits

BEFORE_PARAMS = ("dataset", "data_root", "schedule", "timesteps", "target")
AFTER_PARAMS = ("model", "batch_size", "lr", "steps", "minutes", "seed", "preview_every", "quality", "use_labels",
                "guidance", "sample_eta")
# The two app switches that stand for a setting's automatic value or its "off": measure sample quality with each
# preview (metric_every automatic, else 0), learn from the labels (class_conditional automatic, else False).
SWITCHES = {"quality": ("metric_every", 0), "use_labels": ("class_conditional", False)}
PLACED = {*BEFORE_PARAMS, *AFTER_PARAMS, "timestep_sampling", "adaptive_weighting"}
AUTOMATIC = "auto"  # a choice control's automatic value; a number control's is 0
# The highest value a control offers where the table has none or a browser's control should stop lower: a seed a
# link and a number box carry exactly; the guidance slider's range (the server's caps are ClassLimits).
APP_HIGH = {"seed": 2**31 - 1, "guidance": 6.0}
# What to watch when a control moves, by setting or parameter name: the last part of its one-line help
# (control_help), in the Train, Compare and explorer tabs alike. What a setting is and its range come from the
# table (minsnr_core/settings.py) or its registry parameter, the range as the control offers it.
WATCH = {
    "dataset": "a 2D toy trains in seconds on a CPU; MNIST takes minutes",
    "schedule": "which SNRs the timesteps visit: each curve moves along t",
    "zero_terminal_snr": "the last step becomes pure noise (SNR = 0)",
    "target": "every curve divided by SNR (ε) or by SNR + 1 (v)",
    "weighting": "the nearly clean steps (small t) against the noisy ones",
    "gamma": "the shaded band: where SNR > γ, the x₀ weight is held at γ",
    "timestep_sampling": "drawing a step more often acts like a larger weight on it",
    "adaptive_weighting": "the Learned weighting chart: does it find Min-SNR's shape?",
    "steps": "on a 2-core CPU a few hundred MNIST steps show only the first phase",
    "seed": "the same seed gives the same start, batches and noise",
    "quality": "the Quality chart",
}
# The two switches' help (they stand for a table setting's automatic value: SWITCHES).
SWITCH_HELP = {"quality": f"scores fresh samples {SETTINGS['metric_every'].auto_help}",
               "use_labels": f"used {SETTINGS['class_conditional'].auto_help.removeprefix('on ')}"}


def extra_settings() -> list[Setting]:
    """The table's settings shown in the app that no tab places by hand: each gets a control of its own."""
    return [s for s in TABLE if s.app and s.name not in PLACED]


def setting_names() -> list[str]:
    """Every setting, in the order of the Train and Compare endpoints' values (after the owner token and the
    weighting): the weighting, timestep-sampler and adaptive-weighting parameters are the registries', and the
    extra settings the table's, read when called."""
    return [*BEFORE_PARAMS, *strategy_parameters(), *AFTER_PARAMS, "timestep_sampling", *sampler_parameters(),
            "adaptive_weighting", *ADAPTIVE_WEIGHTINGS.parameters(), *(s.name for s in extra_settings())]


def control_default(name: str) -> Any:
    """A control's starting value: the app's start (APP_START), else the table's default, an automatic one shown
    as "auto" (a choice) or 0 (a number)."""
    if name in SWITCHES:
        return True
    setting = SETTINGS[name]
    value = APP_START.get(name, setting.default)
    if value is None:
        return AUTOMATIC if setting.choices is not None else False if setting.kind is bool else 0
    return value


def bounds(name: str, limits: ClassLimits) -> tuple[float, float | None]:
    """The range a number control offers: the table's, within this server's limits (0 where 0 means automatic or
    none)."""
    setting = SETTINGS[name]
    caps = {"timesteps": limits.max_timesteps, "steps": limits.max_steps, "minutes": limits.max_minutes,
            "batch_size": limits.max_batch, "preview_every": limits.max_steps, **APP_HIGH}
    low = 0 if setting.default is None or setting.low is None else setting.low
    highs = [h for h in (setting.high, caps.get(name)) if h is not None]
    return low, min(highs) if highs else None


def config_value(name: str, value: Any) -> Any:
    """A control's value as the setting's: "auto" or 0 is None where the setting is automatic or optional (a
    switch's off is off)."""
    setting = SETTINGS[name]
    automatic = setting.default is None or setting.auto is not None
    if value is None or automatic and setting.kind is not bool and value in (AUTOMATIC, 0, ""):
        return None
    if setting.kind is int and isinstance(value, float) and value.is_integer():
        return int(value)  # a slider's or number box's float
    return value


def default_settings(**overrides: Any) -> dict[str, Any]:
    """Every setting at its control's default, with ``overrides`` by name (an unknown name is an error)."""
    registered = {**strategy_parameters(), **sampler_parameters(), **ADAPTIVE_WEIGHTINGS.parameters()}
    names = setting_names()
    values = {name: registered[name].default if name in registered else control_default(name) for name in names}
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known: {', '.join(names)}")
    return {**values, **overrides}


def endpoint_values(owner: str, weighting: str | list[str], **settings: Any) -> list[Any]:
    """The values an API client sends to ``/train`` (one weighting) or ``/compare`` (a list): the owner token, the
    weighting(s), then every setting by :func:`setting_names` order, defaults where not given."""
    return [owner, weighting, *default_settings(**settings).values()]


def dataset_choices(image_roots: Mapping[str, str]) -> list[tuple[str, str]]:
    toys = [(f"2D toy: {e.display_name}", e.name) for e in TOY_DATASETS]
    folders = [(f"Image folder: {name}", f"folder:{name}") for name in image_roots]
    return [*toys, ("MNIST", "mnist"), ("CIFAR-10", "cifar10"), *folders]


def source_names(folders: Iterable[str]) -> dict[str, str]:
    """The server's folders by the name a page shows and sends (the folder's own name, numbered where two share
    one) → their paths. No path reaches a page: the server maps a name back (:func:`make_config`)."""
    names: dict[str, str] = {}
    for folder in folders:
        path = str(Path(folder).expanduser())
        base = Path(path).name or "folder"
        name, count = base, 1
        while name in names:
            count += 1
            name = f"{base} ({count})"
        names[name] = path
    return names


def _shown_number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def control_help(name: str, component: gr.components.Component) -> str:
    """The one-line help under the control of setting or parameter ``name``: what it is (unless its label says so
    already), the range the control offers, the automatic rule, and what to watch (:data:`WATCH`)."""
    registered = {**strategy_parameters(), **sampler_parameters(), **ADAPTIVE_WEIGHTINGS.parameters()}
    if name in registered:  # a registry parameter: what it is, and whose
        owners = [e.display_name for registry in (STRATEGIES, TIMESTEP_SAMPLERS, ADAPTIVE_WEIGHTINGS) for e in registry
                  if any(p.name == name for p in e.params)]
        # whose parameter it is, where one entry owns it (γ's three owners are named by its label's context)
        what, auto = registered[name].description + (f" of {owners[0]}" if len(owners) == 1 else ""), ""
    elif name in SWITCHES:
        what, auto = SWITCH_HELP[name], ""
    else:
        what, auto = SETTINGS[name].help, SETTINGS[name].auto_help
    label = str(getattr(component, "label", None) or "").lower()
    parts = [] if label.startswith(what.lower()) else [what]
    if name in registered and label.startswith(registered[name].description.lower()):
        parts = [what.replace(registered[name].description, "a parameter", 1)] if len(owners) == 1 else []
    low, high = getattr(component, "minimum", None), getattr(component, "maximum", None)
    if low is not None and high is not None:
        parts.append(f"{_shown_number(low)} to {_shown_number(high)}")
    choices = [choice[1] if isinstance(choice, tuple) else choice for choice in getattr(component, "choices", None) or []]
    if auto and (AUTOMATIC in choices or low == 0):  # the rule, where the control offers it ("auto", or 0)
        parts.append(f"automatic: {auto}")
    text = "; ".join(parts) + ("." if parts else "")
    if name in WATCH:
        text += f" Watch: {WATCH[name]}" + ("" if WATCH[name].endswith("?") else ".")
    text = text.strip()
    return text[:1].upper() + text[1:]


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
    sources = source_names(data_roots)
    value = default_settings(**{"data_root": next(iter(sources)), **defaults})
    c: dict[str, gr.components.Component] = {}
    with gr.Row():
        c["dataset"] = gr.Dropdown(dataset_choices(image_roots), value=value["dataset"], label="Dataset",
                                   elem_id=f"{prefix}-dataset")
        c["data_root"] = gr.Dropdown(list(sources), value=value["data_root"],  # by name: no path reaches the page
                                     label="Data folder (the server's, by name)", elem_id=f"{prefix}-data-root")
        c["schedule"] = gr.Dropdown([(e.display_name, e.name) for e in SCHEDULES], value=value["schedule"],
                                    label="Noise schedule")
        c["timesteps"] = gr.Slider(10, bounds("timesteps", limits)[1], value=value["timesteps"], step=10,
                                   label="Timesteps T")  # in tens: the slider's own steps
    with gr.Row():
        c["steps"] = _number("steps", limits, f"Steps (at most {limits.max_steps:,})", value, elem_id=f"{prefix}-steps")
        c["minutes"] = _number("minutes", limits, f"Time budget, minutes (0: none; at most {limits.max_minutes:g})", value)
        c["seed"] = _number("seed", limits, "Seed", value)
        c["preview_every"] = _number("preview_every", limits, "Preview every N steps (0: "
                                     f"{SETTINGS['preview_every'].auto_help})", value, elem_id=f"{prefix}-preview")
        c["quality"] = gr.Checkbox(value["quality"], label="Measure sample quality", elem_id=f"{prefix}-measure")
    with gr.Row():
        c["target"] = gr.Radio([(f"automatic ({SETTINGS['target'].auto_help})", AUTOMATIC),
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
            c["batch_size"] = _number("batch_size", limits, "Batch size (0: automatic)", value)
            c["lr"] = _number("lr", limits, "Learning rate (0: automatic)", value)
        with gr.Row():
            c["use_labels"] = gr.Checkbox(value["use_labels"], label="Class-conditional: learn from the labels (images "
                                          "only), so samples can be asked for a class", elem_id=f"{prefix}-labels")
            c["guidance"] = gr.Slider(*bounds("guidance", limits), value=value["guidance"], step=0.5,
                                      elem_id=f"{prefix}-guidance",
                                      label="Classifier-free guidance of previews and quality (1: none)")
            c["sample_eta"] = gr.Slider(*bounds("sample_eta", limits), value=value["sample_eta"], step=0.1,
                                        elem_id=f"{prefix}-eta", label="DDIM η of previews and quality (0: deterministic)")
        with gr.Row():
            for setting in extra_settings():
                c[setting.name] = _generic_control(setting, limits, value, prefix)
    for name, component in c.items():
        component.info = control_help(name, component)
    return ConfigControls(c, holders)


def _number(name: str, limits: ClassLimits, label: str, value: Mapping[str, Any], **kwargs: Any) -> gr.Number:
    """A number box for a table setting, with the table's range within this server's limits."""
    low, high = bounds(name, limits)
    precision = 0 if SETTINGS[name].kind is int else None
    return gr.Number(value[name], label=label, precision=precision, minimum=low, maximum=high, **kwargs)


def _generic_control(setting: Setting, limits: ClassLimits, value: Mapping[str, Any],
                     prefix: str) -> gr.components.Component:
    """A control for a table setting no tab places by hand, from its row: a switch, a choice or a number."""
    label = setting.help + (f" ({AUTOMATIC}: {setting.auto_help})" if setting.auto_help else "")
    elem_id = f"{prefix}-{setting.name.replace('_', '-')}"
    if setting.kind is bool:
        return gr.Checkbox(value[setting.name], label=label, elem_id=elem_id)
    if setting.choices is not None:
        automatic = [AUTOMATIC] if setting.default is None or setting.auto else []
        return gr.Dropdown([*automatic, *setting._choices()], value=value[setting.name], label=label, elem_id=elem_id)
    return _number(setting.name, limits, label, value, elem_id=elem_id)


def train_link_settings() -> list[str]:
    """The Train tab's settings a link carries (as ``train_<name>``) besides its weighting: the table's, then γ."""
    return [*(s.name for s in TABLE if s.link), "gamma"]


def train_link_fields(limits: ClassLimits) -> list[us.Field]:
    """The Train tab's link fields: its weighting, then :func:`train_link_settings`, each with exactly the values
    its control allows on this server (the table's choices or range within the server's limits), so the app never
    writes a link it would refuse."""
    defaults = default_settings()

    def parse(name: str):
        if name in strategy_parameters():
            return us.param_number(strategy_parameters()[name])
        setting = SETTINGS[name]
        if name == "dataset":  # the control's own values (an image folder is offered by name, not linked)
            return us.choice([value for _, value in dataset_choices({})])
        if setting.choices is not None:
            return us.choice([*([AUTOMATIC] if setting.default is None else []), *setting._choices()])
        return us.number(*bounds(name, limits), integer=setting.kind is int)

    return [us.Field("train_weighting", SETTINGS["weighting"].default, us.choice(STRATEGIES.names())),
            *[us.Field(f"train_{name}", defaults[name], parse(name)) for name in train_link_settings()]]


def make_config(image_roots: Mapping[str, str], weighting: str, settings: Mapping[str, Any],
                data_roots: list[str] | None = None) -> TrainConfig:
    """The TrainConfig of these settings (by name; every name of :func:`setting_names`). ``data_roots``: the folders
    the server offers, and then ``data_root`` is one's name (:func:`source_names`), never a path. Intervals and
    sample counts left automatic are the core's run rules (:meth:`TrainConfig.resolved`), the same as the CLI's."""
    missing = [name for name in setting_names() if name not in settings]
    if missing:
        raise ValueError(f"missing setting(s) {missing}")
    s = dict(settings)
    dataset, data_root = s["dataset"], s["data_root"]
    if data_roots is not None:  # a page sends a folder's name; the server alone knows its path
        sources = source_names(data_roots)
        if not isinstance(data_root, str) or data_root not in sources:
            raise ValueError(f"data folder must be one of the server's, by name: {', '.join(sources)}")
        data_root = sources[data_root]
    if isinstance(dataset, str) and dataset.startswith("folder:"):
        name = dataset.split(":", 1)[1]
        if name not in image_roots:
            raise ValueError(f"unknown image folder {name!r}; configured: {', '.join(image_roots) or 'none'}")
        dataset, data_root = "folder", image_roots[name]
    s["weighting"] = weighting
    values = {name: config_value(name, s[name]) for name in [*setting_names(), "weighting"] if name in SETTINGS}
    for params in (setting for setting in TABLE if setting.kind is dict):  # the chosen entry's parameters
        values[params.name] = {p.name: s[p.name] for p in params.registry.get(s[params.entry_setting]).params}
    values.update({name: None if s[switch] else off for switch, (name, off) in SWITCHES.items()})
    return TrainConfig(**{**values, "dataset": dataset, "data_root": data_root})
