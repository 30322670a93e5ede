"""`sdelab diagnose STUDY.yaml`: before any training, how good is each design as a *prompt* for the base model?
Prompt and output perplexity (mean token NLL) and zero-shot / k-shot in-context scores with the same parser and
metrics — the Sample Design Engineering paper's question of whether good prompts make good training samples.
Written to <output>/diagnostics.json; `sdelab report` sets them beside the fine-tuned scores."""
from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path

from sdelab import fileio
from sdelab.errors import SdelabError
from sdelab.infer.perplexity import sample_nll
from sdelab.metrics import PRIMARY
from sdelab.study.context import Context, build_samples
from sdelab.study.evaluate import evaluate
from sdelab.study.modeling import MODELINGS, base_lm
from sdelab.study.rationales import attach_rationales
from sdelab.tasks.task import subset

DIAGNOSTICS = "diagnostics.json"
PARTIAL = "diagnostics.partial.json"


def _kept(partial: Path) -> dict:
    """What a stopped run kept in `partial`: {} when nothing, or when the file is cut short or not one of sdelab's
    (every design is measured again)."""
    if not partial.exists():
        return {}
    try:
        kept = fileio.read_json(partial)
        designs = kept.get("designs") if isinstance(kept, dict) else None
        if isinstance(designs, dict) and all(isinstance(r, dict) and {"prompt_ppl", "output_ppl", "icl"} <= set(r)
                                             for r in designs.values()):
            return kept
    except SdelabError:
        pass
    print(f"[diagnose] {partial}: not a readable record of the stopped run; measuring every design again")
    return {}


def diagnose(ctx: Context, ks: list[int], n: int = 200, size: int | None = None) -> dict:
    """Per design: prompt / output NLL and perplexity over `n` training examples, and in-context scores for each
    k in `ks` on the first `size` items of every evaluation set (all of them by default). A k-shot prompt may be
    (k + 1) x train.max_length tokens long: k demonstrations and the item, each as long as a training sample.

    Each design's result is kept in `diagnostics.partial.json` as soon as it is measured, so a stopped run resumes
    at the next design (the untuned model babbles to its generation budget: a design can take minutes). The file
    holds only scores, so it can be committed with the run folder and a run resumed from another checkout."""
    lm = base_lm(ctx)
    train_size = ctx.study.train_sizes[0]
    seed = ctx.study.seeds[0]
    train = subset(ctx.train_pool, None if train_size == "all" else int(train_size), seed)
    probe = train[: min(n, len(train))]
    targets = [replace(t, examples=t.examples[:size]) if size else t for t in ctx.targets]
    # a k-shot prompt holds k demonstrations, each a training sample that fits max_length, and the item itself
    f = ctx.formatter
    icl_ctx = {k: replace(ctx, formatter=replace(f, max_length=f.max_length * (k + 1))) for k in ks}
    settings = {"model": ctx.study.model, "precision": ctx.precision, "task": ctx.task.name,
                "examples": len(probe), "ks": ks,
                "icl_examples": {t.key: len(t.examples) for t in targets},
                "icl_max_length": {str(k): c.formatter.max_length for k, c in icl_ctx.items()}}
    out = {**settings, "designs": {}}
    partial = ctx.out_dir / PARTIAL
    kept = _kept(partial)
    if {k: v for k, v in kept.items() if k != "designs"} == settings:  # measured with the same settings
        out["designs"] = kept["designs"]
    for d in ctx.designs:
        if d.name in out["designs"]:
            print(f"[diagnose] {d.name}: measured earlier, kept")
            continue
        print(f"[diagnose] {d.name}")
        ex = attach_rationales(ctx.task, probe, ctx.study.rationales, d.reasoning != "none", device=ctx.device)
        # (the demonstrations of a CoT design get theirs where they are chosen: build_samples)
        samples = build_samples(ctx, ctx.task, d, ex, train, seed)
        nll = sample_nll(lm, ctx.formatter, samples, ctx.tokenizer.pad_token_id, precision=ctx.precision)
        prompt = statistics.fmean(x for x, _ in nll if not math.isnan(x))
        output = statistics.fmean(y for _, y in nll)
        icl, errors = {}, {}
        for k, c in icl_ctx.items():
            dk = replace(d, demos=k) if k else d
            icl[str(k)], errors[str(k)] = {}, {}
            for t in targets:
                m = evaluate(c, MODELINGS["untuned"], lm, dk, t, train, seed)[0]
                icl[str(k)][t.key] = round(m[PRIMARY[t.task.spec.family]], 6)
                # a score of 0 says little by itself: no answer in the design's format, or wrong answers
                errors[str(k)][t.key] = round(m["format_error_rate"], 4)
        out["designs"][d.name] = {"prompt_nll": round(prompt, 6), "prompt_ppl": round(math.exp(prompt), 4),
                                  "output_nll": round(output, 6), "output_ppl": round(math.exp(output), 4),
                                  "icl": icl, "icl_format_errors": errors}
        fileio.write_json(partial, out)
    out["designs"] = {d.name: out["designs"][d.name] for d in ctx.designs}  # the study's designs, in its order
    fileio.write_json(ctx.out_dir / DIAGNOSTICS, out)
    partial.unlink(missing_ok=True)
    return out

