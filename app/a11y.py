"""What makes the page accessible (WCAG 2.1 AA), handed to ``launch`` by app/main.py: the theme's colours
(:data:`THEME`), and the page's head (:data:`A11Y_HEAD`) with the focus ring and reduced-motion CSS
(app/static/a11y.css) and a script that repairs Gradio's markup (app/static/a11y.js). tests/test_accessibility.py
checks the page with axe-core, the keyboard alone and reduced motion."""

from __future__ import annotations

import gradio as gr

from .explorer_js import STATIC, read_script

# Gradio's Default theme (its fonts are served by the app itself: nothing is fetched from another machine) with the
# colours that fail AA contrast replaced. Each ratio is against white, the page's background.
THEME = gr.themes.Default().set(
    body_text_color_subdued="*neutral_600",  # sliders' min/max, the footer: #52525b, 7.7:1 (was #bbbbc2, 1.9:1)
    # White text on the primary (Start) button: orange-700 #c2410c, 5.2:1 (orange-500 was 2.8:1).
    button_primary_background_fill="*primary_700",
    button_primary_background_fill_hover="*primary_800",
    button_primary_background_fill_dark="*primary_700",
    button_primary_background_fill_hover_dark="*primary_800",
    # White text on the Stop button: red-700, 6.5:1 (red-500 was 3.8:1).
    button_cancel_background_fill="#b91c1c",
    button_cancel_background_fill_hover="#991b1b",
    button_cancel_background_fill_dark="#b91c1c",
    button_cancel_background_fill_hover_dark="#991b1b",
    # The selected tab's text (4.5:1 needed), a ticked box's fill and a slider's track (3:1): orange-700, 5.2:1 (was
    # 2.8:1). The dark theme's is orange-500 (app/static/a11y.css).
    color_accent="*primary_700",
)

A11Y_CSS = (STATIC / "a11y.css").read_text(encoding="utf-8")
if "</style" in A11Y_CSS.lower():
    raise ValueError("app/static/a11y.css holds '</style'")
# In the head, not in launch(css=...): Gradio rewrites that CSS's selectors (see the file's header).
A11Y_HEAD = f"<style>\n{A11Y_CSS}</style><script>\n{read_script('a11y.js')}</script>"
