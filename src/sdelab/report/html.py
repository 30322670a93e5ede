"""report.md as one self-contained HTML page (markdown-it-py): tables as tables, and the plots sdelab drew itself
embedded as data. The page reads no file: it embeds the PNG bytes the report builder hands it, under the names the
builder wrote into the markdown; any other image reference stays text, links and link definitions are not parsed
(sdelab's reports have none), and raw HTML is escaped, so nothing that reaches a report (a study name, a design,
a model's output) can make it read a file, point to one or run a script."""
from __future__ import annotations

import base64
import html

from markdown_it import MarkdownIt

STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}table{border-collapse:collapse;"
         "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}")


def to_html(md: str, plots: dict[str, bytes]) -> str:
    """`plots`: image reference in the markdown (e.g. 'plots/scores.png') -> the PNG bytes sdelab drew."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table").disable(["link", "autolink", "reference"])

    def image(renderer, tokens, idx, options, env):
        tok = tokens[idx]
        alt = html.escape(tok.content)
        png = plots.get(tok.attrGet("src") or "")
        if not isinstance(png, bytes):
            return alt
        return f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}' alt='{alt}'>"

    parser.add_render_rule("image", image)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>sdelab report</title><style>" + STYLE +
            "</style></head><body>\n" + parser.render(md) + "</body></html>\n")
