"""Render an example into a training sample, and parse a model's output back — side by side, so one design
cannot write what it cannot read (`parse(render(x).response) == x.label`)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from sdelab.design.options import Design
from sdelab.tasks.task import Example, Task

SegmentKind = Literal["instruction", "input", "sep", "response"]
ErrorKind = Literal["empty", "unparsable", "unknown_label", "truncated"]


@dataclass(frozen=True)
class Segment:
    text: str
    kind: SegmentKind
    trained: bool


@dataclass(frozen=True)
class Sample:
    prompt: tuple[Segment, ...]  # what the model reads
    response: Segment  # what the model writes (always trained)

    @property
    def prompt_text(self) -> str:
        return "".join(s.text for s in self.prompt)


def render(task: Task, design: Design, example: Example) -> Sample:
    tpl = task.template(design.template)
    mi = design.input_loss
    inst = Segment(tpl.instruction, "instruction", mi)
    inp = Segment(tpl.input.format(**example.fields), "input", mi)
    sep = Segment("\n", "sep", mi)
    prompt = {"first": (inst, sep, inp), "last": (inp, sep, inst), "none": (inp,)}[design.instruction]
    return Sample(prompt=prompt, response=Segment(render_label(task, design, example.label), "response", True))


def render_label(task: Task, design: Design, label: str) -> str:
    return task.spec.labels[label]


def label_texts(task: Task, design: Design) -> dict[str, str]:
    """Label name -> the response text the design trains on (the candidates of label scoring)."""
    return {name: render_label(task, design, name) for name in task.label_names}


_PUNCT = " \t\r\n.,;:!?。，；：！？、\"'“”‘’`*()（）[]【】<>《》"


def _norm(s: str) -> str:
    return unicodedata.normalize("NFKC", s).strip(_PUNCT).lower()


def parse(task: Task, design: Design, text: str, *, truncated: bool = False) -> tuple[str | None, ErrorKind | None]:
    """Strict parse of a model's output: (label name, None) or (None, error kind). Never raises."""
    if not isinstance(text, str) or not text.strip():
        return None, "empty"
    first = next(line for line in text.splitlines() if line.strip())
    key = _norm(first)
    table = _answer_table(task, design)
    if key in table:
        return table[key], None
    return None, "truncated" if truncated else "unknown_label"


def parse_lenient(task: Task, design: Design, text: str) -> str | None:
    """Salvage: the one label whose words (or aliases) occur in the text, if exactly one does."""
    if not isinstance(text, str):
        return None
    norm = _norm(text)
    hits = {name for ans, name in _answer_table(task, design).items() if ans and _contains(norm, ans)}
    return hits.pop() if len(hits) == 1 else None


def _contains(text: str, word: str) -> bool:
    if re.fullmatch(r"[\w\- ]+", word, flags=re.ASCII):  # latin words: whole-word match
        return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text) is not None
    return word in text


def _answer_table(task: Task, design: Design) -> dict[str, str]:
    table = {}
    for name, words in label_texts(task, design).items():
        table[_norm(words)] = name
    for name, al in task.spec.aliases.items():
        for a in al:
            table.setdefault(_norm(a), name)
    return table
