"""Run a study: for each cell not yet finished, train a LoRA adapter (or take the untuned base model),
evaluate it on every evaluation set of the matrix, and write its run folder. Work the cells share (model load,
data reading, designs, rationale checks) is done once per process."""
from __future__ import annotations

import copy
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from importlib import metadata
from pathlib import Path

import torch

from sdelab import __version__
from sdelab.config import EvalSet, Study, data_root, output_dir
from sdelab.design.codec import Sample, label_texts, parse, render, response_text
from sdelab.design.demos import choose_demos
from sdelab.design.options import APPLIES, Design
from sdelab.design.reasoning import attach_rationales
from sdelab.errors import SdelabError
from sdelab.infer.generate import generate
from sdelab.infer.score import score_candidates
from sdelab.metrics import score
from sdelab.models.catalog import ResolvedModel, resolve_model
from sdelab.models.load import (classification_pad_id, is_causal_lm, load_causal_lm, load_tokenizer,
                                resolve_precision, set_threads)
from sdelab.models.tokenize import Formatter, encode_prompt, encode_train, make_formatter, response_ids
from sdelab.report.stats import per_item
from sdelab.study import store
from sdelab.study.grid import Cell, expand, prompt_distinct, study_designs
from sdelab.tasks.readers import file_sha256
from sdelab.tasks.registry import get_task
from sdelab.tasks.task import Example, Task, subset

EVAL_SUBSET_SEED = 0  # evaluation subsets are the same for every cell, whatever its seed
DEMO_POOL_CAP = 2000  # demonstrations for another task's evaluation set come from this many of its examples


@dataclass
class EvalTarget:
    """One column of the evaluation matrix."""
    key: str  # name in metrics.json and tables
    task: Task
    split: str
    template: str | None  # None: the design's own
    examples: list[Example]
    kind: str  # in_domain | out_of_domain | cross_task


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
    base_cls: object = None  # the backbone with a classification head (discriminative cells)
    cls_pad_id: int | None = None
    encoder: bool = False  # a BERT-like backbone (discriminative only)
    train_pool: list[Example] = field(default_factory=list)
    targets: list[EvalTarget] = field(default_factory=list)
    designs: list[Design] = field(default_factory=list)
    checkpoint_every: float = 600.0  # seconds between training checkpoints (does not change results)
    data_files: dict[str, str] = field(default_factory=dict)
    _pools: dict[str, list[Example]] = field(default_factory=dict)


def prepare(study: Study, study_path: Path, data_root_cli: str | None = None, out_cli: str | None = None,
            load_model: bool = True) -> Context:
    """Everything the cells share, checked before any training: task, data, designs, rationales, tokenizer."""
    task = get_task(study.task, study_path.parent)
    root = data_root(study, data_root_cli)
    ctx = Context(study, study_path, task, root, output_dir(study, out_cli), resolve_model(study.model),
                  resolve_precision(study.train.precision))
    ctx.designs = study_designs(study, task)
    if study.modeling == "discriminative":
        ctx.designs = prompt_distinct(ctx.designs)  # the cells expand_all makes for a head
    extra = {"rationale": study.rationales.column} if study.rationales and study.rationales.column else None
    ctx.train_pool = task.load(task.spec.train_split, root, extra_columns=extra)
    ctx.data_files[str(task.split_path(task.spec.train_split, root))] = file_sha256(
        task.split_path(task.spec.train_split, root))
    ctx.targets = [_target(ctx, s) for s in (study.eval.sets or task.eval_splits())]
    check_designs(ctx)
    for size in study.train_sizes:
        if size != "all" and size > len(ctx.train_pool):
            raise SdelabError(f"train size {size} is larger than the training data ({len(ctx.train_pool)} "
                              f"examples in split '{task.spec.train_split}')", path=study_path, field="train_sizes")
    if study.modeling == "discriminative":
        _heads(task)  # fails early for families without a closed label set
        for d in ctx.designs:
            if d.reasoning != "none":
                raise SdelabError(f"design '{d.name}' writes a rationale; a classification head writes nothing",
                                  path=study_path, field="designs")
    if load_model:
        set_threads()
        ctx.tokenizer = load_tokenizer(ctx.model)
        ctx.encoder = not is_causal_lm(ctx.model)
        if ctx.encoder and study.modeling != "discriminative":
            raise SdelabError(f"'{study.model}' is an encoder (no language-model head): it can only be used with "
                              "modeling: discriminative", path=study_path, field="model")
        if not ctx.encoder:
            ctx.formatter = make_formatter(ctx.tokenizer, study.prompt_format, study.train.max_length,
                                           study.system_prompt)
        if study.modeling == "discriminative":
            ctx.cls_pad_id = classification_pad_id(ctx.tokenizer) if not ctx.encoder else ctx.tokenizer.pad_token_id
    return ctx


def _target(ctx: Context, entry: str | EvalSet) -> EvalTarget:
    spec = entry if isinstance(entry, EvalSet) else EvalSet(set=entry)
    name, _, split = spec.set.rpartition(":")
    task = get_task(name, ctx.study_path.parent) if name and name != ctx.task.name else ctx.task
    if task.spec.family not in APPLIES or (task is not ctx.task and task.is_classification
                                           != ctx.task.is_classification):
        raise SdelabError(f"cannot evaluate a {ctx.task.spec.family} model on {task.name} "
                          f"({task.spec.family}): the output formats differ", path=ctx.study_path, field="eval.sets")
    if spec.template:
        task.template(spec.template)  # fails early on an unknown template
    examples = task.load(split, ctx.data_root)
    size = min(ctx.study.eval.size or len(examples), len(examples))
    examples = subset(examples, size, EVAL_SUBSET_SEED, what=f"evaluation set '{spec.set}'")
    path = task.split_path(split, ctx.data_root)
    ctx.data_files[str(path)] = file_sha256(path)
    if task is ctx.task:
        kind = "in_domain" if task.spec.splits[split].domain == "in" else "out_of_domain"
    else:
        same = (task.spec.task_type or task.name) == (ctx.task.spec.task_type or ctx.task.name)
        kind = "out_of_domain" if same else "cross_task"
    key = (split if task is ctx.task else f"{task.name}:{split}") + (f"@{spec.template}" if spec.template else "")
    return EvalTarget(key, task, split, spec.template, examples, kind)


def check_designs(ctx: Context) -> None:
    """Fail before training on what would otherwise fail mid-study."""
    ex = ctx.train_pool[0]
    for d in ctx.designs:
        for t in [None, *ctx.targets]:
            task = t.task if t else ctx.task
            dd = replace(d, template=t.template) if t and t.template else d
            try:
                render(task, dd, t.examples[0] if t else ex, response=False)
            except (ValueError, SdelabError) as e:
                raise SdelabError(f"design '{d.name}'{' on ' + t.key if t else ''}: {e}", path=ctx.study_path,
                                  field="designs") from None
        if d.reasoning != "none":
            src = ctx.study.rationales
            if src is None or not (src.teacher or src.endpoint):
                attach_rationales(ctx.task, ctx.train_pool, src, True)
        if ctx.study.eval.method == "score" and d.reasoning != "none":
            raise SdelabError(f"design '{d.name}' writes a rationale, which label scoring cannot score; use "
                              "eval.method: generate", path=ctx.study_path, field="eval.method")
    if ctx.study.eval.method == "score" and not all(t.task.is_classification for t in ctx.targets):
        raise SdelabError("label scoring needs closed label sets (classification tasks)", path=ctx.study_path,
                          field="eval.method")


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


def run_study(ctx: Context, cells: list[Cell] | None = None, log=print) -> list[Path]:
    cells = cells if cells is not None else expand(ctx.study, ctx.designs)
    done = []
    for i, cell in enumerate(cells, 1):
        earlier = store.finished(ctx.out_dir, cell.folder_name)
        if earlier:
            log(f"[{i}/{len(cells)}] {earlier.name}: finished earlier, skipped")
            done.append(earlier)
            continue
        what = (f"untuned base model, {cell.untuned} demonstrations" if cell.untuned is not None else
                f"training on {cell.train_size} examples, seed {cell.seed}")
        if kept := store.kept(ctx.out_dir, cell.folder_name):
            what += f" (resuming from the interrupted run's {' and '.join(kept)})"
        log(f"[{i}/{len(cells)}] {cell.folder_name}: {what}")
        done.append(run_cell(ctx, cell))
    return done


def run_cell(ctx: Context, cell: Cell) -> Path:
    study, task, design = ctx.study, ctx.task, cell.design
    timings: dict[str, float] = {}
    work = store.begin(ctx.out_dir, cell.folder_name, resume=True)
    store.write_yaml(work / "config.yaml", cell.config)

    t = time.perf_counter()
    n = cell.config["train_size"]  # an untuned cell draws its demonstrations from the study's first training set
    size = None if n == "all" else int(n)
    train = attach_rationales(task, subset(ctx.train_pool, size, cell.seed), study.rationales,
                              design.reasoning != "none")
    if cell.config["modeling"] == "discriminative":
        return _run_discriminative(ctx, cell, work, train, timings, t)
    if ctx.base_lm is None:
        ctx.base_lm = load_causal_lm(ctx.model, ctx.precision)
    stats, encoded = None, []
    if cell.untuned is None:
        encoded = [encode_train(ctx.formatter, s) for s in build_samples(ctx, task, design, train, train, cell.seed)]
        timings["tokenize_s"] = time.perf_counter() - t
        from sdelab.train.loop import add_lora, train_generative
        torch.manual_seed(cell.seed)
        s = _settings(study, ctx.precision, ctx.checkpoint_every)
        lm = add_lora(copy.deepcopy(ctx.base_lm), s, cell.seed)
        stats = train_generative(lm, encoded, s, cell.seed, ctx.tokenizer.pad_token_id, work / "train_log.jsonl",
                                 desc=f"train {design.name} n={cell.train_size} s={cell.seed}",
                                 checkpoint=work / CHECKPOINT)
        timings["train_s"] = stats.seconds
        lm.save_pretrained(work / "adapter")
        lm = lm.merge_and_unload()  # evaluation without the adapter's extra matrix products (a copy of the base)
    else:
        lm = ctx.base_lm

    metrics, predictions, timings["eval_s"] = evaluate_all(
        ctx, work, lambda target: evaluate(ctx, lm, design, target, train, cell.seed))
    return _finish(ctx, cell, work, metrics, predictions, stats, timings, encoded)


CHECKPOINT = "checkpoint/train_state.pt"  # in the cell's work folder (store.RESUMABLE)


def evaluate_all(ctx: Context, work: Path, evaluate_one) -> tuple[dict, list[dict], float]:
    """Metrics, predictions and seconds over every evaluation set; each set's result is kept in the cell's work
    folder as soon as it is scored (and read back, so a resumed cell computes from the same values), so a stopped
    run resumes at the next set."""
    metrics, predictions, seconds = {}, [], 0.0
    for i, target in enumerate(ctx.targets):
        part = work / "eval" / f"{i:03d}.json"
        saved = store.read_json(part) if part.exists() else None
        if saved is None or saved.get("key") != target.key:
            t = time.perf_counter()
            m, rows = evaluate_one(target)
            part.parent.mkdir(exist_ok=True)
            store.write_json(part, {"key": target.key, "metrics": m, "rows": rows,
                                    "seconds": time.perf_counter() - t})
            saved = store.read_json(part)
        metrics[target.key] = saved["metrics"]
        predictions += saved["rows"]
        seconds += saved["seconds"]
    return metrics, predictions, seconds


def _finish(ctx: Context, cell: Cell, work: Path, metrics: dict, predictions: list[dict], stats, timings: dict,
            items: list) -> Path:
    """Write predictions, their per-item statistics, manifest and metrics (last: its presence means finished) and
    publish the folder."""
    store.write_jsonl(work / "predictions.jsonl", predictions)
    store.write_json(work / store.ITEM_STATS, per_item(predictions, metrics))
    store.write_json(work / "manifest.json", _manifest(ctx, cell, stats, timings, items))
    store.write_json(work / "metrics.json", {"cell": cell.id, "variant": cell.variant, "design": cell.design.name,
                                              "modeling": cell.config["modeling"], "train_size": cell.train_size,
                                              "seed": cell.seed, "untuned": cell.untuned, "eval": metrics})
    return store.commit(work)


def _heads(task: Task) -> tuple[int, list[str]]:
    """(number of heads, class names per head) of the discriminative paradigm."""
    if task.spec.family == "multi_aspect":
        return len(task.spec.targets), task.label_names
    if task.is_classification:
        return 1, task.label_names
    raise SdelabError(f"discriminative modeling needs a closed label set; {task.name} is {task.spec.family}",
                      field="modeling")


def _cls_inputs(ctx: Context, task: Task, design: Design, examples: list[Example], train: list[Example],
                seed: int) -> tuple[list[list[int]], list[bool]]:
    """The design's prompt (instruction placement, template, demonstrations) as the classifier's input: through
    the chat template / plain text for an LLM, with the tokenizer's own special tokens for an encoder; and
    whether each had its input cut to fit train.max_length."""
    samples = build_samples(ctx, task, design, examples, train, seed, response=False)
    if ctx.formatter is not None and not ctx.encoder:
        return _prompts(ctx.formatter, samples, 0)
    limit = ctx.study.train.max_length
    ids = [ctx.tokenizer(s.prompt_text)["input_ids"] for s in samples]
    cut = [len(x) > limit for x in ids]
    # only a prompt that is too long is encoded again, cut by the tokenizer (it keeps its special tokens)
    return [ctx.tokenizer(s.prompt_text, truncation=True, max_length=limit)["input_ids"] if c else x
            for s, x, c in zip(samples, ids, cut)], cut


def _prompts(f: Formatter, samples: list[Sample], reserve: int) -> tuple[list[list[int]], list[bool]]:
    """Prompt ids of `samples` leaving `reserve` tokens for the response, and whether each had its input cut."""
    encoded = [encode_prompt(f, s, reserve) for s in samples]
    return [ids for ids, _ in encoded], [cut > 0 for _, cut in encoded]


def _cls_labels(task: Task, gold) -> list[int]:
    names = task.label_names
    if task.spec.family == "multi_aspect":
        return [names.index(gold[a]) for a in task.spec.targets]
    return [names.index(gold)]


def _run_discriminative(ctx: Context, cell: Cell, work: Path, train: list[Example], timings: dict,
                        t0: float) -> Path:
    from sdelab.models.load import load_seq_cls
    from sdelab.train.loop import ClsItem, add_lora, train_discriminative

    task, design, study = ctx.task, cell.design, ctx.study
    heads, names = _heads(task)
    items = [ClsItem(ids, _cls_labels(task, ex.gold), cut)
             for ids, cut, ex in zip(*_cls_inputs(ctx, task, design, train, train, cell.seed), train)]
    timings["tokenize_s"] = time.perf_counter() - t0
    if ctx.base_cls is None:
        ctx.base_cls = load_seq_cls(ctx.model, ctx.precision, heads * len(names), ctx.cls_pad_id)
    torch.manual_seed(cell.seed)
    s = _settings(study, ctx.precision, ctx.checkpoint_every)
    model = copy.deepcopy(ctx.base_cls)
    head = _head(model)  # a fresh head for every cell, from the cell's seed
    torch.nn.init.normal_(head.weight, std=0.02)
    if head.bias is not None:
        torch.nn.init.zeros_(head.bias)
    model = add_lora(model, s, cell.seed, task_type="SEQ_CLS")
    for p in model.parameters():  # the head (modules_to_save) and LoRA weights train in fp32
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    stats = train_discriminative(model, items, heads, s, cell.seed, ctx.cls_pad_id, work / "train_log.jsonl",
                                 desc=f"train {design.name} (head) n={cell.train_size} s={cell.seed}",
                                 checkpoint=work / CHECKPOINT)
    timings["train_s"] = stats.seconds
    model.save_pretrained(work / "adapter")
    model = model.merge_and_unload()
    metrics, predictions, timings["eval_s"] = evaluate_all(
        ctx, work, lambda target: _classify_set(ctx, model, design, target, train, cell.seed, heads, names))
    return _finish(ctx, cell, work, metrics, predictions, stats, timings, items)


def _classify_set(ctx: Context, model, design: Design, target: EvalTarget, train: list[Example], seed: int,
                  heads: int, names: list[str]) -> tuple[dict, list[dict]]:
    """Predictions and metrics of a trained classification head on one evaluation set."""
    from sdelab.infer.classify import classify
    prompts, cut = _cls_inputs(ctx, target.task, design, target.examples, train, seed)
    logits = classify(model, prompts, heads, ctx.cls_pad_id, ctx.study.eval.batch_size, ctx.precision,
                      desc=f"classify {target.key}")
    preds, rows = [], []
    for ex, lg in zip(target.examples, logits):
        per_head = [names[max(range(len(h)), key=h.__getitem__)] for h in lg]
        pred = dict(zip(target.task.spec.targets, per_head)) if heads > 1 else per_head[0]
        preds.append(pred)
        rows.append({"eval_set": target.key, "id": ex.id, "input": ex.fields, "raw": pred, "parsed": pred,
                     "lenient": pred, "gold": ex.gold, "error": None,
                     "scores": [[round(x, 4) for x in h] for h in lg] if heads > 1 else
                     dict(zip(names, (round(x, 4) for x in lg[0])))})
    m = score(target.task, [e.gold for e in target.examples], preds, [None] * len(preds),
              [e.gold for e in train] if target.task is ctx.task else [])
    m.update(kind=target.kind, template=target.task.template(design.template).name,
             template_seen=True if target.task is ctx.task else None, prompts_truncated=sum(cut))
    return m, rows


def _head(model):
    """The classification head of a sequence-classification model (score for LLMs, classifier for encoders)."""
    for name in ("score", "classifier"):
        head = getattr(model, name, None)
        if head is not None:
            return head if isinstance(head, torch.nn.Linear) else head.out_proj
    raise SdelabError("cannot find the classification head of this model")


def _settings(study: Study, precision: str, checkpoint_every: float):
    from sdelab.train.loop import TrainSettings
    tr = study.train
    return TrainSettings(epochs=tr.epochs, lr=tr.lr, batch_size=tr.batch_size, grad_accum=tr.grad_accum,
                         warmup_ratio=tr.warmup_ratio, weight_decay=tr.weight_decay,
                         max_grad_norm=tr.max_grad_norm, lora_r=tr.lora.r, lora_alpha=tr.lora.alpha,
                         lora_dropout=tr.lora.dropout, lora_targets=tr.lora.targets, precision=precision,
                         group_by_length=tr.group_by_length, tracking=tuple(tr.tracking),
                         checkpoint_every=checkpoint_every)


def _demo_pool(ctx: Context, task: Task, design: Design, train: list[Example]) -> list[Example]:
    """Where demonstrations come from: the design's `demo_pool` split, else the cell's training subset (for
    another task's evaluation set: that task's training split)."""
    if not design.demos:
        return []
    split = design.demo_pool or (None if task is ctx.task else task.spec.train_split)
    if split is None:
        return train
    key = f"{task.name}:{split}"
    if key not in ctx._pools:
        pool = task.load(split, ctx.data_root)
        ctx._pools[key] = subset(pool, min(DEMO_POOL_CAP, len(pool)), EVAL_SUBSET_SEED)
    return ctx._pools[key]


def build_samples(ctx: Context, task: Task, design: Design, examples: list[Example], train: list[Example],
                  seed: int, response: bool = True) -> list[Sample]:
    """Rendered samples of `examples`, with in-context demonstrations when the design asks for them."""
    demos = choose_demos(design, _demo_pool(ctx, task, design, train), examples, seed)
    if design.reasoning != "none" and any(demos):
        demos = _with_rationales(ctx, task, demos)
    return [render(task, design, ex, d, response=response) for ex, d in zip(examples, demos)]


def _with_rationales(ctx: Context, task: Task, demos: list[list[Example]]) -> list[list[Example]]:
    """A CoT design's demonstrations show their rationales: the study's source writes (or its cache gives) them
    for the chosen demonstrations only, of whichever task (another task's pool is thousands of examples)."""
    chosen = list({(e.id, e.source): e for row in demos for e in row}.values())
    done = attach_rationales(task, chosen, ctx.study.rationales, True, where=f"demonstrations ({task.name})")
    by_key = {(e.id, e.source): e for e in done}
    return [[by_key[e.id, e.source] for e in row] for row in demos]


def evaluate(ctx: Context, lm, design: Design, target: EvalTarget, train: list[Example],
             seed: int) -> tuple[dict, list[dict]]:
    """Predictions and metrics of `lm` on one evaluation set, by generation or by label scoring."""
    task, ev, f = target.task, ctx.study.eval, ctx.formatter
    d = replace(design, template=target.template) if target.template else design
    samples = build_samples(ctx, task, d, target.examples, train, seed, response=False)
    scores = None
    if ev.method == "score":
        labels = label_texts(task, d)
        names = list(labels)
        cands = [response_ids(f, labels[n]) for n in names]
        prompts, cut = _prompts(f, samples, max(len(c) for c in cands))
        scores = score_candidates(lm, prompts, cands, ctx.tokenizer.pad_token_id, ev.batch_size, ctx.precision,
                                  desc=f"score {target.key}")
        raws = [labels[names[max(range(len(names)), key=lambda j: sc[j])]] for sc in scores]
        finished = [True] * len(raws)
    else:
        budget = ev.max_new_tokens or generation_budget(ctx, task, d, train if task is ctx.task
                                                        else target.examples)
        prompts, cut = _prompts(f, samples, budget)
        gens = generate(lm, ctx.tokenizer, prompts, budget, ev.batch_size, precision=ctx.precision,
                        desc=f"generate {target.key}")
        raws, finished = [g.text for g in gens], [g.finished for g in gens]
    preds, errors, rows = [], [], []
    for i, (ex, raw) in enumerate(zip(target.examples, raws)):
        pred, err = parse(task, d, raw, truncated=not finished[i])
        preds.append(pred)
        errors.append(err)
        row = {"eval_set": target.key, "id": ex.id, "input": ex.fields, "raw": raw,
               "parsed": pred if err is None else None, "lenient": pred, "gold": ex.gold, "error": err}
        if scores is not None:
            row["scores"] = dict(zip(names, (round(x, 4) for x in scores[i])))
        rows.append(row)
    train_gold = [e.gold for e in train] if task is ctx.task else []
    m = score(task, [e.gold for e in target.examples], preds, errors, train_gold)
    trained_tpl = task.template(design.template).name if task is ctx.task else None
    used_tpl = task.template(d.template).name
    m.update(kind=target.kind, template=used_tpl,
             template_seen=used_tpl == trained_tpl if task is ctx.task else None, prompts_truncated=sum(cut))
    return m, rows


def generation_budget(ctx: Context, task: Task, design: Design, examples: list[Example]) -> int:
    """Enough new tokens for the longest response the design writes for these examples, plus slack."""
    lengths = []
    for ex in examples[:2000]:
        try:
            lengths.append(len(ctx.formatter.ids(response_text(task, design, ex))))
        except ValueError:  # no rationale: budget the answer and a rationale of similar size
            lengths.append(2 * len(ctx.formatter.ids(response_text(task, replace(design, reasoning="none"), ex)))
                           + 64)
    if task.is_classification and design.reasoning == "none":
        lengths += [len(ctx.formatter.ids(t)) for t in label_texts(task, design).values()]
    longest = max(lengths)
    return longest + max(4, longest // 4)


def _cpu_name() -> str:
    """The processor's model name (throughput differs several-fold between machines of the same core count)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _manifest(ctx: Context, cell: Cell, stats, timings: dict, encoded) -> dict:
    versions = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "tokenizers", "gguf", "numpy", "scikit-learn"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    train = None
    if stats is not None:
        train = {"examples": len(encoded), "steps": stats.steps, "tokens": stats.tokens,
                 "trained_tokens": stats.trained_tokens, "tokens_per_second": round(stats.tokens_per_second, 1),
                 "final_loss": stats.final_loss,
                 "truncated_samples": sum(1 for e in encoded if getattr(e, "truncated", 0))}
    return {
        "sdelab": __version__, "cell": cell.id, "study": ctx.study.name, "study_file": str(ctx.study_path),
        "seed": cell.seed, "model": {**asdict(ctx.model)}, "precision": ctx.precision,
        "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
        "threads": torch.get_num_threads(), "cpu_count": len(os.sched_getaffinity(0)), "cpu": _cpu_name(),
        "data_files": ctx.data_files, "train": train,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "finished_at": datetime.now().astimezone().isoformat(timespec="microseconds"),  # orders reruns
    }
