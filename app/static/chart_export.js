// A chart's downloads, made in the page from the chart as it is drawn: its data as CSV, its picture as PNG or SVG.
//
// Put into the page's head once, with app/static/explorer.js (app/explorer_js.py). Each chart's toolbar buttons
// (app.charts.chart) call window.minsnr.exportChart(id, format) with the chart's element id and "csv", "png" or
// "svg". The figure names its file and its CSV columns in layout.meta.export (app.charts.export_spec): {name, x, y,
// custom}; a {param} field of the name is filled with that strategy parameter's value as drawn (the explorer redraws
// its curves in the page while γ moves: app/static/explorer.js keeps the drawn values in the chart's _minsnr).
// The CSV is tidy: one row per point of each curve (curve, x, the customdata columns named, y); a filled band is an
// outline, not a curve, and is left out.
(() => {
  "use strict";

  const TYPED = {f8: Float64Array, f4: Float32Array, i1: Int8Array, u1: Uint8Array, u1c: Uint8ClampedArray,
                 i2: Int16Array, u2: Uint16Array, i4: Int32Array, u4: Uint32Array};

  // A trace's array as plain rows: a list, a typed array, or plotly's base64 form {dtype, bdata, shape}.
  const rows = (value) => {
    if (value === null || value === undefined) return [];
    if (Array.isArray(value) || ArrayBuffer.isView(value)) return Array.from(value, (v) => (ArrayBuffer.isView(v) ? Array.from(v) : v));
    if (typeof value === "object" && typeof value.bdata === "string" && TYPED[value.dtype]) {
      const bytes = Uint8Array.from(atob(value.bdata), (c) => c.charCodeAt(0));
      const flat = Array.from(new TYPED[value.dtype](bytes.buffer));
      const shape = typeof value.shape === "string" ? value.shape.split(",").map(Number) : value.shape;
      if (!shape || shape.length < 2) return flat;
      const width = shape[1], out = [];
      for (let i = 0; i < flat.length; i += width) out.push(flat.slice(i, i + width));
      return out;
    }
    return [];
  };

  const cell = (value) => {
    if (typeof value === "number") return Number.isFinite(value) ? String(value) : "";
    const text = String(value === null || value === undefined ? "" : value);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };

  const csv = (div, spec) => {
    const custom = spec.custom || [];
    const header = ["curve", spec.x, ...custom.filter((c) => c !== null), spec.y];
    const lines = [header.map(cell).join(",")];
    for (const trace of div.data) {
      if (trace.fill && trace.fill !== "none") continue;
      const x = rows(trace.x), y = rows(trace.y), extra = rows(trace.customdata);
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const more = custom.map((c, j) => [c, extra[i] === undefined ? "" : extra[i][j]]).filter(([c]) => c !== null);
        lines.push([trace.name || "", x[i], ...more.map(([, v]) => v), y[i]].map(cell).join(","));
      }
    }
    return lines.join("\r\n") + "\r\n";
  };

  // The file name without extension: the spec's name, each {param} filled with the value drawn.
  const fileName = (div, spec) => {
    const meta = div.layout.meta;
    const values = {...(meta.params || {}), ...((div._minsnr && div._minsnr.params) || {})};
    return spec.name.replace(/\{(\w+)\}/g, (whole, key) => (
      typeof values[key] === "number" ? String(Number(values[key].toPrecision(6))) : whole));
  };

  const save = (href, name) => {
    const link = document.createElement("a");
    link.href = href;
    link.download = name;
    link.style.display = "none";
    document.body.appendChild(link);
    link.click();
    link.remove();
  };

  const exportChart = (id, format) => {
    const div = document.querySelector(`#${id} .js-plotly-plot`);
    const spec = div && div.layout && div.layout.meta && div.layout.meta.export;
    if (!spec || !window.Plotly) return false;
    const name = fileName(div, spec);
    if (format === "csv") {
      save("data:text/csv;charset=utf-8," + encodeURIComponent(csv(div, spec)), `${name}.csv`);
      return true;
    }
    const box = div.getBoundingClientRect();
    window.Plotly.downloadImage(div, {format, filename: name, width: Math.round(box.width), height: Math.round(box.height),
                                      scale: format === "png" ? 2 : 1})
      .catch((error) => console.error("minsnr: the chart could not be saved as an image", error));
    return true;
  };

  // A text the server computed (the explorer's weight table) saved as a file, made in the page: no file is written
  // on the server for it.
  const saveText = (name, text, type = "text/csv") => {
    if (!name || typeof text !== "string" || !text) return false;
    const url = URL.createObjectURL(new Blob([text], {type}));
    save(url, name);
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    return true;
  };

  window.minsnr = Object.assign(window.minsnr || {}, {exportChart, saveText});
})();
