"""The page on a phone (a screen narrower than :data:`NARROW_PX`): the explorer's chart and its γ control within the
first screen, the page's and the explorer's introductions folded under a one-line summary that opens on a tap.

On a wider screen a folded text reads as plain text (its summary line hidden, its content shown) where the browser
can style a closed ``<details>``'s content (``::details-content``); elsewhere it stays a ``<details>`` to open.
"""

from __future__ import annotations

import html

NARROW_PX = 700  # the app's narrow-screen width (app/main.py's explorer rule uses the same)
FOLD_CLASS = "fold-narrow"

# In the page's head (PHONE_HEAD), not in launch(css=...): Gradio rewrites that CSS, dropping @supports and
# prefixing every selector inside @media with its container (which leaves out the page's own padding). Gradio's
# rules for these elements weigh up to three classes, or an id and three classes for app/main.py's CSS:
# ":not(#phone-none)" (no element has that id) gives a rule here the weight of two ids where it must win.
PHONE_CSS = f"""
.{FOLD_CLASS} > summary {{ cursor: pointer; font-weight: 600; }}
@supports selector(::details-content) {{
  @media (min-width: {NARROW_PX + 1}px) {{
    .{FOLD_CLASS} > summary {{ display: none; }}
    .{FOLD_CLASS}::details-content {{ content-visibility: visible; display: block; }}
  }}
}}
/* An empty notice takes no room (and no gap) in the page's column. */
#url-notice:not(:has(p, li)), #explorer-notices:not(:has(p, li)) {{ display: none; }}
@media (max-width: {NARROW_PX}px) {{
  /* Gradio's 32 px sides would leave the chart 326 px of a 390 px screen. */
  .main.fillable:not(#phone-none) {{ padding: 12px; }}
  #app-title h1 {{ font-size: 1.1rem; line-height: 1.3; margin: 0 0 0.2em; }}
  .tab-container > button[role="tab"]:not(#phone-none) {{ padding: 0 8px; }}  /* the five tabs in one row */
  #app-title p, #explorer-intro p {{ margin-bottom: 0.4em; }}
  #explorer-intro h3 {{ display: none; }}
  /* The explorer's two columns opened into one list: the chart, γ (the parameters of the ticked strategies) and its
     log scale, then the other controls, then the chart in words, the link and the explanation. */
  #explorer-row:not(#phone-none) {{ flex-direction: column; }}
  #explorer-row > .column, #explorer-row > .column > .form {{ display: contents; }}
  #explorer-row > .column > *, #explorer-row > .column > .form > * {{ order: 4; }}
  #explorer-row > .column:last-child > * {{ order: 5; }}
  #explorer-row #explorer-notices, #explorer-row #explorer-first-paint, #explorer-row #explorer-plot {{ order: 1; }}
  #explorer-row > .column > .form > [id^="param-"] {{ order: 2; }}
  #explorer-row #gamma-log {{ order: 3; }}
}}
"""
if "</style" in PHONE_CSS.lower():
    raise ValueError("PHONE_CSS holds '</style'")
PHONE_HEAD = f"<style>\n{PHONE_CSS}</style>"


def fold_narrow(markdown: str, summary: str) -> str:
    """``markdown`` with its first line (a heading) kept and the rest inside a ``<details>`` whose summary line is
    ``summary``: folded on a phone, shown as it is on a wider screen (:data:`PHONE_CSS`)."""
    head, _, rest = markdown.strip().partition("\n")
    # Blank lines around the body: the Markdown inside the HTML block is rendered as Markdown.
    return (f'{head}\n\n<details class="{FOLD_CLASS}"><summary>{html.escape(summary)}</summary>\n\n{rest.strip()}\n\n'
            "</details>")
