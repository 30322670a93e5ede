"""report.md as one self-contained HTML page (markdown-it-py) that opens offline: the answer first, the evidence a
click below.

The page: the title and intro, then the headline section (`id="headline"`, open), a table of contents, and every
other `## ` section folded in a `<details>` element. Tables scroll sideways inside their section instead of
widening the page. The plots sdelab drew itself are embedded as data (SVG or PNG bytes handed over by the report
builder under the names it wrote into the markdown); any other image reference stays text. Links and link
definitions are not parsed (the table of contents is sdelab's own, to ids it numbers itself) and raw HTML is
escaped, so nothing that reaches a report (a study name, a design, a model's output) can make the page read a file,
point to one or run a script. A sample block (samples.FENCE_INFO) is escaped like any code, then its trained text
(between the markers samples.marked wrote) is highlighted."""
from __future__ import annotations

import base64
import html

from markdown_it import MarkdownIt

from sdelab.report.samples import CLOSE, FENCE_INFO, OPEN

MIME = {".svg": "image/svg+xml", ".png": "image/png"}
STYLE = ("body{font-family:system-ui,sans-serif;max-width:1150px;margin:auto;padding:0 1em 2em;line-height:1.4}"
         "table{border-collapse:collapse;font-size:13px;display:block;overflow-x:auto;max-width:100%}"
         "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}th{background:#f4f4f4}"
         "img{max-width:100%}#headline{border:2px solid #2a7;border-radius:6px;padding:0 1em 1em;margin:1em 0}"
         "#headline table{font-size:14px}details{border-top:1px solid #ddd;padding:.3em 0}"
         "summary{cursor:pointer;font-size:1.2em;font-weight:600;padding:.3em 0}"
         "nav ol{columns:2;font-size:14px}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;white-space:pre-wrap}"
         "mark{background:#cfc}")


def _parser(plots: dict[str, bytes]) -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False}).enable("table").disable(["link", "autolink", "reference"])

    def image(renderer, tokens, idx, options, env):
        tok = tokens[idx]
        alt = html.escape(tok.content)
        src = tok.attrGet("src") or ""
        data = plots.get(src)
        mime = MIME.get(src[src.rfind("."):]) if "." in src else None
        if not isinstance(data, bytes) or mime is None:
            return alt
        return f"<img src='data:{mime};base64,{base64.b64encode(data).decode()}' alt='{alt}'>"

    def fence(renderer, tokens, idx, options, env):
        tok = tokens[idx]
        body = html.escape(tok.content)
        if tok.info.strip() == FENCE_INFO:
            body = body.replace(OPEN, "<mark>").replace(CLOSE, "</mark>")
        return f"<pre><code>{body}</code></pre>\n"

    parser.add_render_rule("image", image)
    parser.add_render_rule("fence", fence)
    return parser


def split_sections(md: str) -> tuple[str, list[tuple[str, str]]]:
    """(what comes before the first '## ' heading, [(heading text, body)]) of a report's markdown; a '## ' inside
    a fenced block does not start a section."""
    lead, sections, title, body, fence = [], [], None, [], None
    for line in md.split("\n"):
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        if fence is None and line.startswith("## "):
            if title is not None:
                sections.append((title, "\n".join(body)))
            title, body = line[3:].strip(), []
        elif title is None:
            lead.append(line)
        else:
            body.append(line)
    if title is not None:
        sections.append((title, "\n".join(body)))
    return "\n".join(lead), sections


def to_html(md: str, plots: dict[str, bytes], headline: str = "The answer") -> str:
    """`plots`: image reference in the markdown (e.g. 'plots/forest.svg') -> the bytes sdelab drew. The section
    titled `headline` opens the page; the others fold."""
    parser = _parser(plots)
    lead, sections = split_sections(md)
    page = [parser.render(lead)]
    rest = []
    for i, (title, body) in enumerate(sections):
        head = parser.renderInline(title)
        if title == headline:
            page.append(f"<section id='headline'><h2>{head}</h2>\n{parser.render(body)}</section>\n")
        else:
            rest.append((i, head, body))
    if rest:
        page.append("<nav><h2>Contents</h2><ol>" + "".join(f"<li><a href='#sec-{i}'>{head}</a></li>"
                                                          for i, head, _ in rest) + "</ol></nav>\n")
    for i, head, body in rest:
        page.append(f"<details id='sec-{i}'><summary>{head}</summary>\n{parser.render(body)}</details>\n")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'><title>sdelab report</title><style>"
            + STYLE + "</style></head><body>\n" + "".join(page) + OPEN_TARGET + "</body></html>\n")


# a contents link opens the section it points to (a folded <details> would otherwise stay shut); sdelab's own
# script, the page's only one, reading nothing but the address's fragment
OPEN_TARGET = ("<script>function openTarget(){var e=document.getElementById(location.hash.slice(1));"
               "if(e&&e.tagName==='DETAILS'){e.open=true;}}addEventListener('hashchange',openTarget);openTarget();"
               "</script>\n")
