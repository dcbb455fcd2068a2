// The explorer's static first paint (app/first_paint.py) once Gradio's page stands.
//
// Put into the page's head once with app/static/explorer.js; the first-paint component's js_on_load calls
// window.minsnr.markFirstPaint(page). A page opened from a link that sets any of the explorer's settings
// (page.link_fields) draws another chart: its first paint of the default one is hidden (other query parameters,
// e.g. Gradio's theme, keep it). Either way the early paint in the page's own HTML, if any, is removed: Gradio's
// page now stands.
(() => {
  "use strict";

  const markFirstPaint = (page) => {
    const query = new URLSearchParams(window.location.search);
    if (page.link_fields.some((name) => query.has(name))) {
      document.getElementById(page.first_paint)?.classList.add("linked");
    }
    document.getElementById(page.early_paint)?.remove();
  };

  window.minsnr = Object.assign(window.minsnr || {}, {markFirstPaint});
})();
