"""Every value a client sends is checked against what its control allows before any handler sees it.

A class server is reachable by every student, and a script can send anything a control could never produce: a
string where a slider sends a number, null, NaN, ±inf, 1e12, a megabyte of text. Gradio's own checks catch some of
these but answer others with a traceback (``'<' not supported between 'str' and 'int'``); each refusal here names
the control and what it allows, logs no traceback, and happens before the value is stored anywhere.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from minsnr_core.registry import describe_value as describe
from minsnr_core.weight_tables import MAX_CHARACTERS

MAX_CHOICE = 200  # longest choice name or token a control takes: every real one is far shorter
MAX_TEXT = 4000  # longest text box value (a link's query string is about 600 characters)
# Longest value a page's own HTML component sends: the text of a file of weights the page read (app/weights_ui.py).
MAX_PAGE_TEXT = MAX_CHARACTERS


def _number(value: Any, what: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expects {what}; got {describe(value)}"
    if not math.isfinite(value):
        return f"expects {what}; got {value}"
    return None


def _text(value: Any, what: str, longest: int = MAX_CHOICE) -> str | None:
    if not isinstance(value, str):
        return f"expects {what}; got {describe(value)}"
    if len(value) > longest:
        return f"expects {what} of at most {longest} characters; got {describe(value)}"
    return None


def payload_problem(component: gr.components.Component, value: Any) -> str | None:
    """What is wrong with ``value`` for this control, in words; None when its type and size are right (the range
    and the choices are then checked by Gradio's own preprocess)."""
    if isinstance(component, (gr.Slider, gr.Number)):
        low, high = getattr(component, "minimum", None), getattr(component, "maximum", None)
        bounds = f" from {low:g} to {high:g}" if low is not None and high is not None else ""
        return _number(value, "a finite number" + bounds)
    if isinstance(component, gr.Checkbox):
        return None if isinstance(value, bool) else f"expects true or false; got {describe(value)}"
    if isinstance(component, gr.CheckboxGroup) or isinstance(component, gr.Dropdown) and component.multiselect:
        count = len(component.choices)
        if not isinstance(value, list) or len(value) > count:
            return f"expects a list of at most {count} of its choices; got {describe(value)}"
        return next((p for p in (_text(v, "choice names") for v in value) if p), None)
    if isinstance(component, (gr.Dropdown, gr.Radio)):
        return _text(value, "one of its choices")
    if isinstance(component, gr.BrowserState):
        return None if value is None else _text(value, "the page's token")
    if isinstance(component, gr.Textbox):
        return None if value is None else _text(value, "a text", MAX_TEXT)
    if isinstance(component, gr.HTML):
        return None if value is None else _text(value, "the text of a file the page read", MAX_PAGE_TEXT)
    return None


def name_refusals(demo: gr.Blocks) -> None:
    """Check every value before the control's own preprocess, and name the control in every refusal (Gradio's
    included: "Timesteps T: Value 1e7 is greater than maximum value 2000."), with no traceback in the log."""
    for component in demo.blocks.values():
        preprocess = getattr(component, "preprocess", None)
        if preprocess is not None:
            component.preprocess = _checked(component, preprocess)


def _checked(component: Any, preprocess):
    label = getattr(component, "label", None) or getattr(component, "elem_id", None) or type(component).__name__

    def checked(payload: Any) -> Any:
        problem = payload_problem(component, payload)
        if problem:
            raise gr.Error(f"{label}: {problem}", print_exception=False)
        try:
            return preprocess(payload)
        except gr.Error as error:
            raise gr.Error(f"{label}: {error.message}", print_exception=False) from None
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as error:
            raise gr.Error(f"{label}: refused {describe(payload)} ({error})", print_exception=False) from None

    return checked
