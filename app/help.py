"""One line of help under every control of the explorer, Train and Compare tabs: what it is, its range, what to watch.

The run settings' controls get theirs where they are built (app/settings.py, :func:`~app.settings.control_help`, from
the settings table and the registries' parameters). The explorer's controls, and the few controls of the Train and
Compare tabs that no setting builds, get theirs here once the page is built (:func:`explain_controls`): the explorer's
by their link names (the order of its inputs, app/explorer_tab.py), the others by their elem_id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import gradio as gr

from .explorer_tab import explorer_fields
from .settings import control_help

# The explorer's link names that are run settings (their help is the setting's) ...
EXPLORER_SETTINGS = {"schedule": "schedule", "T": "timesteps", "zero_snr": "zero_terminal_snr", "strategies": "weighting",
                     "target": "target", "sampler": "timestep_sampling", "shift": "schedule_shift"}
# ... and its own controls, which are not.
EXPLORER_HELP = {
    "x": "Timestep t or log-SNR λ. Watch: against λ a weighting's curve is the same on every schedule.",
    "view": "The weight on the chosen space's error, per unit log-SNR (Kingma & Gao), or as a timestep distribution.",
    "log_y": "The weights span many powers of ten; a linear axis shows where most of the weight lies.",
}
# Controls of the Train and Compare tabs that no setting builds, by elem_id: a run setting's name (its help), or text.
BY_ID = {
    "train-weighting": "weighting",
    "compare-weightings": "weighting",
    "measured-dataset": "Which measured comparison of docs/results.md to draw: MNIST (section 1) or CIFAR-10 (section "
                        "4.1), each over several seeds.",
    "measured-target": "The prediction target whose runs are drawn: each weighting against that target's plain loss.",
    "measured-metric": "The Fréchet distance of the samples to real ones (lower is better), or the share of samples "
                       "recognised as one class with p > 0.9.",
}
# The components that take a student's input and can show Gradio's info line.
CONTROL_TYPES = (gr.Slider, gr.Number, gr.Dropdown, gr.Radio, gr.Checkbox, gr.CheckboxGroup, gr.Textbox)


def explain_controls(demo: gr.Blocks, explorer_inputs: Sequence[gr.components.Component]) -> None:
    """Give the explorer's inputs (in :func:`explorer_fields` order) and the :data:`BY_ID` controls their help line;
    call inside ``demo`` before it closes (Gradio writes the page's config then)."""
    for spec, component in zip(explorer_fields(), explorer_inputs, strict=True):
        name = EXPLORER_SETTINGS.get(spec.key, spec.key)
        component.info = EXPLORER_HELP[spec.key] if spec.key in EXPLORER_HELP else control_help(name, component)
    for block in demo.blocks.values():
        help_of = BY_ID.get(getattr(block, "elem_id", None) or "")
        if help_of is not None:
            block.info = control_help(help_of, block) if " " not in help_of else help_of


def controls_in(block: gr.blocks.Block) -> Iterator[gr.components.Component]:
    """Every control inside ``block`` (a tab, a column…) a student can change: inputs, not read-only outputs."""
    for child in getattr(block, "children", []):
        if isinstance(child, CONTROL_TYPES) and child.interactive is not False:
            yield child
        yield from controls_in(child)


def missing_help(block: gr.blocks.Block) -> list[str]:
    """The labels of the controls inside ``block`` without a help line."""
    return [str(control.label) for control in controls_in(block) if not str(control.info or "").strip()]
