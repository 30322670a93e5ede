"""Text generation metrics through the established libraries: ROUGE-L (rouge-score, F-measure) and corpus BLEU
(sacrebleu). Outputs are cut at the first blank line by the parser, as the generalization paper did."""
from __future__ import annotations

from collections import Counter


def generation_metrics(refs: list[str], preds: list[str | None], errors: list[str | None]) -> dict:
    import sacrebleu
    from rouge_score import rouge_scorer

    hyps = [p or "" for p in preds]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rl = [scorer.score(r, h)["rougeL"].fmeasure for r, h in zip(refs, hyps)]
    bleu = sacrebleu.corpus_bleu(hyps, [refs]).score if refs else 0.0
    kinds = Counter(e for e in errors if e)
    n = len(refs)
    return {"n": n, "rougeL": sum(rl) / n if n else 0.0, "bleu": bleu,
            "format_errors": sum(kinds.values()), "format_error_rate": sum(kinds.values()) / n if n else 0.0,
            "error_kinds": dict(sorted(kinds.items()))}
