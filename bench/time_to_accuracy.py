"""Accuracy per CPU-hour: train a study's first cell with sdelab's own pipeline and score it on the study's first
evaluation set whenever the training has used 15, 30, 60 and 120 CPU-minutes (process CPU time, every thread:
on 2 cores a wall-clock minute is about 2 CPU-minutes, as `sdelab plan` counts them).

    python bench/time_to_accuracy.py                       # studies/lcqmc_fast.yaml, ~1 h on 2 cores
    python bench/time_to_accuracy.py --study S --marks 5 10

Each point is scored inside the training run (the CPU time of scoring is taken off the clock) and written to
bench/results/time_to_accuracy.json as soon as it exists, so a stopped run keeps its points; the plot goes to
bench/results/time_to_accuracy.png. One run with one learning-rate schedule (linear decay over the whole study
cell): a point before the end is scored mid-schedule, so it is a lower bound of what a run planned for that budget
would reach. Needs ../shared/data (LCQMC) and `make models-encoder`.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _machine() -> dict:
    from sdelab.study.runner import cpu_name
    return {"cpu": cpu_name(), "cores": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "bf16": torch.cpu._is_avx512_bf16_supported()}


def run(args) -> dict:
    from sdelab.config import load_study
    from sdelab.models.load import set_threads
    from sdelab.study.context import cell_train, prepare
    from sdelab.study.evaluate import evaluate
    from sdelab.study.grid import expand_all
    from sdelab.study.modeling import MODELINGS

    set_threads()
    study, path = load_study(args.study)
    sub = expand_all(study, path.parent)[0]
    cell = sub.cells[0]
    work = Path(tempfile.mkdtemp(prefix="t2a-"))
    ctx = prepare(sub, path, args.data_root, str(work), checkpoint_every=1e9)
    target = ctx.targets[0]
    modeling = MODELINGS[cell.config["modeling"]]
    study_name = Path(args.study).resolve()
    study_name = study_name.relative_to(ROOT) if study_name.is_relative_to(ROOT) else study_name
    out = {"study": str(study_name), "cell": cell.folder_name, "config": cell.config,
           "eval_set": target.key, "eval_items": len(target.examples), "machine": _machine(),
           "clock": "process CPU time of training (user + system, every thread), scoring excluded",
           "marks_cpu_min": args.marks, "points": []}
    marks = sorted(args.marks)
    clock = {"cpu0": 0.0, "wall0": 0.0, "off": 0.0}  # CPU seconds spent scoring, taken off the clock
    train = cell_train(ctx, cell.config["train_size"], cell.seed, cell.design)

    def cpu_min() -> float:
        return (time.process_time() - clock["cpu0"] - clock["off"]) / 60

    def score(model, step, stats, mark):
        c = time.process_time()
        was_training = model.training
        m, _ = evaluate(ctx, modeling, model, cell.design, target, train, cell.seed)
        model.train(was_training)
        point = {"mark_cpu_min": mark, "cpu_min": round(cpu_min(), 2),
                 "wall_min": round((time.perf_counter() - clock["wall0"]) / 60, 2), "batches": step,
                 "examples": stats.examples, "tokens": stats.tokens, "accuracy": m["accuracy"],
                 "train_loss": stats.final_loss}
        clock["off"] += time.process_time() - c
        out["points"].append(point)
        out["majority_baseline"] = (m.get("majority_baseline") or {}).get("accuracy")
        _write(args, out)
        print(json.dumps(point), flush=True)

    def on_update(step, stats, module):
        while marks and cpu_min() >= marks[0]:
            inner = module.model if hasattr(module, "model") else module.lm
            score(inner, step, stats, marks.pop(0))

    clock["cpu0"], clock["wall0"] = time.process_time(), time.perf_counter()
    fitted = modeling.fit(ctx, cell, train, work, time.perf_counter(), on_update=on_update)
    if marks:  # the training ended before the last mark: its end is the last point
        score(fitted.model, fitted.stats.steps, fitted.stats, None)
    out["train_tokens_per_s"] = round(fitted.stats.tokens_per_second, 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    _write(args, out)
    shutil.rmtree(work, ignore_errors=True)  # the cell's saved model: not a result
    return out


def _write(args, out: dict) -> None:
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


def plot(out: dict, dest: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = out["points"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([p["cpu_min"] for p in pts], [p["accuracy"] for p in pts], "o-", label=out["cell"].split("__")[0])
    for p in pts:
        ax.annotate(f"{p['accuracy']:.3f}", (p["cpu_min"], p["accuracy"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
    if out.get("majority_baseline") is not None:
        ax.axhline(out["majority_baseline"], color="grey", ls=":", label="majority class")
    ax.plot([60], [0.85], "k+", ms=10, label="targets (85% at 60, 88% at 120)")
    ax.plot([120], [0.88], "k+", ms=10)
    ax.set_xlabel("CPU-minutes of training (2 cores: 2 per wall-clock minute)")
    ax.set_ylabel(f"accuracy, {out['eval_set']} ({out['eval_items']} items)")
    ax.set_title(f"{out['study']} on {out['machine']['cpu']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(dest, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "studies" / "lcqmc_fast.yaml"))
    ap.add_argument("--marks", type=float, nargs="+", default=[15, 30, 60, 120], help="CPU-minutes")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=str(HERE / "results" / "time_to_accuracy.json"))
    ap.add_argument("--plot", default=str(HERE / "results" / "time_to_accuracy.png"))
    args = ap.parse_args(argv)
    out = run(args)
    plot(out, Path(args.plot))
    for p in out["points"]:
        print(f"{p['cpu_min']:7.1f} CPU-min  {p['examples']:>8,} pairs  accuracy {p['accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
