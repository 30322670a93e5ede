"""Readers for published data-set layouts (XML, nested JSON, ...), registered as extra `format:` names.

Each reader takes the file's text and path and returns `Row`s whose values follow the family conventions:
- multi_aspect: a "text" column plus one column per aspect holding the raw label (the task maps raw values with
  `label_map`, and its `columns` map aspect names to these columns);
- span_extraction: a "text" column plus "spans", a JSON list of [type, text] pairs.
Errors name the file and line (sdelab.errors.SdelabError).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from sdelab.tasks.readers import FORMATS, READERS, Row


def register(name: str) -> Callable:
    def deco(fn):
        READERS[name] = fn
        if name not in FORMATS:
            FORMATS.append(name)
        return fn
    return deco


__all__ = ["register", "Row", "Path"]
