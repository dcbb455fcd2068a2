"""The explorer's Markdown explanations as HTML for the exported file, which has no Markdown renderer: the few marks
those texts use, and nothing else."""

from __future__ import annotations

import html
import re


def inline_html(text: str) -> str:
    """One Markdown block's inline marks as HTML: $LaTeX$ as its source in <code> (no typesetting without MathJax),
    `code`, **bold**, *italic*, and a line break where a line ends in two spaces."""
    out = []
    for piece in re.split(r"(\$[^$]+\$|`[^`]+`)", text):
        if len(piece) > 1 and piece[0] == piece[-1] and piece[0] in "$`":
            out.append(f"<code>{html.escape(piece[1:-1], quote=False)}</code>")
            continue
        piece = html.escape(piece, quote=False)
        piece = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", piece, flags=re.S)
        piece = re.sub(r"\*(.+?)\*", r"<em>\1</em>", piece, flags=re.S)
        out.append(piece.replace("  \n", "<br>").replace("\n", " "))
    return "".join(out)


def markdown_blocks(text: str) -> list[str]:
    """A Markdown text's blocks (what blank lines separate)."""
    return [block.strip("\n") for block in re.split(r"\n[ \t]*\n", text) if block.strip()]


def markdown_html(blocks: str | list[str]) -> str:
    """The explorer's Markdown explanations as HTML, block by block: a raw HTML block (the folded <details> of
    app.explorer.explain_strategies) as it is, a list of "- " lines as <ul>, any other block a paragraph."""
    out = []
    for block in markdown_blocks(blocks) if isinstance(blocks, str) else blocks:
        lines = block.split("\n")
        if re.match(r"</?[a-z]+[ >]", block):
            out.append(block)
        elif all(line.startswith(("- ", "  ")) for line in lines) and lines[0].startswith("- "):
            items = re.split(r"\n(?=- )", block)
            out.append("<ul>" + "".join(f"<li>{inline_html(item[2:])}</li>" for item in items) + "</ul>")
        else:
            out.append(f"<p>{inline_html(block)}</p>")
    return "".join(out)
