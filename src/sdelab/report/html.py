"""report.md as one self-contained HTML page (markdown-it-py): tables as tables, and the plots sdelab drew itself
embedded as data; any other image reference stays text, and raw HTML in the markdown is escaped, so nothing that
reaches a report (a study name, a design, a model's output) can make it read a file or run a script."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from markdown_it import MarkdownIt

STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}table{border-collapse:collapse;"
         "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}")


def to_html(md: str, plots: dict[str, Path]) -> str:
    """`plots`: image reference in the markdown (e.g. 'plots/scores.png') -> the PNG file sdelab wrote."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")

    def image(renderer, tokens, idx, options, env):
        tok = tokens[idx]
        alt = html.escape(tok.content)
        path = plots.get(tok.attrGet("src") or "")
        if path is None:
            return alt
        return f"<img src='data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}' alt='{alt}'>"

    parser.add_render_rule("image", image)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>sdelab report</title><style>" + STYLE +
            "</style></head><body>\n" + parser.render(md) + "</body></html>\n")
