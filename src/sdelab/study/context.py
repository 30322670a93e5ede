"""What every cell of a sub-study shares, prepared and checked once before anything trains: data, evaluation
matrix, designs, rationales, tokenizer and chat scaffolding; and the rendering of samples for a cell."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from sdelab.config import EvalSet, Study, data_root, output_dir
from sdelab.design.codec import render
from sdelab.design.demos import choose_demos
from sdelab.design.options import APPLIES, Design
from sdelab.design.sample import Sample
from sdelab.errors import SdelabError
from sdelab.models.catalog import ResolvedModel, resolve_model
from sdelab.models.load import classification_pad_id, is_causal_lm, load_tokenizer, set_threads
from sdelab.models.device import resolve_device, resolve_precision
from sdelab.models.tokenize import Formatter, make_formatter
from sdelab.study.grid import SubStudy
from sdelab.study.rationales import attach_rationales
from sdelab.tasks.readers import file_sha256
from sdelab.tasks.registry import get_task
from sdelab.tasks.task import Example, Task, subset

EVAL_SUBSET_SEED = 0  # evaluation subsets are the same for every cell, whatever its seed
DEMO_POOL_CAP = 2000  # demonstrations for another task's evaluation set come from this many of its examples


@dataclass(frozen=True)
class EvalTarget:
    """One column of the evaluation matrix."""
    key: str  # name in metrics.json and tables
    task: Task
    split: str
    template: str | None  # None: the design's own
    examples: list[Example]
    kind: str  # in_domain | out_of_domain | cross_task
    demos: int | None = None  # k demonstrations in every test prompt (None: the design's own)
    sample: int | None = None  # which sample of sampled decoding (None: greedy)


@dataclass(frozen=True)
class Context:
    """What every cell of a sub-study shares, built once by `prepare`. `cache` holds what is loaded lazily and
    shared by every cell (base models, demonstration pools)."""
    study: Study
    study_path: Path
    task: Task
    designs: tuple[Design, ...]
    data_root: Path
    out_dir: Path
    model: ResolvedModel
    precision: str  # resolved: bf16 | fp16 | fp32 (models/device.py, from the device)
    train_pool: list[Example]
    targets: list[EvalTarget]
    data_files: dict[str, str]
    tokenizer: object = None
    formatter: Formatter | None = None
    cls_pad_id: int | None = None
    encoder: bool = False  # a BERT-like backbone (discriminative only)
    checkpoint_every: float = 600.0  # seconds between training checkpoints (does not change results)
    device: object = None  # torch.device every model of the sub-study is placed on (models/device.py)
    cache: dict = field(default_factory=dict)


def prepare(sub: SubStudy, study_path: Path, data_root_cli: str | None = None, out_cli: str | None = None,
            load_model: bool = True, checkpoint_every: float = 600.0) -> Context:
    """Everything the cells share, checked before any training: task, data, designs, rationales, tokenizer."""
    study, task = sub.study, sub.task
    model = resolve_model(study.model)
    root = data_root(study, data_root_cli)
    extra = {"rationale": study.rationales.column} if study.rationales and study.rationales.column else None
    pool = task.load(task.spec.train_split, root, extra_columns=extra)
    files: dict[str, str] = {}
    path = task.split_path(task.spec.train_split, root)
    files[str(path)] = file_sha256(path)
    sets = [s if isinstance(s, EvalSet) else EvalSet(set=s) for s in study.eval.sets or task.eval_splits()]
    own = [s for s in sets if not s.template and s.set.rpartition(":")[0] in ("", task.name)]
    sets += [s.model_copy(update={"template": tpl}) for tpl in study.eval.templates for s in own]
    targets = [_target(study, study_path, task, root, files, s) for s in sets]
    if study.eval.decoding:  # each sample scored as its own set
        targets = [replace(t, key=f"{t.key}~s{i}", sample=i) for t in targets
                   for i in range(study.eval.decoding.samples)]
    device = resolve_device(study.device)
    ctx = Context(study, study_path, task, sub.designs, root, output_dir(study, out_cli), model,
                  resolve_precision(study.train.precision, device), pool, targets, files,
                  checkpoint_every=checkpoint_every, device=device)
    check_designs(ctx)
    for size in study.train_sizes:
        if size != "all" and size > len(pool):
            raise SdelabError(f"train size {size} is larger than the training data ({len(pool)} examples in split "
                              f"'{task.spec.train_split}')", path=study_path, field="train_sizes")
    if study.modeling != "generative":
        heads(task)  # fails early for families without a closed label set
        for d in ctx.designs:
            if d.reasoning != "none":
                raise SdelabError(f"design '{d.name}' writes a rationale; a classification head writes nothing",
                                  path=study_path, field="designs")
    if study.eval.backend == "vllm":  # before any training, not at the first cell's evaluation
        if study.modeling != "generative":
            raise SdelabError(f"a classification head (modeling: {study.modeling}) is not served by vLLM; use "
                              "eval.backend: builtin", path=study_path, field="eval.backend")
        from sdelab.infer.vllm_engine import check_available
        try:
            check_available()
        except SdelabError as e:
            raise SdelabError(e.message, path=study_path, field=e.field) from None
    if not load_model:
        return ctx
    set_threads()
    tok = load_tokenizer(ctx.model)
    encoder = not is_causal_lm(ctx.model)
    if encoder and study.modeling == "generative":
        raise SdelabError(f"'{study.model}' is an encoder (no language-model head): it can only be used with "
                          "modeling: discriminative or encoder", path=study_path, field="model")
    formatter = None if encoder else make_formatter(tok, study.prompt_format, study.train.max_length,
                                                    study.system_prompt)
    pad = None
    if study.modeling != "generative":
        pad = classification_pad_id(tok) if not encoder else tok.pad_token_id
    return replace(ctx, tokenizer=tok, formatter=formatter, cls_pad_id=pad, encoder=encoder)


def _target(study: Study, study_path: Path, own: Task, root: Path, files: dict, spec: EvalSet) -> EvalTarget:
    name, _, split = spec.set.rpartition(":")
    task = get_task(name, study_path.parent) if name and name != own.name else own
    if task.spec.family not in APPLIES or (study.modeling != "generative" and task is not own
                                           and not (task.is_classification and own.is_classification)):
        raise SdelabError(f"cannot evaluate a classification head trained on {own.name} on {task.name} "
                          f"({task.spec.family}): a head writes no text", path=study_path, field="eval.sets")
    if spec.template:
        task.template(spec.template)  # fails early on an unknown template
    examples = task.load(split, root)
    size = min(study.eval.size or len(examples), len(examples))
    examples = subset(examples, size, EVAL_SUBSET_SEED, what=f"evaluation set '{spec.set}'")
    path = task.split_path(split, root)
    files[str(path)] = file_sha256(path)
    if task is own:
        kind = "in_domain" if task.spec.splits[split].domain == "in" else "out_of_domain"
    else:
        same = (task.spec.task_type or task.name) == (own.spec.task_type or own.name)
        kind = "out_of_domain" if same else "cross_task"
    key = (split if task is own else f"{task.name}:{split}") + (f"@{spec.template}" if spec.template else "") + \
        (f"+k{spec.demos}" if spec.demos is not None else "")
    return EvalTarget(key, task, split, spec.template, examples, kind, spec.demos)


def check_designs(ctx: Context) -> None:
    """Fail before training on what would otherwise fail mid-study."""
    ex, study = ctx.train_pool[0], ctx.study
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
            src = study.rationales
            if src is None or not (src.teacher or src.endpoint):
                attach_rationales(ctx.task, ctx.train_pool, src, True, device=ctx.device)
            if study.eval.method == "score":
                raise SdelabError(f"design '{d.name}' writes a rationale, which label scoring cannot score; use "
                                  "eval.method: generate", path=ctx.study_path, field="eval.method")
    if study.eval.method == "score" and not any(t.task.is_classification for t in ctx.targets):
        raise SdelabError("label scoring needs closed label sets (classification tasks); the other sets are "
                          "generated", path=ctx.study_path, field="eval.method")
    if study.eval.decoding and (study.eval.method == "score" or study.modeling != "generative"):
        raise SdelabError("sampled decoding applies to generation; label scoring and classification heads have no "
                          "randomness", path=ctx.study_path, field="eval.decoding")


def heads(task: Task) -> tuple[int, list[str]]:
    """(number of heads, class names per head) of a classification head on `task`."""
    if task.spec.family == "multi_aspect":
        return len(task.spec.targets), task.label_names
    if task.is_classification:
        return 1, task.label_names
    raise SdelabError(f"discriminative modeling needs a closed label set; {task.name} is {task.spec.family}",
                      field="modeling")


def cell_train(ctx: Context, train_size: int | str, seed: int, design: Design) -> list[Example]:
    """The cell's training subset (an untuned cell draws its demonstrations from it), with rationales if the
    design writes them."""
    train = subset(ctx.train_pool, None if train_size == "all" else int(train_size), seed)
    return attach_rationales(ctx.task, train, ctx.study.rationales, design.reasoning != "none", device=ctx.device)


def _demo_pool(ctx: Context, task: Task, design: Design, train: list[Example]) -> list[Example]:
    """Where demonstrations come from: the design's `demo_pool` split, else the cell's training subset (for
    another task's evaluation set: that task's training split)."""
    if not design.demos:
        return []
    split = design.demo_pool or (None if task is ctx.task else task.spec.train_split)
    if split is None:
        return train
    key = ("pool", task.name, split)
    if key not in ctx.cache:
        pool = task.load(split, ctx.data_root)
        ctx.cache[key] = subset(pool, min(DEMO_POOL_CAP, len(pool)), EVAL_SUBSET_SEED)
    return ctx.cache[key]


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
    done = attach_rationales(task, chosen, ctx.study.rationales, True, where=f"demonstrations ({task.name})",
                             device=ctx.device)
    by_key = {(e.id, e.source): e for e in done}
    return [[by_key[e.id, e.source] for e in row] for row in demos]
