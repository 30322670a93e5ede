"""Metric functions against hand-computed values."""
import pytest

from sdelab.metrics import aspect_metrics, classification_metrics, generation_metrics, span_metrics, weighted_kappa
from sdelab.metrics.aspects import PAPER_WEIGHTS
from sdelab.metrics.spans import soft_match


def test_weighted_kappa_worked_example():
    # 4 slots: gold pos, neu, neg, unm; predictions pos, pos, neg, neu
    gold = ["positive", "neutral", "negative", "unmentioned"]
    pred = ["positive", "positive", "negative", "neutral"]
    # observed (rows gold, cols pred): (pos,pos) (neu,pos) (neg,neg) (unm,neu); weights 1, .67, 1, .67
    po = (1 + .67 + 1 + .67) / 4  # 0.835
    # marginals: gold 1/4 each; pred pos 2/4, neu 1/4, neg 1/4, unm 0
    # p_e = sum_ij W_ij * g_i * p_j = 1/4 * sum_i (W_i,pos * .5 + W_i,neu * .25 + W_i,neg * .25)
    rows = [(1, .5, 0), (.67, 1, .67), (0, .5, 1), (.5, .67, .5)]
    pe = sum(a * .5 + b * .25 + c * .25 for a, b, c in rows) / 4
    assert weighted_kappa(gold, pred) == pytest.approx((po - pe) / (1 - pe))
    # by hand: rows (0.625 + 0.7525 + 0.375 + 0.5425) / 4 = 0.57375; kappa = 0.26125 / 0.42625
    assert pe == pytest.approx(0.57375)
    assert weighted_kappa(gold, pred) == pytest.approx(0.612903, abs=1e-6)
    assert PAPER_WEIGHTS[1, 0] == .67 and PAPER_WEIGHTS[0, 1] == .5  # rows gold, columns prediction


def test_kappa_perfect_and_invalid():
    g = ["positive", "negative", "unmentioned", "neutral"] * 3
    assert weighted_kappa(g, g) == pytest.approx(1.0)
    assert weighted_kappa(g, ["<invalid>"] * len(g)) < 0.01


def test_aspect_metrics_strict_and_lenient():
    aspects = ["food", "price"]
    gold = [{"food": "positive", "price": "negative"}, {"food": "unmentioned", "price": "positive"}]
    pred = [{"food": "positive", "price": "negative"}, {"food": "unmentioned", "price": "negative"}]
    m = aspect_metrics(gold, [pred[0], None], pred, [None, "missing_target"], aspects)
    assert m["slot_accuracy"] == 0.5 and m["lenient_slot_accuracy"] == 0.75
    assert m["exact_match"] == 0.5 and m["lenient_exact_match"] == 0.5
    assert m["per_aspect_accuracy"] == {"food": 0.5, "price": 0.5}
    assert m["format_errors"] == 1 and m["error_kinds"] == {"missing_target": 1}


def test_span_metrics_strict_and_soft():
    gold = [(("protein", "IL-2 receptor"), ("dna", "kappa B site")), (("cell_type", "T cells"),)]
    pred = [(("protein", "IL-2 receptor alpha"), ("dna", "kappa B site")), (("cell_type", "T cells"),
                                                                             ("protein", "p50"))]
    m = span_metrics(gold, pred, pred, [None, None])
    # exact: tp 2 (kappa B site, T cells), predicted 4, gold 3
    assert m["precision"] == pytest.approx(2 / 4) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * .5 * (2 / 3) / (.5 + 2 / 3))
    # soft: 'IL-2 receptor' is inside 'IL-2 receptor alpha' (13/19 > .5): tp 3
    assert m["strict_soft_precision"] == pytest.approx(3 / 4) and m["strict_soft_recall"] == 1.0
    m2 = span_metrics(gold, [None, pred[1]], pred, ["unparsable", None])
    assert m2["recall"] == pytest.approx(1 / 3) and m2["lenient_exact_recall"] == pytest.approx(2 / 3)
    assert soft_match("T cells", "human T cells") and not soft_match("IL", "IL-2 receptor alpha chain")


def test_classification_metrics_counts_errors():
    m = classification_metrics(["a", "b", "a"], ["a", None, "b"], ["a", "b", "b"], [None, "unknown_label", None],
                               ["a", "b"])
    assert m["accuracy"] == pytest.approx(1 / 3) and m["lenient_accuracy"] == pytest.approx(2 / 3)
    assert m["format_errors"] == 1 and m["format_error_rate"] == pytest.approx(1 / 3)


def test_generation_metrics_use_rouge_and_bleu():
    m = generation_metrics(["the cat sat on the mat"], ["the cat sat on the mat"], [None])
    assert m["rougeL"] == pytest.approx(1.0) and m["bleu"] == pytest.approx(100.0)
    m = generation_metrics(["the cat sat on the mat"], ["a dog ran"], [None])
    assert m["rougeL"] == 0.0 and m["bleu"] < 1


def test_a_metric_over_no_item_is_nan_not_a_crash():
    import numpy as np

    from sdelab.metrics import SPECS
    for spec in SPECS.values():
        assert np.isnan(spec.value(spec.stats([], [])))
