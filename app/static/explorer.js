// The explorer's curves redrawn in the page while a strategy parameter (γ, k…) moves: no server round trip.
//
// The figure the server drew carries, in layout.meta (app.explorer.browser_meta), the schedule's SNR and log-SNR
// density per step, each ticked strategy's weight as the registry's JavaScript expression, and how Python writes
// numbers, legend entries and the clamp band. redraw repeats app.explorer.build_explorer's per-trace rules (target
// conversion, the ε limit at SNR = 0, the per-unit-λ division, the effective weight, points a log axis cannot show,
// the clamp band) for new parameter values; tests/test_explorer_browser.py checks its curves against the Python ones
// for every strategy, target and view.
//
// This file is put into the page's head once, by the explorer's first-paint component (app/explorer_tab.py), whose
// js_on_load then calls window.minsnr.installExplorer(page) with the page's element ids (page.plot, page.first_paint,
// page.param_prefix, page.summary). Installing sets window.minsnrExplorer = {redraw, fromValues}: redraw(params)
// redraws the plot for these parameter values, and a listener calls it on every input event inside a parameter's
// slider, before Gradio's own (slower) event pipeline, and hands the event to Gradio once the redrawn chart has been
// painted. Each redraw also writes the chart in words (page.summary's text) as app.explorer.describe_explorer does,
// from the curves just drawn: the server is not asked. It keeps, in the chart's _minsnr.notes, what each curve left
// out (the cases for which build_explorer writes a notice), for a page that writes its notices itself
// (app/static/explorer_static.js, the explorer as one HTML file).
(() => {
  "use strict";

  const decode = (b64) => new Float64Array(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer);

  // Python's format(v, f".{digits}g").
  const g = (v, digits) => {
    if (v === 0) return "0";
    const r = Number(v.toPrecision(digits)), e = Math.floor(Math.log10(Math.abs(r)));
    if (e < -4 || e >= digits) {
      return r.toExponential(digits - 1).replace(/\.?0+e/, "e").replace(/e([+-])(\d)$/, "e$10$2");
    }
    return String(r);
  };

  // Python's template.format(**values) for the templates the meta carries ({name} fields, no format specs).
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? values[key] : whole));

  // The chart in words, as app.explorer.describe_explorer writes it from a figure, with the templates of meta.words:
  // where Min-SNR's clamp holds (SNR > γ), which curve is largest over which steps, the range of the weights. ``data``:
  // the traces drawn, the strategies' first, each with customdata [t, SNR].
  const describe = (meta, snr, data, layout, gamma) => {
    const words = meta.words, digits = words.digits;
    const nearly = (a, b) => Math.abs(a - b) <= words.tolerance * Math.max(Math.abs(a), Math.abs(b));
    const lines = [fill(words.head, {title: layout.title.text, quantity: layout.yaxis.title.text})];
    let first = null, last = null;
    for (let i = 0; i < snr.length; i++) {
      if (snr[i] > gamma) { if (first === null) first = i; last = i; }
    }
    const shownGamma = g(gamma, meta.text.digits);
    lines.push(first === null ? fill(words.no_clamp, {gamma: shownGamma})
      : fill(words.clamp, {gamma: shownGamma, log_gamma: g(Math.log(gamma), digits), first, last}));
    const curves = [];
    meta.strategies.forEach((st, index) => {
      const trace = data[index];
      if (!trace || !trace.customdata || !trace.customdata.length) return;
      const points = new Map();
      trace.customdata.forEach((c, i) => points.set(c[0], trace.y[i]));
      curves.push([st.display, points]);
    });
    if (curves.length >= 2) {
      const steps = [...new Set(curves.flatMap(([, points]) => [...points.keys()]))].sort((a, b) => a - b);
      const segments = [];
      for (const t of steps) {
        const here = curves.filter(([, points]) => points.has(t)).map(([name, points]) => [name, points.get(t)]);
        if (here.length < 2) continue;
        const top = Math.max(...here.map(([, w]) => w));
        const tied = here.filter(([, w]) => nearly(w, top)).map(([name]) => name);
        const names = tied.length > 1 ? fill(words.equal, {names: tied.join(words.tie)}) : tied[0];
        const previous = segments[segments.length - 1];
        if (previous && previous[2] === names && previous[1] === t - 1) previous[1] = t;
        else segments.push([t, t, names]);
      }
      const shown = segments.slice(0, words.max_segments);
      const text = shown.map(([a, b, names]) => {
        const one = g(snr[a], digits), other = g(snr[b], digits);
        return fill(words.segment, {steps: b > a ? fill(words.span, {first: a, last: b}) : String(a), names,
                                    snrs: b > a ? fill(words.snr_span, {first: one, last: other}) : one});
      }).join(words.segment_separator);
      const more = segments.length > shown.length ? fill(words.more, {count: segments.length - shown.length}) : "";
      if (shown.length) lines.push(fill(words.largest, {segments: text, more}));
    }
    const points = curves.flatMap(([name, values]) => [...values].map(([t, w]) => [name, t, w]));
    if (points.length) {
      let lowW = Infinity, highW = -Infinity;
      for (const [, , w] of points) { lowW = Math.min(lowW, w); highW = Math.max(highW, w); }
      const low = points.find(([, , w]) => nearly(w, lowW)), high = points.find(([, , w]) => nearly(w, highW));
      lines.push(fill(words.range, {low: g(lowW, digits), low_name: low[0], low_t: low[1], high: g(highW, digits),
                                    high_name: high[0], high_t: high[1]}));
    }
    return lines.join(" ");
  };

  const install = (page) => {
    if (window.minsnrExplorer) return;  // the component was shown again: its listeners are already there
    const plotSelector = `#${page.plot} .js-plotly-plot`, prefix = page.param_prefix;
    const paramHolder = `[id^="${prefix}"]`;
    const currentMeta = (div) => {
      const meta = div && div.layout && div.layout.meta;
      return meta && meta.minsnr === 1 ? meta : null;
    };

    const redraw = (overrides) => {
      const started = performance.now();
      const div = document.querySelector(plotSelector);
      const meta = currentMeta(div);
      if (!meta || !window.Plotly) return false;
      watch(div);
      if (!div._minsnr || div._minsnr.meta !== meta) {  // decoded once per server figure
        const snr = decode(meta.snr);
        div._minsnr = {meta, snr, density: decode(meta.density),
                       factor: meta.factor ? decode(meta.factor) : new Float64Array(snr.length).fill(1),  // uniform p(t)
                       vScale: meta.v_scale ? decode(meta.v_scale) : null, params: {...meta.params}};  // v target only
      }
      const state = div._minsnr, snr = state.snr, density = state.density, factor = state.factor, T = snr.length;
      const vScale = state.vScale, text = meta.text;
      for (const [name, value] of Object.entries(overrides || {})) {  // what the server would refuse is not drawn
        const [low, high, exclusive] = meta.param_ranges[name] || [-Infinity, Infinity, false];
        if (!Number.isFinite(value) || value > high || (exclusive ? value <= low : value < low)) return false;
      }
      Object.assign(state.params, overrides || {});
      const p = state.params;
      const hasZero = snr.some((s) => s === 0);
      const notes = [];
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
        let zeroOnLog = false;  // a point with weight <= 0 that the log axis leaves out
        for (let i = 0; i < T; i++) {
          const finite = snr[i] > 0;
          let keep = meta.x_axis === "t" || finite;
          let w;
          if (meta.view === "effective") {
            keep = keep && finite; w = finite ? weightIn("eps", i) * density[i] * factor[i] : 0;
          } else if (meta.view === "sampler") {
            keep = keep && Number.isFinite(tw[i]) && reproducible; w = keep ? factor[i] * tw[i] / mean : 0;
          } else { keep = keep && Number.isFinite(tw[i]); w = keep ? factor[i] * tw[i] : 0; }
          if (meta.log_y && keep && w <= 0) zeroOnLog = true;
          if (meta.log_y && !(w > 0)) keep = false;
          if (!keep) continue;
          x.push(meta.x_axis === "t" ? i : Math.log(snr[i]));
          y.push(w);
          custom.push([i, snr[i]]);
        }
        notes.push({display: st.display, undefined_at_zero: hasZero && !definedEverywhere, mean,
                    no_sampler: meta.view === "sampler" && !reproducible, zero_on_log: zeroOnLog});
        const legend = text.legend;
        const list = st.params.map((name) => fill(legend.param, {name, value: g(p[name], text.digits)}))
          .join(legend.separator);
        const name = fill(legend.entry, {display: st.display, params: list ? fill(legend.params, {list}) : "",
                                         mean: mean === Infinity ? text.infinite : g(mean, text.mean_digits)});
        return {...div.data[index], x, y, customdata: custom, name};
      }).concat(div.data.slice(meta.strategies.length));  // the sampler's own curve is unchanged
      state.notes = notes;
      const clamp = meta.clamp, gamma = p[clamp.param];
      let low = null, high = null;
      for (let i = 0; i < T; i++) {
        if (snr[i] > gamma) {
          const xi = meta.x_axis === "t" ? i : Math.log(snr[i] > 0 ? snr[i] : 1);
          low = low === null ? xi : Math.min(low, xi); high = high === null ? xi : Math.max(high, xi);
        }
      }
      const layout = {...div.layout, shapes: [], annotations: []};
      if (low !== null) {
        layout.shapes = [{...clamp.shape, x0: low, x1: high}];
        layout.annotations = [{...clamp.note, text: fill(clamp.text, {[clamp.param]: g(gamma, text.digits)}), x: low}];
      }
      const computed = performance.now();
      window.Plotly.react(div, data, layout);
      const words = page.summary && document.getElementById(page.summary);
      if (words) words.textContent = describe(meta, snr, data, layout, gamma);
      const ended = performance.now();
      div.dataset.redrawMs = String(ended - started);
      div.dataset.plotlyMs = String(ended - computed);  // Plotly's share of the redraw
      div.dataset.redrawEnd = String(ended);
      div.dataset.redraws = String(Number(div.dataset.redraws || 0) + 1);
      return true;
    };

    // Gradio's own handling of a redrawn value (its component state, the link) is main-thread work that waits until
    // the chart has been painted, and a drag's values reach it once per frame. Any change, key, blur or pointer-up
    // event first hands Gradio the values it has not seen, so it never acts on a stale one; a timer hands them over
    // where no frame comes (a hidden page).
    const pending = new Set();
    let replaying = false, round = 0;
    const handOver = () => {
      round += 1;  // the timers of this round no longer apply
      const targets = [...pending];
      pending.clear();
      replaying = true;
      try {
        for (const target of targets) if (target.isConnected) target.dispatchEvent(new Event("input", {bubbles: true}));
      } finally { replaying = false; }
    };
    const onInput = (event) => {
      if (replaying) return;
      if (event.target.dataset && event.target.dataset.box) return;  // a log-scale slider: its box's input follows
      const holder = event.target.closest && event.target.closest(paramHolder);
      const value = Number(event.target.value);
      if (!holder || event.target.value === "" || !Number.isFinite(value)) return;
      if (!redraw({[holder.id.slice(prefix.length)]: value})) return;  // not drawn here: Gradio handles it now
      event.stopImmediatePropagation();
      if (!pending.size) {
        const mine = round, due = () => { if (round === mine && pending.size) handOver(); };
        requestAnimationFrame(() => setTimeout(due, 0));  // after the frame's paint
        setTimeout(due, 100);
      }
      pending.add(event.target);
    };
    const flush = () => { if (pending.size) handOver(); };
    for (const type of ["change", "keydown", "blur", "focusout", "pointerup"]) document.addEventListener(type, flush, true);
    const fromValues = (values) => {  // the parameter sliders' values, in meta.param_names' order
      const div = document.querySelector(plotSelector);
      const meta = currentMeta(div);
      if (!meta) return;
      const names = meta.param_names, overrides = {};
      names.forEach((name, i) => { overrides[name] = Number(values[values.length - names.length + i]); });
      const drawn = div._minsnr && div._minsnr.meta === meta ? div._minsnr.params : meta.params;
      for (const target of pending) {  // a value Gradio has not been handed yet: the drawn one is newer
        const name = target.closest(paramHolder).id.slice(prefix.length);
        if (name in drawn) overrides[name] = drawn[name];
      }
      if (names.every((name) => drawn[name] === overrides[name])) return;  // already drawn by the input listener
      redraw(overrides);
    };
    document.addEventListener("input", onInput, true);
    // A figure from the server after a control change comes without the strategies' points ("skeleton", far fewer
    // bytes) and is drawn here from its meta, before the browser paints it. It was asked for with the parameter
    // values Gradio held then: a value moved since (typed during the request, or while the page still showed its
    // static first paint, app/first_paint.py) is drawn too.
    const syncWithBoxes = (div) => {
      const meta = currentMeta(div);
      if (!meta || (div._minsnr && div._minsnr.meta === meta)) return;  // not new: drawn here
      const overrides = {};
      for (const name of meta.param_names) {
        const box = document.querySelector(`#${prefix}${name} input[type=number]`);
        if (box && box.value !== "" && Number(box.value) !== meta.params[name]) overrides[name] = Number(box.value);
      }
      try {
        if (meta.skeleton) { if (!redraw(overrides)) redraw({}); }  // a box the server would refuse: its own values
        else if (Object.keys(overrides).length) redraw(overrides);
      } catch (error) { console.error("minsnr: the explorer could not draw its curves", error); }
    };
    const watch = (div) => {  // each later figure from the server (a chart mounted again gets a new element)
      if (div._minsnrWatched || !div.on) return;
      div._minsnrWatched = true;
      // A microtask: after Plotly's own drawing has returned, before the frame is painted (no empty chart is shown).
      div.on("plotly_afterplot", () => queueMicrotask(() => syncWithBoxes(div)));
    };
    const syncFirstChart = () => {
      const div = document.querySelector(plotSelector);
      if (!currentMeta(div) || !window.Plotly) return false;
      document.getElementById(page.first_paint)?.classList.add("replaced");  // also without CSS :has
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
  };

  window.minsnr = Object.assign(window.minsnr || {}, {installExplorer: install});
})();
