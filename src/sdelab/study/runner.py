"""Run a study: for each cell not yet finished, train a LoRA adapter, evaluate it on every evaluation set,
and write its run folder. Shared work (model load, data reading, evaluation prompts) is done once per process."""
from __future__ import annotations

import copy
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from sdelab import __version__
from sdelab.config import Study, data_root, output_dir
from sdelab.design.codec import Sample, label_texts, parse, render, response_text
from sdelab.design.demos import choose_demos
from sdelab.design.options import Design
from sdelab.design.reasoning import attach_rationales
from sdelab.errors import SdelabError
from sdelab.infer.generate import generate
from sdelab.infer.score import score_candidates
from sdelab.metrics.classification import classification_metrics, majority_baseline
from sdelab.models.catalog import ResolvedModel, resolve_model
from sdelab.models.load import load_causal_lm, load_tokenizer, resolve_precision, set_threads
from sdelab.models.tokenize import Formatter, encode_prompt, encode_train, make_formatter, response_ids
from sdelab.study import store
from sdelab.study.grid import Cell, expand, study_designs
from sdelab.tasks.readers import file_sha256
from sdelab.tasks.registry import get_task
from sdelab.tasks.task import Example, Task, subset
from sdelab.train.loop import TrainSettings, add_lora, train_generative

EVAL_SUBSET_SEED = 0
SCORED_FAMILIES = ("single_classification", "pair_classification")  # evaluation subsets are the same for every cell, whatever its seed


@dataclass
class Context:
    """What every cell of a study shares, built once."""
    study: Study
    study_path: Path
    task: Task
    data_root: Path
    out_dir: Path
    model: ResolvedModel
    precision: str
    tokenizer: object = None
    formatter: Formatter | None = None
    base_lm: object = None
    train_pool: list[Example] = field(default_factory=list)
    eval_sets: dict[str, list[Example]] = field(default_factory=dict)
    designs: list[Design] = field(default_factory=list)
    data_files: dict[str, str] = field(default_factory=dict)


def prepare(study: Study, study_path: Path, data_root_cli: str | None = None, out_cli: str | None = None,
            load_model: bool = True) -> Context:
    """Everything the cells share, checked before any training: task, data, designs, rationales, tokenizer."""
    task = get_task(study.task, study_path.parent)
    if task.spec.family not in SCORED_FAMILIES:
        raise SdelabError(f"task '{task.name}' is of the {task.spec.family} family, which sdelab can render and "
                          "parse (sdelab render) but cannot score in a study yet", field="task")
    root = data_root(study, data_root_cli)
    ctx = Context(study, study_path, task, root, output_dir(study, out_cli), resolve_model(study.model),
                  resolve_precision(study.train.precision))
    ctx.designs = study_designs(study, task)
    extra = {"rationale": study.rationales.column} if study.rationales and study.rationales.column else None
    ctx.train_pool = task.load(task.spec.train_split, root, extra_columns=extra)
    check_designs(ctx)
    sets = study.eval.sets or task.eval_splits()
    for s in sets:
        examples = task.load(s, root)
        ctx.eval_sets[s] = subset(examples, min(study.eval.size or len(examples), len(examples)), EVAL_SUBSET_SEED)
    for s in [task.spec.train_split, *sets]:
        p = task.split_path(s, root)
        ctx.data_files[str(p)] = file_sha256(p)
    for size in study.train_sizes:
        if size != "all" and size > len(ctx.train_pool):
            raise SdelabError(f"train size {size} is larger than the training data ({len(ctx.train_pool)} "
                              f"examples in split '{task.spec.train_split}')", path=study_path, field="train_sizes")
    if load_model:
        set_threads()
        ctx.tokenizer = load_tokenizer(ctx.model)
        ctx.formatter = make_formatter(ctx.tokenizer, study.prompt_format, study.train.max_length,
                                       study.system_prompt)
    return ctx


def check_designs(ctx: Context) -> None:
    """Fail before training on what would otherwise fail mid-study."""
    ex = ctx.train_pool[0]
    for d in ctx.designs:
        try:
            render(ctx.task, d, ex, response=False)
        except (ValueError, SdelabError) as e:
            raise SdelabError(f"design '{d.name}': {e}", path=ctx.study_path, field="designs") from None
        if d.reasoning != "none":
            if ctx.study.eval.method == "score":
                raise SdelabError(f"design '{d.name}' writes a rationale, which label scoring cannot score; use "
                                  "eval.method: generate", path=ctx.study_path, field="eval.method")
            src = ctx.study.rationales
            if src is None or not (src.teacher or src.endpoint):
                attach_rationales(ctx.task, ctx.train_pool, src, True)
        if ctx.study.eval.method == "score" and not ctx.task.is_classification:
            raise SdelabError("label scoring needs a closed label set (a classification task)",
                              path=ctx.study_path, field="eval.method")


def run_study(ctx: Context, cells: list[Cell] | None = None, log=print) -> list[Path]:
    cells = cells if cells is not None else expand(ctx.study, ctx.designs)
    done = []
    for i, cell in enumerate(cells, 1):
        if store.finished(ctx.out_dir, cell.folder_name):
            log(f"[{i}/{len(cells)}] {cell.folder_name}: finished earlier, skipped")
            done.append(ctx.out_dir / cell.folder_name)
            continue
        log(f"[{i}/{len(cells)}] {cell.folder_name}: training on {cell.train_size} examples, seed {cell.seed}")
        done.append(run_cell(ctx, cell))
    return done


def run_cell(ctx: Context, cell: Cell) -> Path:
    study, task, design = ctx.study, ctx.task, cell.design
    timings = {}
    work = store.begin(ctx.out_dir, cell.folder_name)
    store.write_yaml(work / "config.yaml", cell.config)

    t = time.perf_counter()
    size = None if cell.train_size == "all" else int(cell.train_size)
    train = attach_rationales(task, subset(ctx.train_pool, size, cell.seed), study.rationales,
                              design.reasoning != "none")
    encoded = [encode_train(ctx.formatter, s) for s in build_samples(ctx, design, train, train, cell.seed)]
    timings["tokenize_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if ctx.base_lm is None:
        ctx.base_lm = load_causal_lm(ctx.model, ctx.precision)
    torch.manual_seed(cell.seed)
    s = _settings(study, ctx.precision)
    lm = add_lora(copy.deepcopy(ctx.base_lm), s, cell.seed)
    timings["load_s"] = time.perf_counter() - t

    stats = train_generative(lm, encoded, s, cell.seed, ctx.tokenizer.pad_token_id, work / "train_log.jsonl",
                             desc=f"train {design.name} n={cell.train_size} s={cell.seed}")
    timings["train_s"] = stats.seconds
    lm.save_pretrained(work / "adapter")

    t = time.perf_counter()
    metrics, predictions = {}, []
    for name, examples in ctx.eval_sets.items():
        m, preds = evaluate(ctx, lm, design, examples, name, train, cell.seed)
        m["domain"] = task.spec.splits[name].domain
        m["majority_baseline"] = majority_baseline([e.label for e in train], [e.label for e in examples],
                                                   task.label_names)
        metrics[name] = m
        predictions += preds
    timings["eval_s"] = time.perf_counter() - t
    store.write_jsonl(work / "predictions.jsonl", predictions)
    store.write_json(work / "manifest.json", _manifest(ctx, cell, stats, timings, encoded))
    store.write_json(work / "metrics.json", {"cell": cell.id, "design": design.name,
                                              "train_size": cell.train_size, "seed": cell.seed,
                                              "eval": metrics})
    del lm
    return store.commit(work)


def _settings(study: Study, precision: str) -> TrainSettings:
    tr = study.train
    return TrainSettings(epochs=tr.epochs, lr=tr.lr, batch_size=tr.batch_size, grad_accum=tr.grad_accum,
                         warmup_ratio=tr.warmup_ratio, weight_decay=tr.weight_decay,
                         max_grad_norm=tr.max_grad_norm, lora_r=tr.lora.r, lora_alpha=tr.lora.alpha,
                         lora_dropout=tr.lora.dropout, lora_targets=tr.lora.targets, precision=precision,
                         group_by_length=tr.group_by_length)


def build_samples(ctx: Context, design: Design, examples: list[Example], train: list[Example], seed: int,
                  response: bool = True) -> list[Sample]:
    """Rendered samples of `examples`, with in-context demonstrations from the design's pool (default: the
    cell's training subset) when the design asks for them."""
    pool = train
    if design.demos and design.demo_pool:
        pool = attach_rationales(ctx.task, ctx.task.load(design.demo_pool, ctx.data_root), ctx.study.rationales,
                                 design.reasoning != "none", where=f"demonstration pool '{design.demo_pool}'")
    demos = choose_demos(design, pool, examples, seed)
    return [render(ctx.task, design, ex, d, response=response) for ex, d in zip(examples, demos)]


def evaluate(ctx: Context, lm, design: Design, examples: list[Example], set_name: str, train: list[Example],
             seed: int) -> tuple[dict, list[dict]]:
    """Predictions and metrics of `lm` on one evaluation set, by generation or by label scoring."""
    task, ev, f = ctx.task, ctx.study.eval, ctx.formatter
    samples = build_samples(ctx, design, examples, train, seed, response=False)
    labels = label_texts(task, design)
    names = list(labels)
    if ev.method == "score":
        cands = [response_ids(f, labels[n]) for n in names]
        reserve = max(len(c) for c in cands)
        prompts = [encode_prompt(f, s, reserve)[0] for s in samples]
        scores = score_candidates(lm, prompts, cands, ctx.tokenizer.pad_token_id, ev.batch_size, ctx.precision,
                                  desc=f"score {set_name}")
        raws = [labels[names[max(range(len(names)), key=lambda j: sc[j])]] for sc in scores]
        finished = [True] * len(raws)
    else:
        budget = ev.max_new_tokens or generation_budget(ctx, design, train)
        prompts = [encode_prompt(f, s, budget)[0] for s in samples]
        gens = generate(lm, ctx.tokenizer, prompts, budget, ev.batch_size, precision=ctx.precision,
                        desc=f"generate {set_name}")
        raws, finished = [g.text for g in gens], [g.finished for g in gens]
        scores = None
    strict, lenient, errors, rows = [], [], [], []
    for i, (ex, raw) in enumerate(zip(examples, raws)):
        pred, err = parse(task, design, raw, truncated=not finished[i])
        strict.append(pred if err is None else None)
        lenient.append(pred)
        errors.append(err)
        row = {"eval_set": set_name, "id": ex.id, "input": ex.fields, "raw": raw, "parsed": strict[-1],
               "lenient": pred, "gold": ex.gold, "error": err}
        if scores is not None:
            row["scores"] = dict(zip(names, (round(x, 4) for x in scores[i])))
        rows.append(row)
    m = classification_metrics([e.label for e in examples], strict, lenient, errors, task.label_names)
    return m, rows


def generation_budget(ctx: Context, design: Design, train: list[Example]) -> int:
    """Enough new tokens for the longest response the design writes for a training example, plus slack."""
    longest = max(len(ctx.formatter.ids(response_text(ctx.task, design, ex))) for ex in train)
    if ctx.task.is_classification and design.reasoning == "none":
        longest = max([longest] + [len(ctx.formatter.ids(t)) for t in label_texts(ctx.task, design).values()])
    return longest + max(4, longest // 4)


def _manifest(ctx: Context, cell: Cell, stats, timings: dict, encoded) -> dict:
    versions = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "tokenizers", "gguf", "numpy", "scikit-learn"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "sdelab": __version__, "cell": cell.id, "study": ctx.study.name, "study_file": str(ctx.study_path),
        "seed": cell.seed, "model": {**asdict(ctx.model)}, "precision": ctx.precision,
        "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
        "threads": torch.get_num_threads(), "cpu_count": len(__import__("os").sched_getaffinity(0)),
        "data_files": ctx.data_files,
        "train": {"examples": len(encoded), "steps": stats.steps, "tokens": stats.tokens,
                  "trained_tokens": stats.trained_tokens, "tokens_per_second": round(stats.tokens_per_second, 1),
                  "final_loss": stats.final_loss, "truncated_samples": sum(1 for e in encoded if e.truncated)},
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
