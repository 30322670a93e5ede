"""One cell trained by one process and by two data-parallel processes (`accelerate launch --multi_gpu
--num_processes 2`, gloo on the CPU), same global batch: the two loss curves, the largest adapter difference, the
accuracy of each, and the wall time of each (on 2 cores: 1 process x 2 threads against 2 processes x 1 thread).

    python bench/data_parallel.py [--model smollm2-135m] [--precision auto|fp32] [--out FILE.json]

The study is the quickstart's inst-first cell (demo-reviews, the embedded default model). Records the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--out", help="default: bench/results/data_parallel[_<precision>].json")
    args = ap.parse_args()
    args.out = args.out or str(ROOT / "bench" / "results" / (
        "data_parallel.json" if args.precision == "auto" else f"data_parallel_{args.precision}.json"))
    from safetensors.torch import load_file

    from sdelab.study.runner import cpu_name
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    launchers = {"one process": [sys.executable, "-m", "sdelab"],
                 "two processes": [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
                                   "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "sdelab"]}
    res = {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)), "model": args.model, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for name, cmd in launchers.items():
            out = Path(tmp) / name.replace(" ", "-")
            study = {"name": "dp", "task": "demo-reviews", "model": args.model, "designs": ["inst-first"],
                     "train_sizes": ["all"], "seeds": [0], "output_dir": str(out),
                     "train": {"epochs": 2, "lr": 2.0e-4, "batch_size": 8, "precision": args.precision},
                     "eval": {"sets": ["test_id", "test_ood"], "method": "generate"}}
            path = Path(tmp) / f"{out.name}.yaml"
            path.write_text(yaml.safe_dump(study))
            t0 = time.perf_counter()
            r = subprocess.run([*cmd, "run", str(path)], capture_output=True, text=True, cwd=ROOT)
            if r.returncode:
                sys.exit(r.stdout[-2000:] + r.stderr[-2000:])
            cell = next(p for p in out.iterdir() if (p / "metrics.json").exists())
            folders[name] = cell
            log = [json.loads(x) for x in (cell / "train_log.jsonl").read_text().splitlines()]
            manifest = json.loads((cell / "manifest.json").read_text())
            metrics = json.loads((cell / "metrics.json").read_text())["eval"]
            res["runs"][name] = {"wall_s": round(time.perf_counter() - t0, 1),
                                 "train_s": manifest["timings"]["train_s"], "precision": manifest["precision"],
                                 "processes": manifest["processes"], "threads": manifest["threads"],
                                 "curve": [[p["step"], p["loss"]] for p in log],
                                 "accuracy": {k: round(v["accuracy"], 4) for k, v in metrics.items()}}
        a, b = (res["runs"][n]["curve"] for n in launchers)
        res["largest_loss_difference"] = round(max(abs(x[1] - y[1]) for x, y in zip(a, b)), 5)
        wa, wb = (load_file(f / "adapter" / "adapter_model.safetensors") for f in folders.values())
        res["largest_adapter_difference"] = float(max((wa[k].float() - wb[k].float()).abs().max() for k in wa))
        res["largest_adapter_weight"] = float(max(w.float().abs().max() for w in wa.values()))
        one, two = (res["runs"][n]["train_s"] for n in launchers)
        res["train_time_ratio_two_over_one"] = round(two / one, 3)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=1))
    for n, r in res["runs"].items():
        print(n, r["train_s"], "s", r["accuracy"], "curve", r["curve"])


if __name__ == "__main__":
    main()
