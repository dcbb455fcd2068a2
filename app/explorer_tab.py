"""The Weight explorer tab: its controls, the figure the server draws for them, and the events that redraw it.

A strategy parameter (γ, k…) is redrawn in the page from the figure's own data (app/static/explorer.js); every
other control asks the server for a new figure (:func:`update_explorer`).
"""

from __future__ import annotations

import functools

import gradio as gr
from gradio.components.plot import PlotData

from minsnr_core.schedules import SCHEDULES
from minsnr_core.settings import SETTINGS
from minsnr_core.timesteps import TIMESTEP_SAMPLERS
from minsnr_core.weighting import STRATEGIES, TARGET_NAMES, TARGETS, strategy_parameters

from . import urlstate as us
from .charts import chart, words_html
from .explorer import (
    DEFAULT_STRATEGIES,
    EXPLORER_SAMPLERS,
    TIMESTEPS_RANGE,
    VIEWS,
    X_AXES,
    browser_figure_json,
    build_explorer,
    default_view,
    explorer_sampler_parameters,
)
from .explorer_js import EXPLORER_HEAD, EXPLORER_ON_LOAD, GAMMA_LOG_JS, REDRAW_JS, gamma_follow_js, gamma_log_html
from .first_paint import EARLY_PAINT_ID, figure_svg
from .phone import fold_narrow
from .settings import params_of
from .training_ui import LATEX
from .weights_ui import build_explorer_file_button, build_weights_panel

EXPLORER_INTRO = """
### Why weight the loss at all?
A diffusion model learns to denoise at every noise level t at once. Each level is its own task, and their
gradients pull in different directions. The loss weighting decides how much each task counts.
**Min-SNR-γ** (Hang et al., ICCV 2023) clamps the weight of the nearly clean, easy steps at γ so they stop
crowding out the rest. Tick strategies, drag γ, change the schedule and the prediction space, and watch the
curves move. The shaded band is where the Min-SNR clamp is active (SNR > γ).
"""
# The elements the page's scripts look for (app/static/explorer.js and first_paint.js get these ids from here).
PLOT_ID = "explorer-plot"
FIRST_PAINT_ID = "explorer-first-paint"
WORDS_ID = "explorer-words"  # the text of the chart in words, which the page rewrites after each redraw of its own
PARAM_PREFIX = "param-"  # a strategy parameter's slider: param-<name>
SHIFT = SETTINGS["schedule_shift"]  # SD3's resolution shift: the run setting's default and range


def explorer_fields() -> list[us.Field]:
    """Every explorer setting a link can carry, in the order of the explorer's input components; the weighting
    parameters are the registry's, read when called."""
    return [
        us.Field("schedule", "cosine", us.choice(SCHEDULES.names())),
        us.Field("T", 1000, us.number(*TIMESTEPS_RANGE, integer=True)),
        us.Field("zero_snr", False, us.flag, us.encode_flag),
        us.Field("shift", SHIFT.default, us.number(SHIFT.low, SHIFT.high)),
        us.Field("strategies", list(DEFAULT_STRATEGIES), us.multi_choice(STRATEGIES.names()), us.encode_list),
        us.Field("target", "eps", us.choice(TARGETS)),
        us.Field("x", "t", us.choice(list(X_AXES))),
        us.Field("view", "weight", us.choice(list(VIEWS))),
        us.Field("log_y", True, us.flag, us.encode_flag),
        us.Field("sampler", "uniform", us.choice(EXPLORER_SAMPLERS)),
        *[us.Field(p.name, p.default, us.param_number(p)) for p in explorer_sampler_parameters().values()],
        *[us.Field(p.name, p.default, us.param_number(p)) for p in strategy_parameters().values()],
    ]


@functools.lru_cache(maxsize=64)
def _cached_explorer(schedule, T, zero_snr, shift, strategies, target, x_axis, view, log_y, sampler, sampler_params,
                     params) -> tuple[PlotData, str, str, str]:
    # A class follows its teacher: many pages ask for the same figure, which is then drawn and encoded once. Only
    # what is sent is kept (the figure as JSON text, not plotly's objects), and a class asks for few figures at a time:
    # a small cache holds them.
    result = build_explorer(schedule, T, list(strategies), dict(params), target, x_axis, view, zero_snr, log_y,
                            sampler, dict(sampler_params), shift)
    notices = "\n".join(f"- {n}" for n in result.notices)
    return (PlotData(type="plotly", plot=browser_figure_json(result)), result.explanation, notices,
            explorer_words(result.summary))


def explorer_words(summary: str) -> str:
    """The chart in words under the explorer's chart (its text is rewritten by the page after each redraw)."""
    return words_html(summary, WORDS_ID)


def update_explorer(schedule, T, zero_snr, shift, strategies, target, x_axis, view, log_y, sampler, *param_values):
    """All explorer outputs for the current controls: figure, explanation, notices, the chart in words.
    ``param_values``: the timestep samplers' parameters, then the weighting strategies'."""
    count = len(explorer_sampler_parameters())
    sampler_params = tuple(zip(explorer_sampler_parameters(), param_values[:count], strict=True))
    params = tuple(zip(strategy_parameters(), param_values[count:], strict=True))
    try:
        return _cached_explorer(schedule, T, bool(zero_snr), shift, tuple(strategies or []), target, x_axis, view,
                                bool(log_y), sampler, sampler_params, params)
    except (ValueError, TypeError) as error:  # unhashable or refused values: nothing is cached
        return gr.skip(), gr.skip(), f"⚠️ {error}", gr.skip()


def linked_explorer(*values):
    """On page load: the explorer for a link's settings; nothing to send when the page opens at the defaults (the
    page already holds that figure)."""
    defaults = [f.default for f in explorer_fields()]
    if [list(v) if isinstance(v, tuple) else v for v in values] == defaults:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return update_explorer(*values)


def build_explorer_tab() -> tuple[list[gr.components.Component], gr.Markdown, gr.Plot, gr.Markdown, gr.Textbox,
                                  gr.HTML]:
    """The tab's components, with their events: returns the inputs (in :func:`explorer_fields` order), the notices,
    the plot, the explanation, the link box (which the app fills) and the chart in words."""
    # Folded on a phone, so the chart and γ open within its first screen (app/phone.py).
    gr.Markdown(fold_narrow(EXPLORER_INTRO, "Why weight the loss at all? (more)"), elem_id="explorer-intro")
    shown = params_of(DEFAULT_STRATEGIES)
    with gr.Row(elem_id="explorer-row"):
        with gr.Column(scale=1, min_width=280):
            # The strategy parameters first (γ above all), so dragging one keeps the chart in view.
            gamma_log = gr.HTML(gamma_log_html(strategy_parameters()["gamma"].default), js_on_load=GAMMA_LOG_JS,
                                elem_id="gamma-log", visible="gamma" in shown)
            sliders = [
                gr.Slider(p.lowest_setting, p.maximum, value=p.default, step=p.step, label=p.description,
                          elem_id=f"{PARAM_PREFIX}{p.name}", visible=p.name in shown)
                for p in strategy_parameters().values()
            ]
            schedule = gr.Dropdown(
                [(e.display_name, e.name) for e in SCHEDULES], value="cosine", label="Noise schedule", elem_id="schedule"
            )
            steps = gr.Slider(*TIMESTEPS_RANGE, value=1000, step=1, label="Timesteps T", elem_id="timesteps")
            zero_snr = gr.Checkbox(False, label="Zero terminal SNR (Lin et al. 2023)")
            shift = gr.Slider(SHIFT.low, SHIFT.high, value=SHIFT.default, step=0.1, label="Resolution shift α (SD3)",
                              elem_id="explorer-shift")
            strategies = gr.CheckboxGroup(
                [(e.display_name, e.name) for e in STRATEGIES], value=list(DEFAULT_STRATEGIES),
                label="Weighting strategies", elem_id="strategies",
            )
            target = gr.Radio([(TARGET_NAMES[t], t) for t in TARGETS], value="eps", label="Prediction target (loss space)")
            x_axis = gr.Radio([(v, k) for k, v in X_AXES.items()], value="t", label="x-axis")
            view = gr.Radio([(v, k) for k, v in VIEWS.items()], value="weight", label="Show")
            log_y = gr.Checkbox(True, label="Logarithmic y-axis")
            sampler = gr.Dropdown([(TIMESTEP_SAMPLERS.get(n).display_name, n) for n in EXPLORER_SAMPLERS],
                                  value="uniform", label="Timestep sampling p(t)", elem_id="explorer-sampler")
            # Not "param-…": these redraw on the server (the browser's redraw keeps the figure's p(t)).
            sampler_sliders = [
                gr.Slider(p.lowest_setting, p.maximum, value=p.default, step=p.step, label=p.description,
                          elem_id=f"sampler-param-{p.name}", visible=False)
                for p in explorer_sampler_parameters().values()
            ]
        with gr.Column(scale=3):
            # The default view (drawn once, when the app starts): as a static SVG in the page's HTML and its first
            # render, replaced by the Plotly figure once Plotly's module has loaded (app/first_paint.py). This
            # component also brings the page's explorer scripts (its head) and installs them (its js_on_load).
            notices = gr.Markdown(elem_id="explorer-notices")
            page = {"plot": PLOT_ID, "first_paint": FIRST_PAINT_ID, "early_paint": EARLY_PAINT_ID,
                    "param_prefix": PARAM_PREFIX, "link_fields": [f.key for f in explorer_fields()],
                    "summary": WORDS_ID}
            gr.HTML(figure_svg(default_view().figure), elem_id=FIRST_PAINT_ID, head=EXPLORER_HEAD,
                    js_on_load=EXPLORER_ON_LOAD, minsnr_page=page)
            # With its data (CSV) and picture (PNG, SVG) to download, and the chart in words (app/charts.py).
            plot, words = chart("Weight curves", PLOT_ID, default_view().figure,
                                words=explorer_words(default_view().summary))
            link = gr.Textbox(label="Link to this view and the Train tab's settings", elem_id="explorer-link",
                              interactive=False, buttons=["copy"])
            build_explorer_file_button()  # the explorer as one HTML file, for a course page
            explanation = gr.Markdown(default_view().explanation, elem_id="explorer-explanation", latex_delimiters=LATEX)
            inputs = [schedule, steps, zero_snr, shift, strategies, target, x_axis, view, log_y, sampler,
                      *sampler_sliders, *sliders]
            build_weights_panel(inputs)  # the view's weight table, and a check of an uploaded file of weights
    gamma_slider = sliders[list(strategy_parameters()).index("gamma")]
    gamma_slider.change(None, gamma_slider, None, js=gamma_follow_js())
    def show_parameters(names):  # only the ticked strategies' parameters
        return [gr.update(visible="gamma" in params_of(names or [])),
                *[gr.update(visible=p in params_of(names or [])) for p in strategy_parameters()]]

    strategies.change(show_parameters, strategies, [gamma_log, *sliders], api_visibility="undocumented",
                      show_progress="hidden", queue=False)  # one request, not the queue's join and stream
    sampler.change(lambda name: [gr.update(visible=p.name in {q.name for q in TIMESTEP_SAMPLERS.get(name).params})
                                 for p in explorer_sampler_parameters().values()],
                   sampler, sampler_sliders, api_visibility="undocumented", show_progress="hidden", queue=False)
    _redraw_on_change(inputs, sliders, [plot, explanation, notices, words])
    return inputs, notices, plot, explanation, link, words


def _redraw_on_change(inputs: list[gr.components.Component], sliders: list[gr.components.Component],
                      outputs: list[gr.components.Component]) -> None:
    """Each control's change redraws the chart: a strategy parameter's in the page, any other's on the server."""
    for component in inputs:  # no loading overlay while a slider is dragged
        if component in sliders:  # redrawn in the browser from the figure's own data: no round trip
            # Typing and dragging redraw through app/static/explorer.js's input listener; this covers values set by
            # a link, a preset or the reset button. Only the sliders' values travel: each input Gradio hands a js
            # function is copied on every change.
            component.change(None, sliders, None, js=REDRAW_JS)
            continue
        # Outside the queue: a direct request is one round trip instead of the queue's join and event stream.
        component.change(update_explorer, inputs, outputs, trigger_mode="always_last", api_visibility="undocumented",
                         show_progress="hidden", queue=False)
