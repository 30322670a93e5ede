"""Run a sub-study: for each cell not yet finished, fit its model (or take the untuned base model), evaluate it on
every evaluation set of the matrix, and write its run record.

Under a data-parallel launch (`accelerate launch`, `torchrun`) every process runs this loop: the main process
claims each cell and shares its decision, every process trains the cell on its share of each batch, and the main
process alone writes the run folder and evaluates while the others wait for its next decision."""
from __future__ import annotations

import contextlib
import os
import platform
import resource
import time
from dataclasses import asdict, replace
from datetime import datetime
from importlib import metadata
from pathlib import Path

import torch

from sdelab import __version__, results
from sdelab.errors import SdelabError
from sdelab.models.tokenize import encode_train
from sdelab.study import store
from sdelab.study.context import Context, build_samples, cell_train
from sdelab.study.evaluate import evaluate, evaluate_all
from sdelab.study.grid import Cell, changed, run_order
from sdelab.study.modeling import MODELINGS, Fitted, keeping
from sdelab.tasks.task import subset
from sdelab.train import distributed


def run_study(ctx: Context, cells: list[Cell], log=print) -> list[Path]:
    """Every unfinished cell of `cells`, in the study's run order; the finished ones are skipped. Returns the
    finished folders (on the main process; the others return none)."""
    cells = run_order(ctx.study, cells)
    main = distributed.is_main()
    log = log if main else (lambda *_: None)
    distributed.start(ctx.device)
    done, elsewhere = [], 0
    for i, cell in enumerate(cells, 1):
        at = f"[{i}/{len(cells)}]"
        with contextlib.ExitStack() as held:
            decision = _decide(ctx, cell, held) if main else None
            decision = distributed.share(decision)  # every process follows the main one's decision
            if decision == "elsewhere":
                log(f"{at} {cell.folder_name}: another process is running it, skipped")
                elsewhere += 1
                continue
            if decision != "run":
                how = "finished earlier" if decision[0] == "=" else "finished by another process"
                log(f"{at} {decision[1:]}: {how}, skipped")
                done.append(ctx.out_dir / decision[1:])
                continue
            log(f"{at} {cell.folder_name}: {describe(ctx, cell)}")
            folder = run_cell(ctx, cell)
            if folder is not None:
                done.append(folder)
    if elsewhere:
        log(f"{elsewhere} cells were left to the other process running them; `sdelab report` reads every finished "
            "cell once they land")
    return done if main else []


def _decide(ctx: Context, cell: Cell, held: contextlib.ExitStack) -> str:
    """'run' (the cell is claimed, held until `held` closes), 'elsewhere' (another process holds it), or the
    finished folder's name: '=name' finished earlier, '+name' finished by another process meanwhile."""
    if earlier := store.finished(ctx.out_dir, cell.folder_name):
        return "=" + earlier.name
    if not held.enter_context(store.claim(ctx.out_dir, cell.folder_name)):
        return "elsewhere"
    if earlier := store.finished(ctx.out_dir, cell.folder_name):  # finished while we were checking
        return "+" + earlier.name
    return "run"


def describe(ctx: Context, cell: Cell) -> str:
    """What the cell does, and why it runs although the folder holds this design, size and seed already."""
    what = (f"untuned base model, {cell.untuned} demonstrations" if cell.untuned is not None else
            f"training on {cell.train_size} examples, seed {cell.seed}")
    if kept := store.kept(ctx.out_dir, cell.folder_name):
        what += f" (resuming from the interrupted run's {' and '.join(kept)})"
    elif (before := store.predecessor(ctx.out_dir, cell.folder_name)) is not None:
        try:
            diff = changed(results.read_config(before), cell.config)
        except SdelabError:
            diff = []
        what += (f"; runs again because {', '.join(diff[:4])}{' ...' if len(diff) > 4 else ''} changed since "
                 f"{before.name}" if diff else f"; {before.name} stays beside it") + " (the older cell is superseded)"
    return what


def run_cell(ctx: Context, cell: Cell) -> Path | None:
    """Train, evaluate and record one cell; its finished folder (None on a process other than the main one, which
    only trains)."""
    main = distributed.is_main()
    work = store.begin(ctx.out_dir, cell.folder_name, resume=True) if main else store.work_folder(
        ctx.out_dir, cell.folder_name)
    if main:
        results.write_config(work, cell.config)
    distributed.wait()  # the work folder is ready (and what it kept to resume from) before any process reads it
    t0 = time.perf_counter()
    # an untuned cell draws its demonstrations from the study's first training set
    train = cell_train(ctx, cell.config["train_size"], cell.seed, cell.design)
    modeling = MODELINGS[cell.config["modeling"]]
    fitted = modeling.fit(ctx, cell, train, work, t0)
    if not main:  # the main process evaluates and writes; this one goes on to its next decision
        return None
    metrics, rows, eval_s = evaluate_all(
        ctx, work, lambda target: evaluate(ctx, modeling, fitted.model, cell.design, target, train, cell.seed))
    head = {"cell": cell.id, "variant": cell.variant, "design": cell.design.name,
            "modeling": cell.config["modeling"], "train_size": cell.train_size, "seed": cell.seed,
            "untuned": cell.untuned}
    manifest = _manifest(ctx, cell, fitted, {**fitted.timings, "eval_s": eval_s})
    with keeping(work):  # a full disk: the error names the file and the checkpoint kept to resume from
        results.write_cell(work, head, metrics, rows, manifest)
    return store.commit(work)


def estimate_tokens(ctx: Context, cell: Cell) -> int:
    """Training tokens the cell will process (samples x epochs), from its rendered and tokenized samples; CoT
    samples whose rationales are not written yet are counted without them."""
    if cell.untuned is not None:
        return 0
    n = cell.config["train_size"]
    train = subset(ctx.train_pool, None if n == "all" else int(n), cell.seed)
    design = cell.design
    if design.reasoning != "none" and any(not e.rationale for e in train):
        design = replace(design, reasoning="none")
    samples = build_samples(ctx, ctx.task, design, train, train, cell.seed)
    per_epoch = sum(len(encode_train(ctx.formatter, s).input_ids) for s in samples)
    return int(per_epoch * ctx.study.train.epochs)


def cpu_name() -> str:
    """The processor's model name (throughput differs several-fold between machines of the same core count)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _manifest(ctx: Context, cell: Cell, fitted: Fitted, timings: dict) -> dict:
    versions = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "tokenizers", "gguf", "numpy", "scikit-learn"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    train, stats = None, fitted.stats
    if stats is not None:
        train = {"examples": fitted.examples, "steps": stats.steps, "tokens": stats.tokens,
                 "trained_tokens": stats.trained_tokens, "tokens_per_second": round(stats.tokens_per_second, 1),
                 "final_loss": stats.final_loss, "truncated_samples": fitted.truncated, "speed": stats.speed}
    return {
        "sdelab": __version__, "cell": cell.id, "study": ctx.study.name, "study_file": str(ctx.study_path),
        "seed": cell.seed, "model": {**asdict(ctx.model)}, "precision": ctx.precision, "device": str(ctx.device),
        "processes": distributed.world(), "eval_backend": ctx.study.eval.backend,
        "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
        "threads": torch.get_num_threads(), "cpu_count": len(os.sched_getaffinity(0)), "cpu": cpu_name(),
        "data_files": ctx.data_files, "train": train,
        "memory": {**(fitted.memory or {}), "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                                   / 2**20, 2)},
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "finished_at": datetime.now().astimezone().isoformat(timespec="microseconds"),  # orders reruns
    }
