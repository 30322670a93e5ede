"""What the model saw and said, per design: one sample in the design's format with the trained text marked, and a
few test predictions with their parse result and error kind, so a reader sees a design without reading code.

Drawn from the cell's own predictions.jsonl (an in-domain test item, rendered with its gold answer as a training
sample would be: design.codec.render), so a data set whose predictions are not kept (research-only licences)
shows none of its text. Only built-in tasks are rendered: a report reads no file outside the run folder but
sdelab's own task definitions."""
from __future__ import annotations

import re
from dataclasses import fields

from sdelab.design.codec import MissingRationale, render
from sdelab.design.options import Design
from sdelab.errors import SdelabError
from sdelab.report.records import Loaded
from sdelab.report.text import code, text
from sdelab.results import PredictionRow, read_predictions, size_key
from sdelab.tasks.registry import builtin_tasks, get_task
from sdelab.tasks.task import Example

OPEN, CLOSE = "\u27e6", "\u27e7"  # ⟦ trained text ⟧ in a sample block (report.html marks it)
FENCE_INFO = "sample"  # the info string of a sample's code block
SHOWN = 3  # predictions per design
# built-in tasks whose data is research-only (LCQMC, BQ, GENIA, AI Challenger / ASAP; .gitignore keeps their
# predictions local): a report shows none of their text, even from predictions present on this machine
RESEARCH_ONLY = frozenset({"lcqmc", "bq", "genia", "aic-d1", "aic-d2", "asap"})


def fenced(body: str, info: str = "") -> str:
    """`body` as a fenced code block (inert: markdown renders it as text), fenced longer than any run of
    backticks inside it."""
    ticks = max([len(m) for m in re.findall(r"`+", body)] + [2]) + 1
    return f"{'`' * ticks}{info}\n{body}\n{'`' * ticks}"


def marked(sample) -> str:
    """The sample's text with each trained segment between ⟦ ⟧ (the markers removed from the text first)."""
    parts = [*sample.prompt, *([sample.response] if sample.response else [])]
    clean = [(s.text.replace(OPEN, "").replace(CLOSE, ""), s.trained) for s in parts]
    return "".join(f"{OPEN}{t}{CLOSE}" if trained and t.strip() else t for t, trained in clean)


def _gold(value):
    """A gold answer as the task's Example holds it (JSON turned spans' pairs into lists)."""
    if isinstance(value, list):
        return tuple(tuple(x) if isinstance(x, list) else x for x in value)
    return value


def _design(config: dict) -> Design | None:
    d = config.get("design")
    if not isinstance(d, dict):
        return None
    known = {f.name for f in fields(Design)}
    try:
        return Design(**{k: v for k, v in d.items() if k in known})
    except TypeError:
        return None


def design_samples(r: Loaded, reference: str, n_boot: int) -> list[str]:
    out = ["## What the model saw and said\n",
           f"Per design: one item of its in-domain test set written as a training sample of that design (text "
           f"between {OPEN} {CLOSE} carries the loss; the chat template around it is the model's own), then its "
           f"first {SHOWN} test predictions with their strict parse and error kind.\n"]
    by_design: dict[str, list] = {}
    for c in r.cells:
        if c.untuned is None:
            by_design.setdefault(c.label, []).append(c)
    if not by_design:
        return []
    for label, cells in by_design.items():
        cell = max(cells, key=lambda c: (size_key(c.size), -c.seed))
        out.append(f"### {text(label)}\n")
        out += _one(cell)
    return out


def _one(cell) -> list[str]:
    task_name = cell.config.get("task")
    if not isinstance(task_name, str) or task_name not in builtin_tasks():
        return ["Not shown: only the built-in tasks' samples are rendered (a report reads no file outside the run "
                "folder besides sdelab's own).\n"]
    try:
        rows = [] if task_name in RESEARCH_ONLY else read_predictions(cell.folder)
    except SdelabError:
        rows = []
    design = _design(cell.config)
    if not rows:
        lines = ["This cell kept no predictions (its data set's licence keeps them local): the design's format is "
                 "shown on a made-up item whose text is a placeholder, and no prediction is shown.\n"]
        if design is not None:
            task = get_task(task_name)
            ex = placeholder_example(task)
            lines += _sample(task, design, ex, [ex] * design.demos, "A sample of a made-up item")
        return lines
    home = [s for s, m in cell.eval.items() if m.kind == "in_domain"] or list(cell.eval)
    rows_in = [x for x in rows if x.eval_set == home[0]] or rows
    lines = []
    if design is not None:
        ex = _example(rows_in[0])
        lines += _sample(get_task(task_name), design, ex, [_example(x) for x in rows_in[1:1 + design.demos]],
                         f"A sample of item {code(ex.id)}")
    lines += ["| item | model output | parsed (strict) | gold | error |", "|---|---|---|---|---|"]
    for x in rows_in[:SHOWN]:
        lines.append(f"| {code(x.id)} | {code(_short(x.raw))} | {code(_short(x.parsed))} | {code(_short(x.gold))} | "
                     f"{text(x.error or '-')} |")
    return lines + [""]


def _sample(task, design: Design, ex: Example, demos: list[Example], title: str) -> list[str]:
    """`ex` rendered as a training sample of `design`, fenced, under `title`; a CoT design's prompt alone (its
    rationale is model-written and not kept in the run folder)."""
    note = ""
    try:
        sample = render(task, design, ex, demos)
    except (MissingRationale, ValueError, KeyError):
        sample = render(task, design, ex, demos, response=False)
        note = " (the response, with its rationale, is not kept in the run folder: the prompt alone)"
    return [f"{title}{note}:\n", fenced(marked(sample), FENCE_INFO), ""]


def placeholder_example(task) -> Example:
    """An item made of placeholders ('⟨text⟩' for each input) with a gold answer of the task's shape: the first
    label (classification); the labels in turn over the aspects, every third one unmentioned (multi_aspect); one
    '⟨span⟩' of each of the first two types (span_extraction); '⟨answer⟩' (text generation)."""
    spec = task.spec
    fields_ = {f: f"⟨{f}⟩" for f in spec.inputs}
    labels = list(spec.labels)
    if spec.family == "multi_aspect":
        gold = {a: (task.label_names[-1] if i % 3 == 2 else labels[i % len(labels)])
                for i, a in enumerate(spec.targets or {})}
    elif spec.family == "span_extraction":
        gold = tuple((t, f"⟨{t} span⟩") for t in list(spec.targets or {})[:2])
    elif task.is_classification:
        gold = labels[0]
    else:
        gold = "⟨answer⟩"
    return Example("placeholder", fields_, gold)


def _example(row: PredictionRow) -> Example:
    return Example(str(row.id), {str(k): str(v) for k, v in (row.input or {}).items()}, _gold(row.gold))


def _short(value, limit: int = 160) -> str:
    s = " ".join(str(value).split()) if value is not None else "-"
    return s if len(s) <= limit else s[:limit] + "…"
