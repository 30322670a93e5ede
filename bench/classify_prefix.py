"""Classification-head scoring with the shared prompt prefix run once (sdelab) against transformers' own
whole-prompt pass (its *ForSequenceClassification forward on a right-padded batch), on the same prompts, in one
run: examples/s, the ratio, and whether the two give the same logits and predictions.

    python bench/classify_prefix.py                          # LCQMC dev, the stm-lcqmc study's concise prompt
    python bench/classify_prefix.py --study studies/papers/stm_bq.yaml --n 500

The head is freshly initialised (speed and agreement do not need a trained one). Needs `make models-zh` and
../shared/data. Writes bench/results/classify_prefix.json with the machine description.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from vs_peers import _machine, _versions  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="studies/papers/stm_lcqmc.yaml")
    ap.add_argument("--n", type=int, default=256, help="evaluation items")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="timed passes of each path (the best one counts)")
    ap.add_argument("--out", default=str(HERE / "results" / "classify_prefix.json"))
    args = ap.parse_args()

    from sdelab.config import load_study
    from sdelab.infer.classify import classify
    from sdelab.infer.prefix import common_prefix
    from sdelab.models.load import load_seq_cls
    from sdelab.study.runner import _cls_inputs, _heads, prepare
    from sdelab.tasks.task import subset

    study, path = load_study(args.study, {"modeling": "discriminative"})
    ctx = prepare(study, path)
    design, target = ctx.designs[0], ctx.targets[0]
    train = subset(ctx.train_pool, int(study.train_sizes[0]), 0)
    prompts, _ = _cls_inputs(ctx, target.task, design, target.examples[: args.n], train, 0)
    heads, names = _heads(ctx.task)
    torch.manual_seed(0)
    model = load_seq_cls(ctx.model, ctx.precision, heads * len(names), ctx.cls_pad_id).eval()
    classify(model, prompts[: args.batch], heads, ctx.cls_pad_id, args.batch, ctx.precision)  # warm-up

    def timed(share: int):
        best, logits = float("inf"), None
        for _ in range(args.repeats):
            t = time.perf_counter()
            logits = classify(model, prompts, heads, ctx.cls_pad_id, args.batch, ctx.precision, share_prefix=share)
            best = min(best, time.perf_counter() - t)
        return best, torch.tensor(logits)

    s_whole, whole = timed(0)
    s_shared, shared = timed(16)
    agree = int((whole.argmax(-1) == shared.argmax(-1)).all(-1).sum())
    result = {
        "machine": _machine(), "versions": _versions(),
        "settings": {"study": args.study, "model": study.model, "design": design.name, "eval_set": target.key,
                     "n": len(prompts), "batch_size": args.batch, "precision": ctx.precision,
                     "mean_prompt_tokens": round(sum(map(len, prompts)) / len(prompts), 1),
                     "shared_prefix_tokens": common_prefix(prompts)},
        "transformers_whole_prompt": {"seconds": round(s_whole, 2), "per_s": round(len(prompts) / s_whole, 2)},
        "sdelab_shared_prefix": {"seconds": round(s_shared, 2), "per_s": round(len(prompts) / s_shared, 2)},
        "speedup": round(s_whole / s_shared, 2),
        "max_abs_logit_difference": round(float((whole - shared).abs().max()), 4),
        "max_abs_logit": round(float(whole.abs().max()), 4),  # the scale the difference is of
        "same_predictions": agree,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "versions")}, indent=1))


if __name__ == "__main__":
    main()
