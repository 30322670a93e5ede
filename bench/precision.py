"""fp32 vs bf16 training throughput on this machine, same model, data, LoRA settings and seed.

Variants: fp32 weights without autocast; fp32 weights under bf16 autocast; bf16 frozen weights (fp32 LoRA)
under bf16 autocast (sdelab's 'bf16'). Prints tokens/s, the ratio to fp32 and the loss, and writes
bench/results/precision.json. Run: python bench/precision.py [--n 128]
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch

from sdelab.design import get_design, render
from sdelab.models.catalog import resolve_model
from sdelab.models.load import load_causal_lm, load_tokenizer, set_threads
from sdelab.models.tokenize import encode_train, make_formatter
from sdelab.tasks import get_task, subset
from sdelab.train.loop import TrainSettings, add_lora, train_generative


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--out", default="bench/results/precision.json")
    args = ap.parse_args()
    threads = set_threads()
    task = get_task("demo-reviews")
    rm = resolve_model(args.model)
    tok = load_tokenizer(rm)
    f = make_formatter(tok, "chat", 512)
    train = subset(task.load("train", Path(".")), args.n, 0)
    enc = [encode_train(f, render(task, get_design("inst-first"), ex)) for ex in train]
    rows = []
    for name, weights, autocast in [("fp32", "fp32", "fp32"), ("fp32 weights + bf16 autocast", "fp32", "bf16"),
                                    ("bf16 weights + bf16 autocast (sdelab bf16)", "bf16", "bf16")]:
        base = load_causal_lm(rm, weights)
        lm = add_lora(copy.deepcopy(base), TrainSettings(), 0)
        s = TrainSettings(epochs=1, batch_size=8, precision=autocast, log_every=1)
        st = train_generative(lm, enc, s, 0, tok.pad_token_id, desc=name)
        rows.append({"variant": name, "tokens_per_s": round(st.tokens_per_second, 1), "seconds": round(st.seconds, 1),
                     "final_loss": st.final_loss, "loss_curve": [p["loss"] for p in st.curve]})
        print(rows[-1]["variant"], rows[-1]["tokens_per_s"], "tok/s", "loss", st.final_loss, flush=True)
    for r in rows:
        r["ratio_to_fp32"] = round(r["tokens_per_s"] / rows[0]["tokens_per_s"], 2)
    out = {"model": args.model, "examples": args.n, "batch_size": 8, "threads": threads,
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "cpu_count": torch.get_num_threads(), "torch": torch.__version__,
                       "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported())},
           "date": time.strftime("%Y-%m-%d"), "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"{'variant':48s} {'tok/s':>8s} {'x fp32':>7s} {'loss':>7s}")
    for r in rows:
        print(f"{r['variant']:48s} {r['tokens_per_s']:8.1f} {r['ratio_to_fp32']:7.2f} {r['final_loss']:7.3f}")


if __name__ == "__main__":
    main()
