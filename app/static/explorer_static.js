// The explorer as one HTML file (app/export_explorer.py): the page itself does what the app's server does for a
// change of schedule, strategies, target, x axis, view, log axis or sampler. It builds the figure the server would
// send (its traces without their points, its layout and layout.meta, app.explorer.browser_meta) from the data
// minsnr_core computed when the file was written (the JSON in #minsnr-data), and lets app/static/explorer.js draw the
// curves, as in the app; a strategy parameter (γ, k…) is redrawn by explorer.js's own input listener.
//
// The link: the app's link fields (app.explorer_tab.explorer_fields, each with its parser's rule from app.urlstate)
// are read from the query string with the app's checks; a value the app would refuse, or one this file does not draw
// (T ≠ 1000, zero terminal SNR, a resolution shift, a sampler's parameters), gets a notice and the chart shows the
// default instead. The page writes the link to its view with the app's own writer (app/static/links.js).
//
// This script runs before Plotly's (4.8 MB, which takes a second or more to load): the controls, the link's notices
// and the explanation are in place at the page's first paint; the chart is drawn once the page's scripts have all
// run (DOMContentLoaded). window.minsnrStatic = {ready, state, set(partial), arrays(schedule)} lets
// tests/test_export_explorer.py and benchmarks/export_explorer.py drive it; `ready` resolves once the first chart is
// drawn and the controls work (and sets data-ready on <html>: the time in ms from navigation start).
(() => {
  "use strict";

  const DATA = JSON.parse(document.getElementById("minsnr-data").textContent);
  const loaded = new Promise((resolve) => {  // Plotly and explorer.js, whose scripts follow this one
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", resolve, {once: true});
    else resolve();
  });
  const plotHolder = document.getElementById(DATA.ids.plot);
  const chart = plotHolder.querySelector("#explorer-chart");
  const PARAMS = DATA.meta.param_names;
  // Plotly's toolbar without its links off the file (the logo, "Share chart…" to Plotly's cloud).
  const CONFIG = {responsive: true, displaylogo: false, showSendToCloud: false, plotlyServerURL: "",
                  toImageButtonOptions: {filename: "minsnr-weight-explorer"}};

  // ---- The arrays (app.array_code.encode_float32 / encode_float64, reversed) ----
  const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const DIGIT = new Int8Array(128).fill(-1);
  for (let i = 0; i < ALPHABET.length; i++) DIGIT[ALPHABET.charCodeAt(i)] = i;
  // 32-bit words from the VLQ of their differences of order DATA.differences (every sum an exact integer < 2^53).
  const words = (text) => {
    const values = [];
    let value = 0, scale = 1;
    for (let i = 0; i < text.length; i++) {
      const digit = DIGIT[text.charCodeAt(i)];
      value += (digit & 31) * scale;
      if (digit & 32) { scale *= 32; continue; }
      values.push(value % 2 ? -(value - 1) / 2 : value / 2);
      value = 0; scale = 1;
    }
    for (let order = 0; order < DATA.differences; order++) {
      let sum = 0;
      for (let i = 0; i < values.length; i++) values[i] = sum += values[i];
    }
    return Uint32Array.from(values);
  };
  const bytes = (b64) => Uint8Array.from(window.atob(b64), (c) => c.charCodeAt(0));
  const decodeArray = (code) => {
    if (code.f4) return Float64Array.from(new Float32Array(words(code.f4).buffer));
    const high = words(code.hi), low = new Uint32Array(bytes(code.lo).buffer), both = new Uint32Array(2 * high.length);
    for (let i = 0; i < high.length; i++) { both[2 * i] = low[i]; both[2 * i + 1] = high[i]; }  // little-endian
    return new Float64Array(both.buffer);
  };
  // What explorer.js reads from layout.meta: float64 as base64.
  const base64 = (array) => {
    const raw = new Uint8Array(array.buffer);
    let text = "";
    for (let i = 0; i < raw.length; i += 8192) text += String.fromCharCode.apply(null, raw.subarray(i, i + 8192));
    return window.btoa(text);
  };
  const decoded = {}, encoded = {};
  const array = (key) => decoded[key] || (decoded[key] = decodeArray(DATA.arrays[key]));
  const meta64 = (key) => encoded[key] || (encoded[key] = base64(array(key)));

  // ---- The controls ----
  const $ = (id) => document.getElementById(id);
  const radio = (name) => document.querySelector(`input[name="${name}"]:checked`).value;
  const setRadio = (name, value) => { for (const r of document.getElementsByName(name)) r.checked = r.value === value; };
  const strategyBoxes = () => [...document.querySelectorAll('input[name="strategies"]')];
  // The view: the link fields this file draws, at the app's defaults until the link is read (below).
  const state = {params: {}};
  for (const [key, fallback] of DATA.fields) {
    if (PARAMS.includes(key)) state.params[key] = fallback;
    else if (!(key in DATA.fixed)) state[key] = Array.isArray(fallback) ? [...fallback] : fallback;
  }
  const readControls = () => {
    // The strategies in the order they were ticked (a link's own order kept), as the app's checkbox group has them.
    const ticked = strategyBoxes().filter((box) => box.checked).map((box) => box.value);
    const strategies = [...state.strategies.filter((name) => ticked.includes(name)),
                        ...ticked.filter((name) => !state.strategies.includes(name))];
    Object.assign(state, {schedule: $("schedule").value, target: radio("target"), x: radio("x"), view: radio("view"),
                          log_y: $("log_y").checked, sampler: $("sampler").value, strategies});
  };
  const writeControls = () => {
    $("schedule").value = state.schedule;
    $("sampler").value = state.sampler;
    $("log_y").checked = state.log_y;
    for (const name of ["target", "x", "view"]) setRadio(name, state[name]);
    for (const box of strategyBoxes()) box.checked = state.strategies.includes(box.value);
    for (const name of PARAMS) {
      $(`box-${name}`).value = String(state.params[name]);
      const range = $(`range-${name}`);
      if (range) range.value = String(state.params[name]);
    }
    const logGamma = $("param-gamma-log");  // the log-scale γ slider (app/static/gamma_log.js)
    logGamma.value = String(Math.log10(state.params.gamma));
    logGamma.setAttribute("aria-valuetext", `γ = ${state.params.gamma}`);
  };
  // Only the ticked strategies' parameters are shown (γ with its log-scale slider), as in the app.
  const showParameters = () => {
    const shown = new Set(state.strategies.flatMap((name) => DATA.strategies[name].meta.params));
    for (const name of PARAMS) $(`${DATA.ids.param_prefix}${name}`).hidden = !shown.has(name);
    $("gamma-log").hidden = !shown.has("gamma");
  };
  const inRange = (name, value) => {
    const [low, high, exclusive] = DATA.meta.param_ranges[name];
    return Number.isFinite(value) && value <= high && (exclusive ? value > low : value >= low);
  };

  // ---- The link: read (app.urlstate.read_query's checks) and written (app/static/links.js) ----
  const FIELD = Object.fromEntries(DATA.fields.map(([key, fallback, rule]) => [key, {fallback, rule}]));
  const parse = (rule, raw) => {  // throws with the app's reason where the app refuses the value
    if (rule.kind === "choice") {
      if (!rule.allowed.includes(raw)) throw new Error(`allowed: ${rule.allowed.join(", ")}`);
      return raw;
    }
    if (rule.kind === "list") {
      const items = raw.split(rule.separator).filter((item) => item);
      const bad = items.filter((item) => !rule.allowed.includes(item));
      const unknown = bad.map((b) => `'${b}'`).join(", ");
      if (bad.length) throw new Error(`unknown [${unknown}]; allowed: ${rule.allowed.join(", ")}`);
      return items;
    }
    if (rule.kind === "flag") {
      const lowered = raw.toLowerCase();
      if (["1", "true", "yes", "on"].includes(lowered)) return true;
      if (["0", "false", "no", "off"].includes(lowered)) return false;
      throw new Error(`allowed: ${rule.text[1]} or ${rule.text[0]}`);
    }
    const value = raw.trim() === "" ? NaN : Number(raw);
    if (Number.isNaN(value)) throw new Error(`not a number: '${raw}'`);
    if (!Number.isFinite(value) || value > rule.high || (rule.exclusive_low ? value <= rule.low : value < rule.low)) {
      throw new Error(`allowed: ${rule.low} to ${rule.high}`);
    }
    if (rule.integer && !Number.isInteger(value)) throw new Error("must be a whole number");
    return value;
  };
  const ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"};
  const escapeHtml = (text) => String(text).replace(/[&<>"]/g, (c) => ESCAPES[c]);
  const fieldText = (key, raw) => `<code>${escapeHtml(`${key}=${raw}`)}</code>`;
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? values[key] : whole));
  const readLink = (search) => {
    const notices = [], others = [];
    for (const [key, raw] of new URLSearchParams(search)) {
      const field = FIELD[key];
      if (!field) { others.push(fieldText(key, raw)); continue; }
      let value;
      try { value = parse(field.rule, raw); } catch (error) {
        notices.push(fill(DATA.notices.refused, {field: fieldText(key, raw), error: escapeHtml(error.message)}));
        continue;
      }
      if (key in DATA.fixed) {
        if (value !== field.fallback) {
          notices.push(fill(DATA.notices.fixed, {field: fieldText(key, raw), reason: escapeHtml(DATA.fixed[key])}));
        }
      } else if (PARAMS.includes(key)) state.params[key] = value;
      else state[key] = value;
    }
    if (others.length) notices.push(fill(DATA.notices.other, {fields: others.join(", ")}));
    return notices;
  };
  const linkValues = () => DATA.fields.map(([key, fallback]) => {
    if (PARAMS.includes(key)) return state.params[key];
    return DATA.fixed[key] !== undefined ? fallback : state[key];
  });
  const writeLink = () => {
    const query = window.minsnrWriteQuery(DATA.fields, "", linkValues());
    $("explorer-link").value = window.location.href.split(/[?#]/)[0] + (query ? `?${query}` : "");
  };

  // ---- The figure the server would send for these settings (app.explorer.build_explorer), without its points ----
  const figure = () => {
    const schedule = DATA.schedules[state.schedule], process = schedule.process;
    const meta = {
      ...DATA.meta, snr: meta64(schedule.snr), density: meta64(schedule.density),
      factor: state.sampler === "uniform" ? null : meta64(schedule.factors[state.sampler]),
      v_scale: state.target === "v" ? meta64(schedule.v_scale) : null,
      target: state.target, x_axis: state.x, view: state.view, log_y: state.log_y, params: {...state.params},
      strategies: state.strategies.map((name) => DATA.strategies[name].meta),
    };
    const base = DATA.layout, titles = DATA.titles;
    const layout = {
      ...base, meta, shapes: [], annotations: [], title: {text: titles.schedule[state.schedule]},
      xaxis: {...base.xaxis, title: {text: titles.x[process][state.x]}},
      yaxis: {...base.yaxis, type: state.log_y ? "log" : "linear",
              title: {text: titles.y[process][state.target][state.view][state.sampler === "uniform" ? 0 : 1]}},
    };
    const data = state.strategies.map((name) => ({...DATA.strategies[name].trace, x: [], y: [], customdata: []}));
    if (state.sampler !== "uniform" && state.view === "weight") {  // the sampler's own T·p(t), dotted
      const snr = array(schedule.snr), factor = array(schedule.factors[state.sampler]), x = [], y = [];
      for (let i = 0; i < snr.length; i++) {
        if ((state.x === "t" || snr[i] > 0) && !(state.log_y && !(factor[i] > 0))) {
          x.push(state.x === "t" ? i : Math.log(snr[i]));
          y.push(factor[i]);
        }
      }
      data.push({...DATA.sampler_traces[state.sampler], x, y});
    }
    return {data, layout};
  };

  // build_explorer's notices, from what explorer.js's redraw reports of each curve.
  const writeNotices = () => {
    const N = DATA.notices, notes = (chart._minsnr && chart._minsnr.notes) || [], lines = [];
    const snr = array(DATA.schedules[state.schedule].snr);
    if (state.x === "log_snr" && snr.some((s) => !(s > 0))) lines.push(N.no_lambda);
    for (const note of notes) {
      if (note.undefined_at_zero) lines.push(fill(N.undefined_at_zero, {display: note.display}));
      if (note.no_sampler) {
        lines.push(fill(N.no_sampler, {display: note.display, mean: note.mean === Infinity ? N.infinite : N.zero}));
      }
      if (note.zero_on_log) lines.push(fill(N.zero_on_log, {display: note.display}));
    }
    const list = $("explorer-notices"), text = [...new Set(lines)];
    if (list.dataset.text !== JSON.stringify(text)) {  // an unchanged list is not announced again
      list.dataset.text = JSON.stringify(text);
      list.replaceChildren(...text.map((line) => Object.assign(document.createElement("li"), {textContent: line})));
    }
  };
  // app.explorer.explain_strategies, paragraph by paragraph (Markdown made HTML by app.markdown_html.markdown_html).
  const writeExplanation = () => {
    const E = DATA.explain, process = DATA.schedules[state.schedule].process, parts = [];
    if (state.view === "effective") parts.push(E.effective);
    if (state.view === "sampler" || state.sampler !== "uniform") parts.push(E.sampler, E.samplers[state.sampler]);
    if (process === "rf") parts.push(E.rf);
    parts.push(E.conversion[process][state.target], ...state.strategies.map((name) => E.strategies[name]));
    $("explorer-explanation").innerHTML = parts.join("");
  };

  // The figure goes onto the chart's element without its points, as the app's server sends it, and explorer.js's
  // redraw computes the points and hands Plotly the whole figure: one Plotly draw per change.
  let queue = Promise.resolve(), installed = false;
  const drawNow = async () => {
    const {data, layout} = figure();
    Object.assign(chart, {data, layout});
    if (!installed) {  // explorer.js finds the chart by its holder's id and the parameters' boxes by their prefix
      window.Plotly.setPlotConfig(CONFIG);
      window.minsnr.installExplorer({plot: DATA.ids.plot, first_paint: "", param_prefix: DATA.ids.param_prefix,
                                     summary: DATA.ids.summary});
      installed = true;
    }
    if (!window.minsnrExplorer.redraw({})) throw new Error("explorer.js did not draw the figure");
    plotHolder.classList.add("drawn");
    writeNotices();
  };
  // Each change draws once, in order (a draw that starts while another runs would use a half-built chart).
  const draw = () => {
    showParameters();
    writeExplanation();
    writeLink();
    queue = queue.then(() => loaded).then(drawNow).catch((error) => {
      console.error("minsnr: the chart could not be drawn", error);
      $("explorer-notices").textContent = `The chart could not be drawn: ${error.message}`;
    });
    return queue;
  };

  // A parameter box or slider, after explorer.js has redrawn the chart for it (it hands the input event on after the
  // paint): the other control of the pair follows, and a value the app would refuse is said, not drawn.
  const onParameter = (event) => {
    const target = event.target, holder = target.closest && target.closest(`[id^="${DATA.ids.param_prefix}"]`);
    if (!holder || (target.dataset && target.dataset.box)) return;
    const name = holder.id.slice(DATA.ids.param_prefix.length), value = Number(target.value);
    const error = $(`error-${name}`), box = $(`box-${name}`), range = $(`range-${name}`);
    if (target.value === "" || !inRange(name, value)) {
      box.setAttribute("aria-invalid", "true");
      error.textContent = `Not drawn: allowed ${error.dataset.allowed}.`;
      return;
    }
    box.removeAttribute("aria-invalid");
    error.textContent = "";
    if (target !== box) box.value = target.value;
    if (range && target !== range) range.value = target.value;
    state.params[name] = value;
    // Drawn here unless explorer.js's own listener already has (before the first chart, the first draw uses it).
    const drawn = chart._minsnr && chart._minsnr.params[name] === value;
    if (installed && !drawn) window.minsnrExplorer.redraw({[name]: value});
    writeLink();
    writeNotices();
  };
  document.addEventListener("input", onParameter);
  document.addEventListener("change", onParameter);
  for (const element of document.querySelectorAll(".settings select, .settings input")) {
    element.addEventListener("change", () => { readControls(); draw(); });
  }
  $("copy-link").addEventListener("click", async () => {
    const link = $("explorer-link");
    try {
      await window.navigator.clipboard.writeText(link.value);
      $("copy-status").textContent = "Link copied.";
    } catch {
      link.select();
      $("copy-status").textContent = "Select the link and copy it (Ctrl+C or ⌘C).";
    }
  });

  // The link's view, then the first chart.
  const linkNotices = readLink(window.location.search);
  $("link-notices").innerHTML = linkNotices.length
    ? `<h2>About this link</h2><ul>${linkNotices.map((n) => `<li>${n}</li>`).join("")}</ul>` : "";
  writeControls();
  const ready = draw().then(() => {
    document.documentElement.dataset.ready = String(performance.now());
  });

  // For tests and benchmarks: set any settings (as a link would) and wait for the chart.
  const set = (partial) => {
    const {params, ...rest} = partial || {};
    Object.assign(state, rest);
    Object.assign(state.params, params || {});
    writeControls();
    return draw();
  };
  window.minsnrStatic = {ready, state, set, arrays: (name) => {
    const s = DATA.schedules[name];
    return {snr: array(s.snr), density: array(s.density), v_scale: array(s.v_scale),
            factors: Object.fromEntries(Object.entries(s.factors).map(([k, key]) => [k, array(key)]))};
  }};
})();
