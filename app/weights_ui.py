"""The explorer's weight tables and its check of a user's own weights (minsnr_core.weight_tables; the CLI's
``minsnr-weights table`` and ``check`` in the page).

The table is computed on the server for the explorer's current settings and saved as a file by the page itself; a
user's file of weights is read by the page and only its text is sent to be checked. Neither is written on the server,
so no other session can reach it, and the app keeps no upload control (no file path ever arrives from a page).
"""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr

from minsnr_core.registry import describe_value
from minsnr_core.schedules import get_schedule
from minsnr_core.weight_tables import MAX_CHARACTERS, MAX_ROWS, check_weights, read_weights_csv, table_csv, view_table
from minsnr_core.weighting import STRATEGIES, strategy_parameters

from .explorer import explorer_sampler_parameters

WEIGHTS_INTRO = f"""
**The numbers behind the curves.** *Download the weight table* saves, per timestep of the schedule above, t, ᾱ_t,
SNR, log-SNR and each ticked strategy's weight on the chosen target's loss, with every digit a 64-bit float holds:
golden values to test your own code against (`minsnr-weights table` writes the same table). *Check your weights*
reads a CSV of your code's weights (columns `t` and `weight`, at most {MAX_ROWS:,} rows), fits every strategy in
every space to it and says which one it is, names a known port bug, or says where it departs from the nearest
(`minsnr-weights check` does the same). Your page reads the file and sends its text to be checked; nothing of it
is stored on the server, and no one else sees it.
"""
UPLOAD_HTML = f"""<label class="weights-file-label" for="weights-file">Check your weights: a CSV with columns t and weight
(at most {MAX_ROWS:,} rows)</label>
<input type="file" id="weights-file" accept=".csv,.txt,text/csv,text/plain">
<span class="weights-file-status" role="status" aria-live="polite"></span>"""
# The page reads the chosen file and hands its text to the server as this component's value (Gradio's js_on_load:
# ``element``, ``props``, ``trigger``); a file too large for any table is refused here, before anything is sent.
UPLOAD_JS = f"""
element.addEventListener('change', async (event) => {{
  const input = event.target;
  if (!input.files || !input.files.length) return;
  const file = input.files[0], status = element.querySelector('.weights-file-status');
  if (file.size > {MAX_CHARACTERS}) {{
    status.textContent = `Check your weights: ${{file.name}} has ${{file.size.toLocaleString('en')}} bytes; at most `
      + `{MAX_CHARACTERS:,} are read (a table of at most {MAX_ROWS:,} rows of t,weight).`;
  }} else {{
    status.textContent = `Checking ${{file.name}}…`;
    props.value = await file.text();
    trigger('change');
  }}
  input.value = '';
}});"""
SAVE_TABLE_JS = "(name, text) => { if (name && window.minsnr && window.minsnr.saveText) window.minsnr.saveText(name, text); }"
SAVE_FILE_JS = SAVE_TABLE_JS.replace("saveText(name, text)", "saveText(name, text, 'text/html')")


def _explorer_settings(values: tuple) -> tuple[Any, dict[str, float]]:
    """The schedule and the strategy parameters of the explorer's inputs (app/explorer_tab.explorer_fields order:
    schedule, T, zero SNR, shift, strategies, target, x axis, view, log y, sampler, sampler parameters, strategy
    parameters)."""
    schedule, steps, zero_snr, shift = values[:4]
    if isinstance(steps, bool) or not isinstance(steps, (int, float)) or steps != int(steps):
        raise ValueError(f"Timesteps T must be a whole number, got {describe_value(steps)}")
    sched = get_schedule(schedule, int(steps), zero_terminal_snr=bool(zero_snr), shift=shift)
    strategy_values = values[10 + len(explorer_sampler_parameters()):]
    params = dict(zip(strategy_parameters(), strategy_values, strict=True))
    for name, value in params.items():
        strategy_parameters()[name].validate(value, "weight table")
    return sched, params


def weight_table_text(*values: Any) -> tuple[str, str, str]:
    """The explorer's view as a weight table: (file name, CSV text, notice). Nothing to save and the reason as the
    notice when the settings give no table."""
    try:
        sched, params = _explorer_settings(values)
        strategies, target = list(values[4] or []), values[5]
        if not strategies:
            return "", "", "Tick at least one weighting strategy to download its table."
        table, left_out = view_table(sched, strategies, target, params)
    except (ValueError, TypeError) as error:
        return "", "", f"⚠️ {error}"
    notice = "".join(f"\n\nLeft out of the table — {reason}" for reason in left_out).strip()
    if not table:
        return "", "", f"⚠️ {notice}"
    names = "-".join(strategies) if len(strategies) <= 3 else f"{len(strategies)}-strategies"
    gamma = f"-gamma{params['gamma']:g}" if any(p.name == "gamma" for s in strategies for p in STRATEGIES.get(s).params) else ""
    name = f"minsnr-weight-table-{sched.name}-T{sched.num_timesteps}-{target}-{names}{gamma}.csv"
    rows = f"Saved {name}: {sched.num_timesteps:,} rows, columns {', '.join(table)}."
    return name, table_csv(table), f"{rows}\n\n{notice}".strip()


def check_text(text: Any, *values: Any) -> str:
    """Say which weighting a CSV of t,weight rows is for the explorer's schedule and target
    (:func:`minsnr_core.weight_tables.check_weights`). ``text`` is the file's content, read by the page."""
    if not text:
        return gr.skip()
    try:
        sched, _ = _explorer_settings(values)
        report = check_weights(read_weights_csv(text, sched.num_timesteps), sched, values[5])
    except (ValueError, TypeError) as error:
        return f"⚠️ Check your weights: {error}"
    where = (f"*Checked against the {sched.name} schedule, T = {sched.num_timesteps}"
             f"{', zero terminal SNR' if sched.zero_terminal_snr else ''}"
             f"{f', shift α = {sched.shift:g}' if sched.shift != 1 else ''}, as set above.*")
    return f"{'✅' if report.matches else '❌'} {report.words}\n\n{where}"


@functools.cache
def explorer_file() -> tuple[str, str]:
    """The explorer as one HTML file (:func:`app.export_explorer.build_static_explorer`): its name and text, built
    once per server (the same for everyone, about 1.3 MB)."""
    from .export_explorer import build_static_explorer  # it imports the explorer tab, which imports this module

    return "minsnr-explorer.html", build_static_explorer()


def build_explorer_file_button() -> None:
    """A button that saves the explorer as one self-contained HTML file, for a course page (docs/embedding.md)."""
    button = gr.Button("Download this explorer as one HTML file (works offline, no server)", size="sm",
                       elem_id="explorer-file-button")
    name, text = gr.Textbox(visible=False, interactive=False), gr.Textbox(visible=False, interactive=False)
    button.click(explorer_file, None, [name, text], api_visibility="undocumented", show_progress="hidden").then(
        None, [name, text], None, js=SAVE_FILE_JS)


def build_weights_panel(inputs: list[gr.components.Component]) -> None:
    """The weight table's download and the check of an uploaded file, under the explorer, fed by its ``inputs``."""
    with gr.Accordion("Weight tables, and checking your own weights", open=False, elem_id="weights-panel"):
        gr.Markdown(WEIGHTS_INTRO)
        with gr.Row():
            save = gr.Button("Download the weight table (CSV)", elem_id="weights-table-button", size="sm")
        table_notice = gr.Markdown(elem_id="weights-table-notice")
        name, text = gr.Textbox(visible=False, interactive=False), gr.Textbox(visible=False, interactive=False)
        # A native file input read by the page: its text is what the server receives, so no file is stored there.
        upload = gr.HTML("", html_template=UPLOAD_HTML, js_on_load=UPLOAD_JS, elem_id="weights-upload",
                         apply_default_css=True)
        verdict = gr.Markdown(elem_id="weights-verdict")
    save.click(weight_table_text, inputs, [name, text, table_notice], api_visibility="undocumented",
               show_progress="hidden").then(None, [name, text], None, js=SAVE_TABLE_JS)
    upload.change(check_text, [upload, *inputs], verdict, api_visibility="undocumented")
