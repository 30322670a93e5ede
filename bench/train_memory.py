"""Training memory against micro-batch size: peak resident memory of one forward and backward pass (sdelab's loss
on the last 64 tokens of each sample, LoRA r=8 on every linear layer, bf16 frozen weights under bf16 autocast) on
random samples of --length tokens, one fresh process per micro-batch size.

Shows how activation memory grows with the tokens of a micro-batch, to size `train.batch_size` and
`train.grad_accum` for long samples. Writes bench/results/train_memory.json.
Run: python bench/train_memory.py [--length 2048] [--sizes 1 2 4]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def one(model: str, batch: int, length: int) -> dict:
    """In this process: load, one forward and backward; the peak RSS in GiB (ru_maxrss is in KiB on Linux)."""
    import torch

    from sdelab.models.precision import autocast
    from sdelab.models.catalog import resolve_model
    from sdelab.models.load import load_causal_lm, set_threads
    from sdelab.models.tokenize import IGNORE
    from sdelab.train.loop import CausalLMLoss, TrainSettings, add_lora
    set_threads()
    lm = add_lora(load_causal_lm(resolve_model(model), "bf16"), TrainSettings(precision="bf16"), 0)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, lm.config.vocab_size, (batch, length), generator=g)
    labels = ids.clone()
    labels[:, :-64] = IGNORE
    t0 = time.perf_counter()
    with autocast("bf16"):
        loss = CausalLMLoss(lm)(ids, torch.ones_like(ids), labels)
    loss.backward()
    return {"batch": batch, "length": length, "tokens": batch * length,
            "rss_loaded_gib": round(loaded, 2),
            "rss_peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "step_s": round(time.perf_counter() - t0, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--out", default="bench/results/train_memory.json")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.model, args.one, args.length)))
        return
    rows = []
    for b in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--model", args.model, "--length", str(args.length),
                              "--one", str(b)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    per_sample = ((rows[-1]["rss_peak_gib"] - rows[0]["rss_peak_gib"]) / (rows[-1]["batch"] - rows[0]["batch"])
                  if len(rows) > 1 else None)
    result = {"model": args.model, "platform": platform.processor() or platform.machine(), "rows": rows,
              "gib_per_sample": round(per_sample, 2) if per_sample else None}
    print(f"about {result['gib_per_sample']} GiB per {args.length}-token sample")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
