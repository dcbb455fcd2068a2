"""The explorer's curves redrawn in the browser while a strategy parameter (γ, k…) moves: no server round trip.

The figure the server drew carries, in ``layout.meta`` (:func:`app.explorer.browser_meta`), the schedule's SNR and
log-SNR density per step and each ticked strategy's weight as the registry's JavaScript expression. This function
repeats :func:`app.explorer.build_explorer`'s per-trace rules (target conversion, the ε limit at SNR = 0, the
per-unit-λ division, the effective weight, points a log axis cannot show, the clamp band) for new parameter values;
tests/test_explorer_browser.py checks its curves against the Python ones for every strategy, target and view.
"""

import math

# Installed once when the page loads (``demo.load(js=...)``): ``window.minsnrExplorer.redraw(params)`` redraws the
# plot for these parameter values; a listener calls it on every input event inside a ``#param-<name>`` slider, before
# Gradio's own event pipeline (which took about 95 ms per change here, benchmarks/explorer_speed.py), and hands the
# event to Gradio once the redrawn chart has been painted.
INSTALL_JS = r"""
() => {
  const redraw = (overrides) => {
    const started = performance.now();
    const div = document.querySelector('#explorer-plot .js-plotly-plot');
    const meta = div && div.layout && div.layout.meta;
    if (!meta || meta.minsnr !== 1 || !window.Plotly) return false;
    watch(div);
    const decode = (b64) => new Float64Array(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer);
    if (!div._minsnr || div._minsnr.meta !== meta) {  // decoded once per server figure
      const snr = decode(meta.snr);
      div._minsnr = {meta, snr, density: decode(meta.density),
                     factor: meta.factor ? decode(meta.factor) : new Float64Array(snr.length).fill(1),  // uniform p(t)
                     vScale: meta.v_scale ? decode(meta.v_scale) : null, params: {...meta.params}};  // v target only
    }
    const state = div._minsnr, snr = state.snr, density = state.density, factor = state.factor, T = snr.length;
    const vScale = state.vScale;
    for (const [name, value] of Object.entries(overrides || {})) {  // what the server would refuse is not drawn
      const [low, high, exclusive] = meta.param_ranges[name] || [-Infinity, Infinity, false];
      if (!Number.isFinite(value) || value > high || (exclusive ? value <= low : value < low)) return false;
    }
    Object.assign(state.params, overrides || {});
    const p = state.params;
    const g = (v, digits = 6) => {  // Python's format(v, f".{digits}g")
      if (v === 0) return "0";
      const r = Number(v.toPrecision(digits)), e = Math.floor(Math.log10(Math.abs(r)));
      if (e < -4 || e >= digits) {
        return r.toExponential(digits - 1).replace(/\.?0+e/, "e").replace(/e([+-])(\d)$/, "e$10$2");
      }
      return String(r);
    };
    const hasZero = snr.some((s) => s === 0);
    const data = meta.strategies.map((st, index) => {
      const w0 = new Function("s", "p", "return " + st.js + ";");
      const limit = st.eps_at_zero ? Number(new Function("p", "return " + st.eps_at_zero + ";")(p)) : null;
      const definedEverywhere = !hasZero || (!st.per_unit && (meta.target !== "eps" || limit !== null));
      const weightIn = (target, i) => {  // loss_weight at step i, or NaN where it is undefined
        const s = snr[i];
        let w = w0(s, p);
        if (st.per_unit) { if (!(density[i] > 0)) return NaN; w = w / density[i]; }
        if (target === "x0") return w;
        if (target === "v") return w / vScale[i];  // SNR + 1 (VP) or (1 + √SNR)² (rectified flow)
        if (s === 0) return limit === null ? NaN : limit;
        return w / s;
      };
      // The target-space weight at every step, Infinity where it is unbounded or undefined (SNR = 0).
      const tw = new Float64Array(T);
      let mean = 0;  // E_p[w] = Σ p(t)·w(t) over the steps the sampler draws
      for (let i = 0; i < T; i++) {
        tw[i] = (definedEverywhere || snr[i] > 0) ? weightIn(meta.target, i) : Infinity;
        if (factor[i] > 0) mean += (factor[i] / T) * tw[i];
      }
      const reproducible = Number.isFinite(mean) && mean > 0;
      const x = [], y = [], custom = [];
      for (let i = 0; i < T; i++) {
        const finite = snr[i] > 0;
        let keep = meta.x_axis === "t" || finite;
        let w;
        if (meta.view === "effective") { keep = keep && finite; w = finite ? weightIn("eps", i) * density[i] * factor[i] : 0; }
        else if (meta.view === "sampler") {
          keep = keep && Number.isFinite(tw[i]) && reproducible; w = keep ? factor[i] * tw[i] / mean : 0;
        }
        else { keep = keep && Number.isFinite(tw[i]); w = keep ? factor[i] * tw[i] : 0; }
        if (meta.log_y && !(w > 0)) keep = false;
        if (!keep) continue;
        x.push(meta.x_axis === "t" ? i : Math.log(snr[i]));
        y.push(w);
        custom.push([i, snr[i]]);
      }
      const suffix = st.params.map((name) => `${name}=${g(p[name])}`).join(", ");
      const shownMean = mean === Infinity ? "∞" : g(mean, 3);
      return {...div.data[index], x, y, customdata: custom,
              name: st.display + (suffix ? ` (${suffix})` : "") + ` · E[w] = ${shownMean}`};
    }).concat(div.data.slice(meta.strategies.length));  // the sampler's own curve is unchanged
    const gamma = p.gamma;
    let low = null, high = null;
    for (let i = 0; i < T; i++) {
      if (snr[i] > gamma) {
        const xi = meta.x_axis === "t" ? i : Math.log(snr[i] > 0 ? snr[i] : 1);
        low = low === null ? xi : Math.min(low, xi); high = high === null ? xi : Math.max(high, xi);
      }
    }
    const layout = {...div.layout, shapes: [], annotations: []};
    if (low !== null) {
      layout.shapes = [{type: "rect", x0: low, x1: high, xref: "x", y0: 0, y1: 1, yref: "y domain",
                        fillcolor: "rgba(255,165,0,0.15)", line: {width: 0}}];
      layout.annotations = [{text: `Min-SNR clamp active (SNR > γ = ${g(gamma)})`, x: low, xref: "x", y: 1,
                             yref: "y domain", xanchor: "left", yanchor: "top", showarrow: false}];
    }
    const computed = performance.now();
    window.Plotly.react(div, data, layout);
    const ended = performance.now();
    div.dataset.redrawMs = String(ended - started);
    div.dataset.plotlyMs = String(ended - computed);  // Plotly's share of the redraw
    div.dataset.redrawEnd = String(ended);
    div.dataset.redraws = String(Number(div.dataset.redraws || 0) + 1);
    return true;
  };
  // Gradio's own handling of a redrawn value (its component state, the link's request: ~35 ms of main-thread work
  // per change here) waits until the chart has been painted, and a drag's values reach it once per frame. Any
  // change, key, blur or pointer-up event first hands Gradio the values it has not seen, so it never acts on a stale
  // one; a timer hands them over where no frame comes (a hidden page).
  const pending = new Set();
  let replaying = false, round = 0;
  const handOver = () => {
    round += 1;  // the timers of this round no longer apply
    const targets = [...pending];
    pending.clear();
    replaying = true;
    try {
      for (const target of targets) if (target.isConnected) target.dispatchEvent(new Event('input', {bubbles: true}));
    } finally { replaying = false; }
  };
  const onInput = (event) => {
    if (replaying) return;
    if (event.target.dataset && event.target.dataset.box) return;  // a log-scale slider: its box's input follows
    const holder = event.target.closest && event.target.closest('[id^="param-"]');
    const value = Number(event.target.value);
    if (!holder || event.target.value === '' || !Number.isFinite(value)) return;
    if (!redraw({[holder.id.slice('param-'.length)]: value})) return;  // not drawn here: Gradio handles it now
    event.stopImmediatePropagation();
    if (!pending.size) {
      const mine = round, due = () => { if (round === mine && pending.size) handOver(); };
      requestAnimationFrame(() => setTimeout(due, 0));  // after the frame's paint
      setTimeout(due, 100);
    }
    pending.add(event.target);
  };
  const flush = () => { if (pending.size) handOver(); };
  for (const type of ['change', 'keydown', 'blur', 'focusout', 'pointerup']) document.addEventListener(type, flush, true);
  const fromValues = (values) => {  // the parameter sliders' values, in meta.param_names' order
    const div = document.querySelector('#explorer-plot .js-plotly-plot');
    const meta = div && div.layout && div.layout.meta;
    if (!meta || meta.minsnr !== 1) return;
    const names = meta.param_names, overrides = {};
    names.forEach((name, i) => { overrides[name] = Number(values[values.length - names.length + i]); });
    const drawn = div._minsnr && div._minsnr.meta === meta ? div._minsnr.params : meta.params;
    for (const target of pending) {  // a value Gradio has not been handed yet: the drawn one is newer
      const name = target.closest('[id^="param-"]').id.slice('param-'.length);
      if (name in drawn) overrides[name] = drawn[name];
    }
    if (names.every((name) => drawn[name] === overrides[name])) return;  // already drawn by the input listener
    redraw(overrides);
  };
  document.addEventListener('input', onInput, true);
  // A figure from the server after a control change comes without the strategies' points ("skeleton": a quarter of
  // the bytes) and is drawn here from its meta, before the browser paints it. It was asked for with the parameter
  // values Gradio held then: a value moved since (typed during the request, or while the page still showed its
  // static first paint, app/first_paint.py) is drawn too.
  const syncWithBoxes = (div) => {
    const meta = div.layout && div.layout.meta;
    if (!meta || meta.minsnr !== 1 || (div._minsnr && div._minsnr.meta === meta)) return;  // not new: drawn here
    const overrides = {};
    for (const name of meta.param_names) {
      const box = document.querySelector('#param-' + name + ' input[type=number]');
      if (box && box.value !== '' && Number(box.value) !== meta.params[name]) overrides[name] = Number(box.value);
    }
    try {
      if (meta.skeleton) { if (!redraw(overrides)) redraw({}); }  // a box the server would refuse: its own values
      else if (Object.keys(overrides).length) redraw(overrides);
    } catch (error) { console.error('minsnr: the explorer could not draw its curves', error); }
  };
  const watch = (div) => {  // each later figure from the server (a chart mounted again gets a new element)
    if (div._minsnrWatched || !div.on) return;
    div._minsnrWatched = true;
    // A microtask: after Plotly's own drawing has returned, before the frame is painted (no empty chart is shown).
    div.on('plotly_afterplot', () => queueMicrotask(() => syncWithBoxes(div)));
  };
  const syncFirstChart = () => {
    const div = document.querySelector('#explorer-plot .js-plotly-plot');
    const meta = div && div.layout && div.layout.meta;
    if (!meta || meta.minsnr !== 1 || !window.Plotly) return false;
    document.getElementById('explorer-first-paint')?.classList.add('replaced');  // also without CSS :has
    syncWithBoxes(div);
    watch(div);
    return true;
  };
  if (!syncFirstChart()) {
    const watcher = new MutationObserver(() => { if (syncFirstChart()) watcher.disconnect(); });
    watcher.observe(document.body, {childList: true, subtree: true});
    setTimeout(() => watcher.disconnect(), 120000);  // a page whose chart never came stops watching
  }
  window.minsnrExplorer = {redraw, fromValues};
}
"""

# Gradio's own slider events (also when a value is set by a link or the reset button): the same redraw.
REDRAW_JS = "(...values) => { if (window.minsnrExplorer) window.minsnrExplorer.fromValues(values); }"


# γ on a log scale (0.1 to 100, ticks at 1, 2, 5, 10, 20), above a γ box (the explorer's, the Train and Compare
# tabs'): Gradio's sliders are linear, where γ = 1, 2 and 5 sit in the first 5 % of the track. Moving it writes γ into
# the box (in the explorer that redraws the chart and updates the link); typing into the box moves it.
GAMMA_TICKS = (0.1, 1, 2, 5, 10, 20, 100)
GAMMA_LOG_RANGE = (-1.0, 2.0)  # log10 γ
# The γ boxes' own linear tracks are hidden: the log-scale one above each replaces it.
GAMMA_LOG_CSS = ('[id$="param-gamma"] input[type=range], [id$="param-gamma"] .min_value, '
                 '[id$="param-gamma"] .max_value { display: none; }')


def gamma_log_html(value: float, box_id: str = "param-gamma") -> str:
    """The log-scale γ slider for the γ control whose elem_id is ``box_id``; its range input is ``#<box_id>-log``."""
    low, high = GAMMA_LOG_RANGE
    ticks = "".join(
        f'<span style="position:absolute;left:{(math.log10(t) - low) / (high - low) * 100:.2f}%;'
        f'transform:translateX(-50%)">{t:g}</span>' for t in GAMMA_TICKS)
    return (f'<div style="padding:0 8px 18px 8px"><label for="{box_id}-log" style="font-size:var(--block-label-text-size)">'
            f'γ on a log scale</label><input id="{box_id}-log" data-box="{box_id}" type="range" min="{low}" max="{high}" '
            f'step="0.001" value="{math.log10(value):.4f}" style="width:100%"><div style="position:relative;height:1em;'
            f'font-size:0.8em;color:var(--body-text-color-subdued)">{ticks}</div></div>')


GAMMA_LOG_JS = r"""
const range = element.querySelector('input[type=range][data-box]');
const boxId = range.dataset.box;
const box = () => document.querySelector('#' + boxId + ' input[type=number]');
const ticks = [1, 2, 5, 10, 20];
range.addEventListener('input', () => {
  let gamma = Math.pow(10, Number(range.value));
  for (const tick of ticks) if (Math.abs(Math.log10(gamma / tick)) < 0.02) gamma = tick;  // snap to a tick
  gamma = Number(gamma.toPrecision(2));
  const target = box();
  if (!target) return;
  target.value = String(gamma);
  target.dispatchEvent(new Event('input', {bubbles: true}));
});
range.addEventListener('change', () => {
  const target = box();
  if (target) target.dispatchEvent(new Event('change', {bubbles: true}));
});
const follow = (event) => {  // the box typed into: follow it
  if (event.target === range || !(event.target.closest && event.target.closest('#' + boxId))) return;
  const value = Number(event.target.value);
  if (value > 0) range.value = String(Math.log10(value));
};
// This runs again each time the γ control is shown again: one listener per box, the newest slider's.
window.minsnrGammaFollow = window.minsnrGammaFollow || {};
if (window.minsnrGammaFollow[boxId]) document.removeEventListener('input', window.minsnrGammaFollow[boxId], true);
window.minsnrGammaFollow[boxId] = follow;
document.addEventListener('input', follow, true);
"""


def gamma_follow_js(box_id: str = "param-gamma") -> str:
    """For the γ control's own change event (also when a link, preset or reset sets it): move its log-scale slider."""
    return (f"(value) => {{ const range = document.getElementById('{box_id}-log');"
            " if (range && Number(value) > 0) range.value = String(Math.log10(Number(value))); }")
