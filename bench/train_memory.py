"""Training memory against micro-batch size and length: peak resident memory of one forward and backward pass
(sdelab's loss on the last 64 tokens of each sample, LoRA r=8 on every linear layer, bf16 frozen weights under bf16
autocast, the attention the loop picks for that length) on random samples, one fresh process per (model, batch,
length).

Fits the coefficients of sdelab's activation estimate (src/sdelab/train/memory.py: bytes per token x layer x
(hidden + intermediate), per row x layer x head x length^2 with eager attention, and a share of the weights) by
least squares over every row, and prints them beside the constants sdelab ships (a unit test checks they agree
with this file). Writes bench/results/train_memory.json.
Run: python bench/train_memory.py [--models smollm2-135m qwen2.5-0.5b-coder] [--lengths 128 256 512 2048]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path


def status_gib(field: str) -> float:
    """A /proc/self/status memory line in GiB (VmRSS now, VmHWM the peak since the last reset)."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 2**20


def one(model: str, batch: int, length: int) -> dict:
    """In this process: load, one forward and backward; the peak RSS in GiB (ru_maxrss is in KiB on Linux)."""
    import torch

    from sdelab.models.catalog import resolve_model
    from sdelab.models.load import load_causal_lm, set_threads
    from sdelab.models.device import autocast
    from sdelab.models.tokenize import IGNORE
    from sdelab.train.loop import CausalLMLoss, TrainSettings, add_lora
    from sdelab.train.memory import dimensions
    from sdelab.train.speed import applied, plan_speed
    set_threads()
    lm = add_lora(load_causal_lm(resolve_model(model), "bf16"), TrainSettings(precision="bf16"), 0)
    module = CausalLMLoss(lm)
    speed = plan_speed(module, "off", 0, length)  # the attention the loop trains this length with
    import gc
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # the peak so far (loading's transient copies) forgotten
    loaded = status_gib("VmRSS")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, lm.config.vocab_size, (batch, length), generator=g)
    labels = ids.clone()
    labels[:, :-64] = IGNORE
    t0 = time.perf_counter()
    with applied(module, speed), autocast("bf16"):
        loss = module(ids, torch.ones_like(ids), labels)
        loss.backward()
    return {"model": model, "batch": batch, "length": length, "tokens": batch * length,
            "attention": speed.attention or lm.config._attn_implementation, "dims": dimensions(module),
            "rss_loaded_gib": round(loaded, 3),
            "rss_peak_gib": round(status_gib("VmHWM"), 3),
            "step_s": round(time.perf_counter() - t0, 1)}


def fit(rows: list[dict]) -> dict:
    """Least squares of the relative error of (peak - loaded) bytes on the estimate's terms (train/memory.py's
    `terms`), no intercept."""
    import numpy as np

    from sdelab.train.memory import terms
    x = np.array([terms(r["dims"], r["batch"], r["length"], r["attention"] == "eager") for r in rows], dtype=float)
    y = np.array([(r["rss_peak_gib"] - r["rss_loaded_gib"]) * 2**30 for r in rows])
    coef, *_ = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)
    coef = coef.round(2)
    pred = x @ coef
    return {"coefficients": [round(float(c), 4) for c in coef],
            "worst_relative_error": round(float(np.max(np.abs(pred - y) / y)), 3)}


MAX_TOKENS = {"smollm2-135m": 8192, "qwen2.5-0.5b-coder": 4096}  # a micro-batch this machine's 24 GiB holds


def main():
    from sdelab.train.memory import COEFFICIENTS
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-0.5b-coder"])
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 2048])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--out", default="bench/results/train_memory.json")
    ap.add_argument("--refit", action="store_true", help="fit the rows already in --out again, measuring nothing")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # internal: model batch length, in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), int(args.one[2]))))
        return
    if args.refit:
        old = json.loads(Path(args.out).read_text())
        result = {**old, **fit(old["rows"]), "shipped": list(COEFFICIENTS)}
        print(f"fitted {result['coefficients']} (worst relative error {result['worst_relative_error']}); "
              f"sdelab ships {list(COEFFICIENTS)}")
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        return
    rows = []
    for model in args.models:
        for length in args.lengths:
            for b in args.sizes:
                if b * length > MAX_TOKENS.get(model, 8192):
                    continue
                out = subprocess.run([sys.executable, __file__, "--one", model, str(b), str(length)],
                                     capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print({k: v for k, v in rows[-1].items() if k != "dims"}, flush=True)
    from sdelab.study.runner import cpu_name
    result = {"cpu": cpu_name(), "platform": platform.processor() or platform.machine(), "rows": rows,
              **fit(rows), "shipped": list(COEFFICIENTS)}
    print(f"fitted {result['coefficients']} (worst relative error {result['worst_relative_error']}); "
          f"sdelab ships {list(COEFFICIENTS)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
