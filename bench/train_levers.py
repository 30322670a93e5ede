"""Training levers measured one at a time: each variant changes one thing from sdelab's defaults and trains the
same SST-2 samples (inst-first, chat template) for one epoch from the same seed, in one process (model loaded
once). Prints real tokens/s, the ratio to sdelab's default and the held-out loss; writes
bench/results/train_levers.json.

    python bench/train_levers.py [--n 256]

The baseline is sdelab's loop with neither speed lever of train/speed.py (SDPA attention, no compile); the
compiled variants report the first step (mostly the compile, with torch's on-disk cache as it is) apart and
their tokens/s after it.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_peers import HERE, _held_loss, _inputs, _machine, _versions  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--data-root", default=str(HERE.parent.parent / "shared/data"))
    ap.add_argument("--out", default=str(HERE / "results/train_levers.json"))
    args = ap.parse_args()
    from sdelab.models.load import load_causal_lm, set_threads
    from sdelab.train import speed
    from sdelab.train.loop import TrainSettings, add_lora, train_generative

    set_threads()
    ns = argparse.Namespace(model=args.model, n_train=args.n, n_eval=1, data_root=args.data_root)
    _, _, rm, tok, _, enc, held, _, _ = _inputs(ns)
    base_bf16 = load_causal_lm(rm, "bf16")
    base = TrainSettings(epochs=1, batch_size=8, precision="bf16", log_every=1, compile="off")
    sdpa = speed.EAGER_MAX_TOKENS

    def peft_casts(lm):  # sdelab before: peft casts every LoRA input to fp32, autocast casts it back
        for m in lm.modules():
            if hasattr(m, "cast_input_dtype_enabled"):
                m.cast_input_dtype_enabled = True
        return lm

    variants = [  # (name, settings, weights, tweak, attention: eager allowed)
        ("baseline: sdelab's loop, SDPA attention, not compiled (bf16 weights, fp32 LoRA, autocast, no input "
         "casts, no dropout, length-grouped)", base, None, None, False),
        ("peft casts LoRA inputs to fp32 (sdelab before)", base, None, peft_casts, False),
        ("LoRA dropout 0.05", replace(base, lora_dropout=0.05), None, None, False),
        ("no length grouping (random batches)", replace(base, group_by_length=False), None, None, False),
        ("fp32 frozen weights under bf16 autocast", base, "fp32", None, False),
        ("fp32 throughout (no autocast)", replace(base, precision="fp32"), "fp32", None, False),
        ("eager attention", base, None, None, True),
        ("regional compile, SDPA attention", replace(base, compile="on"), None, None, False),
        ("regional compile + eager attention (sdelab's plan for a large cell of short samples)",
         replace(base, compile="on"), None, None, True),
    ]
    rows = []
    for name, s, weights, tweak, eager in variants:
        lm = add_lora(copy.deepcopy(base_bf16) if weights is None else load_causal_lm(rm, weights), s, 0)
        if callable(tweak):
            lm = tweak(lm)
        speed.EAGER_MAX_TOKENS = sdpa if eager else 0
        st = train_generative(lm, enc, s, 0, tok.pad_token_id, desc=name[:40])
        first = st.speed.get("first_step_s", 0)
        after = st.tokens * (st.steps - 1) / st.steps / max(st.seconds - first, 1e-9)
        rows.append({"variant": name, "tokens_per_s": round(st.tokens_per_second, 1), "seconds": round(st.seconds, 1),
                     "first_step_s": first, "tokens_per_s_after_first_step": round(after, 1),
                     "speed": st.speed, "held_out_loss": _held_loss(lm, held, tok.pad_token_id),
                     "loss_curve": [p["loss"] for p in st.curve]})
        print(f"{name}: {rows[-1]['tokens_per_s']} tok/s ({rows[-1]['tokens_per_s_after_first_step']} after the "
              f"first step), held-out loss {rows[-1]['held_out_loss']}", flush=True)
        del lm
    speed.EAGER_MAX_TOKENS = sdpa
    for r in rows:
        r["ratio_to_default"] = round(r["tokens_per_s"] / rows[0]["tokens_per_s"], 2)
        r["ratio_after_first_step"] = round(r["tokens_per_s_after_first_step"]
                                            / rows[0]["tokens_per_s_after_first_step"], 2)
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": _machine(), "versions": _versions(),
           "settings": {"model": args.model, "n": args.n, "batch_size": 8, "lora_r": 8, "epochs": 1},
           "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("\n| lever (one change from the baseline) | tokens/s | x | first step s | after it: tokens/s | x | "
          "held-out loss |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['tokens_per_s']} | {r['ratio_to_default']:.2f} | {r['first_step_s']} | "
              f"{r['tokens_per_s_after_first_step']} | {r['ratio_after_first_step']:.2f} | {r['held_out_loss']} |")


if __name__ == "__main__":
    main()
