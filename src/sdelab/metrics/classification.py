"""Closed-label-set metrics, with format errors counted and scored both strictly and leniently."""
from __future__ import annotations

from collections import Counter

from sklearn.metrics import f1_score

from sdelab.metrics.spec import MetricSpec, mean_of_items

ACCURACY = MetricSpec("accuracy", lambda gold, pred: [float(pred is not None and pred == gold)], mean_of_items)


def classification_metrics(gold: list[str], strict: list[str | None], lenient: list[str | None],
                           errors: list[str | None], labels: list[str]) -> dict:
    """strict: a prediction with a format error counts as wrong; lenient: salvaged predictions count."""
    n = len(gold)
    none = "\u0000invalid"

    def score(pred):
        p = [x if x is not None else none for x in pred]
        return {"accuracy": ACCURACY.score(gold, pred),
                "macro_f1": float(f1_score(gold, p, labels=labels, average="macro", zero_division=0))}

    s, l_ = score(strict), score(lenient)
    kinds = Counter(e for e in errors if e)
    return {
        "n": n,
        "accuracy": s["accuracy"], "macro_f1": s["macro_f1"],
        "lenient_accuracy": l_["accuracy"], "lenient_macro_f1": l_["macro_f1"],
        "format_errors": sum(kinds.values()), "format_error_rate": sum(kinds.values()) / n if n else 0.0,
        "error_kinds": dict(sorted(kinds.items())),
        "pred_distribution": dict(sorted(Counter(x or "<error>" for x in strict).items())),
    }


def majority_baseline(train_labels: list[str], gold: list[str], labels: list[str]) -> dict:
    """Accuracy and macro-F1 of always answering the training set's most frequent label."""
    top = Counter(train_labels).most_common(1)[0][0]
    pred = [top] * len(gold)
    return {"label": top, "accuracy": ACCURACY.score(gold, pred),
            "macro_f1": float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0))}
