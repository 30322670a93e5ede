"""Score a cell's model on the evaluation matrix: each set's predictions (from the modeling), its metrics (strict
and lenient, with the majority baseline) and what the set was (kind, template, cut prompts); each set kept in the
cell's work folder as soon as it is scored, so a stopped run resumes at the next one."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from sdelab import fileio
from sdelab.design.options import Design
from sdelab.errors import SdelabError
from sdelab.metrics import score
from sdelab.results import PredictionRow
from sdelab.study.context import Context, EvalTarget
from sdelab.study.modeling import SCORED, keeping
from sdelab.tasks.task import Example


def evaluate(ctx: Context, modeling, model, design: Design, target: EvalTarget, train: list[Example],
             seed: int) -> tuple[dict, list[PredictionRow]]:
    """Metrics and prediction rows of `model` on one evaluation set (in the set's template if it names one)."""
    task = target.task
    d = replace(design, template=target.template) if target.template else design
    if target.demos is not None:
        d = replace(d, demos=target.demos)
    rows, cut = modeling.predict(ctx, model, d, target, train, seed)
    m = score(task, [e.gold for e in target.examples], [r.lenient for r in rows], [r.error for r in rows],
              [e.gold for e in train] if task is ctx.task else [])
    used = task.template(d.template).name
    m.update(kind=target.kind, template=used,
             template_seen=used == task.template(design.template).name if task is ctx.task else None,
             prompts_truncated=cut)
    return m, rows


def evaluate_all(ctx: Context, work: Path, evaluate_one) -> tuple[dict, list[PredictionRow], float]:
    """Metrics, prediction rows and seconds over every evaluation set; each set's result is kept in the cell's
    work folder as soon as it is scored (and read back, so a resumed cell computes from the same values)."""
    metrics, rows, seconds = {}, [], 0.0
    for i, target in enumerate(ctx.targets):
        part = work / SCORED / f"{i:03d}.json"
        saved = scored(part, target.key)
        if saved is None:
            t = time.perf_counter()
            m, got = evaluate_one(target)
            with keeping(work):
                part.parent.mkdir(exist_ok=True)
                fileio.write_json(part, {"key": target.key, "metrics": m, "rows": [r.to_json() for r in got],
                                         "seconds": time.perf_counter() - t})
            saved = scored(part, target.key)
        metrics[target.key], got, s = saved
        rows += got
        seconds += s
    return metrics, rows, seconds


def scored(part: Path, key: str) -> tuple[dict, list[PredictionRow], float] | None:
    """The metrics, rows and seconds of set `key` as an interrupted run kept them in `part`; None when it has not
    (another set's, or a file cut short by a crash: the set is scored again)."""
    if not part.exists():
        return None
    try:
        saved = fileio.read_json(part)
        if saved.get("key") != key:
            return None
        if not isinstance(saved["metrics"], dict):
            raise TypeError("metrics")
        return saved["metrics"], [PredictionRow(**r) for r in saved["rows"]], float(saved["seconds"])
    except (SdelabError, AttributeError, KeyError, TypeError, ValueError) as e:
        print(f"[sdelab] {part}: not a readable scored set ({type(e).__name__}); scoring {key} again", flush=True)
        return None
