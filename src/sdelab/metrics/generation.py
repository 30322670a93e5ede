"""Text generation metrics through the established libraries: ROUGE-L (rouge-score, F-measure) and corpus BLEU
(sacrebleu). Outputs are cut at the first blank line by the parser, as the generalization paper did."""
from __future__ import annotations

from collections import Counter
from functools import lru_cache

from sdelab.metrics.spec import MetricSpec, mean_of_items


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


ROUGE_L = MetricSpec("rougeL", lambda ref, pred: [_rouge().score(ref, pred or "")["rougeL"].fmeasure],
                     mean_of_items)


def generation_metrics(refs: list[str], preds: list[str | None], errors: list[str | None]) -> dict:
    import sacrebleu

    hyps = [p or "" for p in preds]
    bleu = sacrebleu.corpus_bleu(hyps, [refs]).score if refs else 0.0
    kinds = Counter(e for e in errors if e)
    n = len(refs)
    return {"n": n, "rougeL": ROUGE_L.score(refs, preds) if n else 0.0, "bleu": bleu,
            "format_errors": sum(kinds.values()), "format_error_rate": sum(kinds.values()) / n if n else 0.0,
            "error_kinds": dict(sorted(kinds.items()))}
