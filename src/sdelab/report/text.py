"""Strings from outside sdelab (a study, a task, a data file, a model's output, a run folder, a claims file) as
markdown that renders as exactly that text: never an image, a link, HTML, code, math, a new line or table cell.
Every such string is passed through `text` (or `code`) where a report, table, plan or findings file writes it."""
from __future__ import annotations

import re

# CommonMark renders a backslash before any ASCII punctuation as the character itself. Escaped: what can open an
# image, link, autolink, raw HTML, entity, code span, table cell, emphasis or (GitHub) math, and a leading '#'.
# A run of '_' only at a word's edge: inside a word (test_id, es-sde__n8) it never emphasises, so names stay as
# they are.
_SPECIAL = re.compile(r"[\\`*\[\]<>|$&]|^#|(?<!_)_+")


def _escape(m: re.Match) -> str:
    s, at, end = m.group(), m.start(), m.end()
    if s[0] == "_" and m.string[at - 1:at].isalnum() and m.string[end:end + 1].isalnum():
        return s
    return "".join("\\" + c for c in s)


def text(value: object) -> str:
    """`value` as inline markdown text (one line; a table cell's content)."""
    return _SPECIAL.sub(_escape, " ".join(str(value).splitlines()))


def code(value: object) -> str:
    """`value` as inline code, or as text when a code span could not hold it (a backtick, a table's '|', a line
    break): inside a code span markdown is inert, but a backtick would close it early."""
    s = str(value)
    return f"`{s}`" if s and not re.search(r"[`|]", s) and s.splitlines() == [s] else text(s)
