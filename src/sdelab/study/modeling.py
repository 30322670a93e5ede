"""The two ways of modelling a task behind one interface: `fit` a cell's model (or take the untuned base model),
`predict` an evaluation set with it. Generative: LoRA on a causal LM that writes the answer (generation + parse,
or label scoring). Head: LoRA on the backbone plus a classification head (closed label sets; one head per aspect
for multi-aspect sentiment)."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from sdelab import fileio
from sdelab.fileio import is_main_process
from sdelab.design.codec import label_texts, parse, response_text
from sdelab.design.options import Design
from sdelab.design.sample import Sample
from sdelab.errors import SdelabError
from sdelab.models.device import device_of
from sdelab.models.load import load_causal_lm, load_seq_cls
from sdelab.models.tokenize import Formatter, encode_prompt, encode_train, response_ids
from sdelab.results import TRAIN_LOG, PredictionRow
from sdelab.study.context import Context, EvalTarget, build_samples, heads
from sdelab.study.grid import Cell
from sdelab.tasks.task import Example, Task
from sdelab.train.loop import (ClsItem, OnUpdate, TrainSettings, TrainStats, add_lora, train_discriminative,
                              train_generative)
from sdelab.train.memory import available_bytes, static_needed

CHECKPOINT = "checkpoint/train_state.pt"  # in the cell's work folder (store.RESUMABLE)
SCORED = "eval"  # the work folder's evaluation sets scored so far (study.evaluate; store.RESUMABLE)


@dataclass
class Fitted:
    model: object
    stats: TrainStats | None = None  # None: the untuned base model
    examples: int = 0
    truncated: int = 0  # training samples whose input was cut to fit max_length
    timings: dict[str, float] = field(default_factory=dict)
    memory: dict | None = None  # check_memory's figures


@dataclass(frozen=True)
class Served:
    """The model a cell evaluates under `eval.backend: vllm`: the folders vLLM loads, not a model in memory (no
    LoRA merge: vLLM applies the adapter itself; infer/vllm_engine.py)."""
    weights: str  # the base model's folder (or hub id), or a fully fine-tuned cell's work/model
    adapter: Path | None = None  # the cell's saved LoRA adapter; None: the weights alone (untuned, full)


def _settings(ctx: Context) -> TrainSettings:
    return TrainSettings.from_section(ctx.study.train.model_dump(), ctx.precision, ctx.checkpoint_every)


def base_lm(ctx: Context, full: bool = False):
    """The sub-study's causal LM, loaded once (ctx.cache) and deep-copied by every cell that trains it; in fp32
    for full fine-tuning (its weights are trained; autocast still computes in the run's precision)."""
    precision = "fp32" if full else ctx.precision
    return _cached(ctx, "causal_lm", precision, lambda: load_causal_lm(ctx.model, precision, ctx.device))


def _cached(ctx: Context, kind: str, precision: str, load):
    """A base model of the sub-study, loaded once per precision; one precision of a kind is kept at a time."""
    if (kind, precision) not in ctx.cache:
        for key in [k for k in ctx.cache if k[0] == kind]:
            del ctx.cache[key]
        ctx.cache[(kind, precision)] = load()
    return ctx.cache[(kind, precision)]


def check_memory(model, s: TrainSettings) -> dict:
    """The static memory a training step needs (weights, gradients, AdamW state), refused before training when
    it exceeds what the machine has available (the activations are the loop's: train/memory.py)."""
    need = static_needed(model)
    avail = available_bytes(device_of(model))
    need["available_gib"] = round(avail / 2**30, 1) if avail is not None else None
    total = need["weights_gib"] + need["gradients_adam_gib"]
    if avail is not None and total > 0.9 * avail / 2**30:
        raise SdelabError(f"training needs about {total:.1f} GiB for weights, gradients and AdamW state before any "
                          f"activation, and {avail / 2**30:.1f} GiB are available: use LoRA (train.lora) or a "
                          "smaller model", field="train.lora")
    return need


def _save_trained(model, s: TrainSettings, work: Path) -> Path:
    """Save what was trained (the adapter; the whole model under full fine-tuning); its folder."""
    folder = work / ("model" if s.full else "adapter")
    if is_main_process():  # (the other processes of a data-parallel launch trained the same weights)
        with keeping(work):
            model.save_pretrained(folder)
    return folder


def _finish_training(model, s: TrainSettings, work: Path):
    """Save what was trained and return the model to evaluate (LoRA merged into a copy of the base: plain linear
    layers)."""
    _save_trained(model, s, work)
    return model if s.full else model.merge_and_unload()


def _served(ctx: Context, model, s: TrainSettings, work: Path) -> Served:
    """eval.backend: vllm: save what was trained and hand vLLM its folders (nothing merged; the trained copy is
    dropped when `fit` returns, which frees its memory for the engine)."""
    folder = _save_trained(model, s, work)
    return Served(str(folder), None) if s.full else Served(ctx.model.path, folder)


def keeping(work: Path):
    """Running out of disk space while a cell trains, saves or scores: one error naming the file written, and what
    the cell's work folder keeps to resume from."""
    def kept() -> str:
        got = [f"the last checkpoint in {(work / CHECKPOINT).parent}"] if (work / CHECKPOINT).exists() else []
        got += [f"the sets scored in {work / SCORED}"] if any((work / SCORED).glob("*.json")) else []
        return " and ".join(got) + (" are kept" if len(got) > 1 else " is kept") if got else \
            "nothing of this cell was kept yet (it starts over)"
    return fileio.on_disk_full(work, kept)


def _prompts(f: Formatter, samples: list[Sample], reserve: int) -> tuple[list[list[int]], list[bool]]:
    """Prompt ids of `samples` leaving `reserve` tokens for the response, and whether each had its input cut."""
    encoded = [encode_prompt(f, s, reserve) for s in samples]
    return [ids for ids, _ in encoded], [cut > 0 for _, cut in encoded]


class Generative:
    """The model writes the answer. `predict` returns the prediction rows and how many prompts were cut."""

    def fit(self, ctx: Context, cell: Cell, train: list[Example], work: Path, t0: float,
            on_update: OnUpdate | None = None) -> Fitted:
        s = _settings(ctx)
        vllm = ctx.study.eval.backend == "vllm"
        if vllm and cell.untuned is not None:  # the base model as vLLM loads it; nothing loaded here
            return Fitted(Served(ctx.model.path))
        lm = base_lm(ctx, s.full and cell.untuned is None)
        if cell.untuned is not None:
            return Fitted(lm)
        design = cell.design
        encoded = [encode_train(ctx.formatter, x) for x in build_samples(ctx, ctx.task, design, train, train,
                                                                          cell.seed)]
        tokenize_s = time.perf_counter() - t0
        torch.manual_seed(cell.seed)
        lm = add_lora(copy.deepcopy(lm), s, cell.seed)
        memory = check_memory(lm, s)
        with keeping(work):
            stats = train_generative(lm, encoded, s, cell.seed, ctx.tokenizer.pad_token_id, work / TRAIN_LOG,
                                     desc=f"train {design.name} n={cell.train_size} s={cell.seed}",
                                     checkpoint=work / CHECKPOINT, on_update=on_update)
        done = _served(ctx, lm, s, work) if vllm else _finish_training(lm, s, work)
        return Fitted(done, stats, len(encoded), sum(1 for e in encoded if e.truncated),
                      {"tokenize_s": tokenize_s, "train_s": stats.seconds}, memory)

    def predict(self, ctx: Context, lm, design: Design, target: EvalTarget, train: list[Example],
                seed: int) -> tuple[list[PredictionRow], int]:
        """By generation and parsing, or by label scoring (`eval.method: score`); through vLLM when `fit` handed
        over a `Served` model (eval.backend: vllm)."""
        task, ev, f = target.task, ctx.study.eval, ctx.formatter
        samples = build_samples(ctx, task, design, target.examples, train, seed, response=False)
        scores = None
        served = _engine(ctx, lm) if isinstance(lm, Served) else None
        if ev.method == "score" and task.is_classification:  # another family's sets are generated
            from sdelab.infer.score import score_candidates
            names, cands = label_candidates(ctx, task, design)
            prompts, cut = _prompts(f, samples, max(len(c) for c in cands))
            if served is not None:
                scores = served.score(prompts, cands, lm.adapter)
            else:
                scores = score_candidates(lm, prompts, cands, ctx.tokenizer.pad_token_id, ev.batch_size,
                                          ctx.precision, desc=f"score {target.key}")
            labels = label_texts(task, design)
            raws = [labels[names[max(range(len(names)), key=lambda j: sc[j])]] for sc in scores]
            finished = [True] * len(raws)
        else:
            from sdelab.infer.generate import generate
            budget = ev.max_new_tokens or generation_budget(ctx, task, design, train if task is ctx.task
                                                            else target.examples)
            prompts, cut = _prompts(f, samples, budget)
            sampling = None
            if ev.decoding is not None:  # seeded by the cell and the sample: the same seed, the same text
                sampling = (ev.decoding.temperature, ev.decoding.top_p, seed * 1000 + target.sample)
            if served is not None:
                gens = served.generate(prompts, budget, lm.adapter, sampling)
            else:
                gens = generate(lm, ctx.tokenizer, prompts, budget, ev.batch_size, precision=ctx.precision,
                                desc=f"generate {target.key}", sampling=sampling)
            raws, finished = [g.text for g in gens], [g.finished for g in gens]
        rows = []
        for i, (ex, raw) in enumerate(zip(target.examples, raws)):
            pred, err = parse(task, design, raw, truncated=not finished[i])
            rows.append(PredictionRow(target.key, ex.id, ex.fields, raw, pred if err is None else None, pred,
                                      ex.gold, err, None if scores is None else
                                      dict(zip(names, (round(x, 4) for x in scores[i])))))
        return rows, sum(cut)


def _engine(ctx: Context, model: Served):
    """The sub-study's vLLM engine for the served weights (built once, in ctx.cache): LoRA enabled up to the
    study's rank when the study trains adapters, the tokenizer always the base model's."""
    from sdelab.infer.vllm_engine import engine, lora_rank
    lora = ctx.study.train.lora
    rank = lora_rank(lora.r) if lora is not None and model.weights == ctx.model.path else None
    return engine(ctx.cache, model.weights, ctx.model.path, ctx.precision, rank)


def label_candidates(ctx: Context, task: Task, design: Design) -> tuple[list[str], list[list[int]]]:
    """Label names and the token ids label scoring compares: each label's response with end-of-sequence
    (`eval.scoring: sequence`), or its first token alone (`first_token`, as the GenFT code's evaluate_cross.py)."""
    labels = label_texts(task, design)
    names = list(labels)
    cands = [response_ids(ctx.formatter, labels[n]) for n in names]
    if ctx.study.eval.scoring == "first_token":
        cands = [c[:1] for c in cands]
        if len({c[0] for c in cands}) < len(cands):
            raise SdelabError(f"labels of {task.name} share their first token: first-token scoring cannot tell "
                              "them apart; use eval.scoring: sequence", field="eval.scoring")
    return names, cands


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


class Head:
    """A classification head on the backbone reads the design's prompt (its instruction placement, template and
    demonstrations); how the response would be written does not reach it."""

    def fit(self, ctx: Context, cell: Cell, train: list[Example], work: Path, t0: float,
            on_update: OnUpdate | None = None) -> Fitted:
        task, design = ctx.task, cell.design
        n_heads, names = heads(task)
        prompts, cut = cls_inputs(ctx, task, design, train, train, cell.seed)
        items = [ClsItem(ids, _labels(task, ex.gold), c) for ids, c, ex in zip(prompts, cut, train)]
        tokenize_s = time.perf_counter() - t0
        s = _settings(ctx)
        if cell.config["modeling"] == "encoder":  # every weight trained, whatever train.lora says
            s = replace(s, full=True)
        precision = "fp32" if s.full else ctx.precision  # trained weights are fp32; autocast computes
        base = _cached(ctx, "seq_cls", precision,
                       lambda: load_seq_cls(ctx.model, precision, n_heads * len(names), ctx.cls_pad_id,
                                            ctx.device))
        torch.manual_seed(cell.seed)
        model = copy.deepcopy(base)
        head = _head(model)  # a fresh head for every cell, from the cell's seed
        torch.nn.init.normal_(head.weight, std=0.02)
        if head.bias is not None:
            torch.nn.init.zeros_(head.bias)
        model = add_lora(model, s, cell.seed, task_type="SEQ_CLS")
        for p in model.parameters():  # the head (modules_to_save), LoRA weights, or every weight train in fp32
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
        memory = check_memory(model, s)
        with keeping(work):
            stats = train_discriminative(model, items, n_heads, s, cell.seed, ctx.cls_pad_id, work / TRAIN_LOG,
                                         desc=f"train {design.name} (head) n={cell.train_size} s={cell.seed}",
                                         checkpoint=work / CHECKPOINT, on_update=on_update)
        return Fitted(_finish_training(model, s, work), stats, len(items), sum(cut),
                      {"tokenize_s": tokenize_s, "train_s": stats.seconds}, memory)

    def predict(self, ctx: Context, model, design: Design, target: EvalTarget, train: list[Example],
                seed: int) -> tuple[list[PredictionRow], int]:
        from sdelab.infer.classify import classify
        n_heads, names = heads(target.task)
        prompts, cut = cls_inputs(ctx, target.task, design, target.examples, train, seed)
        logits = classify(model, prompts, n_heads, ctx.cls_pad_id, ctx.study.eval.batch_size, ctx.precision,
                          desc=f"classify {target.key}")
        rows = []
        for ex, lg in zip(target.examples, logits):
            per_head = [names[max(range(len(h)), key=h.__getitem__)] for h in lg]
            pred = dict(zip(target.task.spec.targets, per_head)) if n_heads > 1 else per_head[0]
            rows.append(PredictionRow(target.key, ex.id, ex.fields, pred, pred, pred, ex.gold, None,
                                      [[round(x, 4) for x in h] for h in lg] if n_heads > 1 else
                                      dict(zip(names, (round(x, 4) for x in lg[0])))))
        return rows, sum(cut)


def cls_inputs(ctx: Context, task: Task, design: Design, examples: list[Example], train: list[Example],
               seed: int) -> tuple[list[list[int]], list[bool]]:
    """The design's prompt as the classifier's input: through the chat template / plain text for an LLM, with the
    tokenizer's own special tokens for an encoder; and whether each had its input cut to fit train.max_length."""
    samples = build_samples(ctx, task, design, examples, train, seed, response=False)
    if not ctx.encoder:
        return _prompts(ctx.formatter, samples, 0)
    limit = ctx.study.train.max_length
    ids = [ctx.tokenizer(s.prompt_text)["input_ids"] for s in samples]
    cut = [len(x) > limit for x in ids]
    # only a prompt that is too long is encoded again, cut by the tokenizer (it keeps its special tokens)
    return [ctx.tokenizer(s.prompt_text, truncation=True, max_length=limit)["input_ids"] if c else x
            for s, x, c in zip(samples, ids, cut)], cut


def _labels(task: Task, gold) -> list[int]:
    names = task.label_names
    if task.spec.family == "multi_aspect":
        return [names.index(gold[a]) for a in task.spec.targets]
    return [names.index(gold)]


def _head(model):
    """The classification head of a sequence-classification model (score for LLMs, classifier for encoders)."""
    for name in ("score", "classifier"):
        head = getattr(model, name, None)
        if head is not None:
            return head if isinstance(head, torch.nn.Linear) else head.out_proj
    raise SdelabError("cannot find the classification head of this model")


MODELINGS = {"generative": Generative(), "discriminative": Head(), "encoder": Head(),  # by config['modeling']
             "untuned": Generative()}
