// Accessibility repairs of Gradio's own markup and keyboard handling (WCAG 2.1; tests/test_accessibility.py checks
// them): empty output boxes named properly, the arrow keys along the tab bar, dropdown lists that close on Tab.
//
// Gradio draws an empty plot, image or file box as <div class="empty" aria-label="Empty value"> with no role, and an
// aria-label on a plain div is not announced (axe: aria-prohibited-attr). Such a box is an icon that stands for "no
// value yet": role="img" makes its label the image's name. Gradio draws these boxes whenever a tab is opened or an
// output is cleared, hence the observer.
//
// This file goes into the page's head once (app.a11y.A11Y_HEAD, passed to launch(head=...) by app/main.py).
(() => {
  "use strict";

  const SELECTOR = "div.empty[aria-label]:not([role])";
  // A file box's upload button says "Drop File Here - or - Click to Upload" but is named "Click to upload or drop
  // files" (axe: label-content-name-mismatch, a speech user says what they see): named by its text and its box's label.
  const UPLOAD = "button.upload-container";
  const all = (root, selector) => {
    const found = root.matches && root.matches(selector) ? [root] : [];
    if (root.querySelectorAll) found.push(...root.querySelectorAll(selector));
    return found;
  };
  const repair = (root) => {
    for (const box of all(root, SELECTOR)) box.setAttribute("role", "img");
    for (const button of all(root, UPLOAD)) {
      const label = button.closest(".block") && button.closest(".block").querySelector("label[data-testid=block-label]");
      const name = [button.textContent.replace(/\s+/g, " ").trim(), label ? label.textContent.trim() : ""]
        .filter(Boolean).join(": ");
      if (name && button.getAttribute("aria-label") !== name) button.setAttribute("aria-label", name);  // no loop
    }
  };
  new MutationObserver((records) => {
    for (const record of records) {
      if (record.type === "attributes") repair(record.target);
      else for (const node of record.addedNodes) if (node.nodeType === 1) repair(node);
    }
  }).observe(document.documentElement, {childList: true, subtree: true, attributes: true,
                                        attributeFilter: ["aria-label", "role", "class"]});
  repair(document);

  // The tab bar: Gradio makes each tab a Tab stop that Enter or Space opens, but the arrow keys do nothing, where a
  // role="tablist" promises them (WAI-ARIA's tabs pattern). Left/Right move the focus to the previous/next tab
  // (wrapping), Home/End to the first/last; Enter or Space still opens it (a tab's content can be slow to build).
  const MOVES = {ArrowLeft: -1, ArrowRight: 1, Home: "first", End: "last"};
  document.addEventListener("keydown", (event) => {
    const tab = event.target.closest && event.target.closest('[role="tab"]');
    const list = tab && tab.closest('[role="tablist"]');
    if (!list || !(event.key in MOVES) || event.altKey || event.ctrlKey || event.metaKey) return;
    const tabs = [...list.querySelectorAll('[role="tab"]')].filter((t) => !t.disabled && t.offsetParent !== null);
    const here = tabs.indexOf(tab), move = MOVES[event.key];
    if (here < 0) return;
    const next = move === "first" ? 0 : move === "last" ? tabs.length - 1 : (here + move + tabs.length) % tabs.length;
    event.preventDefault();
    tabs[next].focus();
  });

  // A dropdown left with Tab or Shift+Tab: Gradio's key handler runs after a tick, once the focus has already moved
  // on, and opens the dropdown's list again as if a letter had been typed; that list then stays open over the
  // controls below it. Tab only moves the focus, so Gradio need not see it: it is stopped here, before Gradio's
  // handler (a listener on the page's root) sees it; the browser still moves the focus.
  window.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.key === "Tab" && target.getAttribute && target.getAttribute("role") === "combobox") event.stopPropagation();
  }, true);
})();
