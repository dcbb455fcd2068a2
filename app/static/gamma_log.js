/* global element */
// The log-scale γ slider above a γ box (app.explorer_js.gamma_log_html: the explorer's, the Train and Compare tabs'):
// Gradio's sliders are linear, where the γ values that matter most crowd into the start of the track. Moving it
// writes γ into the box (in the explorer that redraws the chart and updates the link); typing into the box moves it.
//
// This file is the body of the slider's js_on_load (app.explorer_js.GAMMA_LOG_JS): Gradio runs it with `element`,
// the component's element, each time the γ control is shown. The slider names its box (data-box) and the ticks it
// snaps to (data-snap); both come from Python.
const range = element.querySelector("input[type=range][data-box]");
const boxId = range.dataset.box;
const box = () => document.querySelector("#" + boxId + " input[type=number]");
const ticks = range.dataset.snap.split(",").map(Number);
range.addEventListener("input", () => {
  let gamma = Math.pow(10, Number(range.value));
  for (const tick of ticks) if (Math.abs(Math.log10(gamma / tick)) < 0.02) gamma = tick;  // snap to a tick
  gamma = Number(gamma.toPrecision(2));
  range.setAttribute("aria-valuetext", "γ = " + gamma);
  const target = box();
  if (!target) return;
  target.value = String(gamma);
  target.dispatchEvent(new Event("input", {bubbles: true}));
});
// The keyboard: the arrow keys move γ to the next or previous value of the data-keys ladder (1, 1.2, 1.5, 2 … in
// each decade), Page Up/Down by a decade, Home/End to the ends; a step of the range's own 0.001 in log10 γ would
// leave the γ box, which shows two digits, where it was.
const ladder = [];
for (let decade = Math.floor(Number(range.min)); decade <= Math.ceil(Number(range.max)); decade++) {
  for (const mantissa of range.dataset.keys.split(",").map(Number)) {
    const value = Number((mantissa * Math.pow(10, decade)).toPrecision(3));
    const log = Math.log10(value);
    if (log >= Number(range.min) - 1e-9 && log <= Number(range.max) + 1e-9) ladder.push(value);
  }
}
const setGamma = (gamma) => {
  range.value = String(Math.log10(gamma));
  range.setAttribute("aria-valuetext", "γ = " + gamma);
  const target = box();
  if (!target) return;
  target.value = String(gamma);
  target.dispatchEvent(new Event("input", {bubbles: true}));
  target.dispatchEvent(new Event("change", {bubbles: true}));
};
range.addEventListener("keydown", (event) => {
  // The range keeps log10 γ to its step (0.001, 0.23 % in γ): a value within 1 % is the same rung of the ladder,
  // whose rungs are at least 20 % apart.
  const current = Math.pow(10, Number(range.value));
  const above = ladder.filter((g) => g > current * 1.01);
  const below = ladder.filter((g) => g < current / 1.01);
  const decade = (sign) => Math.min(Math.max(current * Math.pow(10, sign), ladder[0]), ladder[ladder.length - 1]);
  const moves = {
    ArrowRight: above[0], ArrowUp: above[0], ArrowLeft: below[below.length - 1], ArrowDown: below[below.length - 1],
    PageUp: decade(1), PageDown: decade(-1), Home: ladder[0], End: ladder[ladder.length - 1],
  };
  if (!(event.key in moves)) return;
  event.preventDefault();  // not the range's own step
  if (moves[event.key] !== undefined) setGamma(Number(moves[event.key].toPrecision(3)));
});
range.addEventListener("change", () => {
  const target = box();
  if (target) target.dispatchEvent(new Event("change", {bubbles: true}));
});
const follow = (event) => {  // the box typed into: follow it
  if (event.target === range || !(event.target.closest && event.target.closest("#" + boxId))) return;
  const value = Number(event.target.value);
  if (value > 0) range.value = String(Math.log10(value));
};
// This runs again each time the γ control is shown again: one listener per box, the newest slider's.
window.minsnrGammaFollow = window.minsnrGammaFollow || {};
if (window.minsnrGammaFollow[boxId]) document.removeEventListener("input", window.minsnrGammaFollow[boxId], true);
window.minsnrGammaFollow[boxId] = follow;
document.addEventListener("input", follow, true);
// The γ box's own change event (also when a link, preset or reset sets it) moves the slider whose id it names
// (app.explorer_js.gamma_follow_js).
window.minsnr = Object.assign(window.minsnr || {}, {
  followGamma: (rangeId, value) => {
    const slider = document.getElementById(rangeId);
    if (slider && Number(value) > 0) slider.value = String(Math.log10(Number(value)));
  },
});
