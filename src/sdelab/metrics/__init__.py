"""Task metrics by family; every result carries its primary metric's name ('primary')."""
from __future__ import annotations

from sdelab.metrics.aspects import KAPPA, aspect_majority_baseline, aspect_metrics, weighted_kappa
from sdelab.metrics.classification import ACCURACY, classification_metrics, majority_baseline
from sdelab.metrics.generation import ROUGE_L, generation_metrics
from sdelab.metrics.spans import F1, span_metrics
from sdelab.metrics.spec import MetricSpec

PRIMARY = {"single_classification": "accuracy", "pair_classification": "accuracy", "multi_aspect": "kappa",
           "span_extraction": "f1", "text_generation": "rougeL"}
SPECS: dict[str, MetricSpec] = {s.name: s for s in (ACCURACY, KAPPA, F1, ROUGE_L)}  # by primary metric name


def score(task, gold: list, preds: list, errors: list[str | None], train_gold: list) -> dict:
    """Metrics of one evaluation set: strict (format error = wrong) and lenient (salvaged) side by side, plus the
    trivial baseline where the family has one."""
    fam = task.spec.family
    strict = [p if e is None else None for p, e in zip(preds, errors)]
    if fam in ("single_classification", "pair_classification"):
        m = classification_metrics(gold, strict, preds, errors, task.label_names)
        m["majority_baseline"] = majority_baseline(train_gold, gold, task.label_names) if train_gold else None
    elif fam == "multi_aspect":
        aspects = list(task.spec.targets)
        m = aspect_metrics(gold, strict, preds, errors, aspects)
        m["majority_baseline"] = aspect_majority_baseline(train_gold, gold, aspects) if train_gold else None
    elif fam == "span_extraction":
        m = span_metrics(gold, strict, preds, errors, task.spec.soft_match)
    else:
        m = generation_metrics(gold, strict, errors)
    m["primary"] = PRIMARY[fam]
    return m


__all__ = ["PRIMARY", "SPECS", "MetricSpec", "score", "weighted_kappa", "aspect_metrics", "span_metrics",
           "generation_metrics", "classification_metrics", "majority_baseline"]
