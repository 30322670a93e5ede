"""Expand a study into cells (one trained model each), deterministically, each with a stable id."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sdelab.config import EvalSet, Study, data_root, substudies
from sdelab.design.codec import RENDER_REVISION
from sdelab.design.options import Design, expand_designs
from sdelab.errors import SdelabError
from sdelab.models.catalog import model_fingerprint
from sdelab.tasks.readers import file_sha256
from sdelab.tasks.registry import get_task
from sdelab.tasks.task import Task


@dataclass(frozen=True)
class Cell:
    id: str  # sha256 of the canonical config, 12 hex digits
    design: Design
    train_size: int | str
    seed: int
    config: dict[str, Any]  # everything that decides the cell's result (written as config.yaml)
    untuned: int | None = None  # k demonstrations for an untuned base-model cell; None for a trained cell
    variant: str = ""  # the swept task / model / hyperparameter values, '' when the study sweeps none

    @property
    def folder_name(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.+=-]", "_", (self.variant + "__" if self.variant else "") + self.design.name)
        if self.untuned is not None:
            return f"{slug}__untuned-k{self.untuned}__{self.id}"
        return f"{slug}__n{self.train_size}__s{self.seed}__{self.id}"


# train settings left out of a cell's id: they change speed, not what is learned (the manifest records them)
SPEED_ONLY = ("compile",)
# eval settings left out of a cell's id: how the same quantities are computed (eval.backend: greedy decoding and
# label log-probabilities, by sdelab's loop or by vLLM; their numerics differ slightly, so a near tie may go the
# other way). Absent from the hashed dict whatever their value, so the ids of cells made before the setting
# existed stay the same.
EVAL_SPEED_ONLY = ("backend",)


def cell_id(config: dict[str, Any]) -> str:
    train = config.get("train")
    if isinstance(train, dict):
        train = {k: v for k, v in train.items() if k not in SPEED_ONLY}
        config = {**config, "train": train}
    ev = config.get("eval")
    if isinstance(ev, dict):
        config = {**config, "eval": {k: v for k, v in ev.items() if k not in EVAL_SPEED_ONLY}}
    canon = json.dumps(config, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class SubStudy:
    """One scalar sub-study, resolved once: its settings, task, designs and cells (read-only afterwards)."""
    study: Study
    task: Task
    designs: tuple[Design, ...]
    cells: tuple[Cell, ...]


def study_designs(study: Study, task: Task) -> list[Design]:
    """The study's designs, checked against the task's family (and using the task's own heuristic); the same
    design listed twice (e.g. a preset and a one-factor sweep around it) once; for a classification head, one
    design per distinct prompt."""
    unique: dict[str, Design] = {}
    for d in expand_designs(study.designs, task.spec.family, task.spec.presets()):
        if d.name in unique and unique[d.name] != d:
            raise SdelabError(f"two different designs are both named '{d.name}'", field="designs")
        unique.setdefault(d.name, d)
    designs = list(unique.values())
    return prompt_distinct(designs) if study.modeling != "generative" else designs


def expand_all(study: Study, base_dir=None, data_root_cli: str | None = None) -> list[SubStudy]:
    """Every (scalar) sub-study of a study with its cells, in a deterministic order."""
    out, hashes = [], {}
    for axes, sub in substudies(study):
        task = get_task(sub.task, base_dir)
        names = {"task": task.name, "model": str(sub.model).rstrip("/").split("/")[-1],
                 "modeling": {"generative": "gen", "discriminative": "cls", "encoder": "enc"}[sub.modeling]}
        tag = "__".join(names[k] if k in names else f"{k}={v}" for k, v in axes.items())
        designs = study_designs(sub, task)
        seen = inputs(sub, task, designs, data_root(sub, data_root_cli), base_dir, hashes)
        out.append(SubStudy(sub, task, tuple(designs), tuple(expand(sub, designs, tag, seen))))
    return out


def input_files(study: Study, task: Task, designs: list[Design], root: Path, base_dir=None) -> dict[str, Path]:
    """The files a sub-study's cells read, by 'task:split': each task's YAML, the training split, every evaluation
    set's split and, when prompts carry demonstrations, the splits they are drawn from (context.prepare loads the
    same)."""
    sets = [s if isinstance(s, EvalSet) else EvalSet(set=s) for s in study.eval.sets or task.eval_splits()]
    used = [(task, task.spec.train_split)]
    demos = any(d.demos for d in designs) or any(s.demos for s in sets)
    for s in sets:
        name, _, split = s.set.rpartition(":")
        other = get_task(name, base_dir) if name and name != task.name else task
        used.append((other, split))
        if demos:
            used += [(other, d.demo_pool or other.spec.train_split) for d in designs if d.demos or d.demo_pool]
            used += [(other, other.spec.train_split)] if other is not task else []
    out = {}
    for t, split in used:
        if t.yaml_path:  # its templates, labels and row slices decide what the cells see, too
            out.setdefault(f"{t.name}:task.yaml", Path(t.yaml_path))
        if split in t.spec.splits:  # an unknown split is refused, with its name, by context.prepare
            out.setdefault(f"{t.name}:{split}", t.split_path(split, root))
    return out


def inputs(study: Study, task: Task, designs: list[Design], root: Path, base_dir=None,
           hashes: dict | None = None) -> dict[str, Any]:
    """What a sub-study's cells read besides their settings: the content hash of every data file and the model's
    weights fingerprint. Part of every cell's id: an edited data file or replaced weights give new cells (the old
    ones stay in the folder, superseded), never "finished earlier, skipped". `hashes` memoizes by path."""
    hashes = {} if hashes is None else hashes
    data = {}
    for key, path in sorted(input_files(study, task, designs, root, base_dir).items()):
        if path not in hashes:
            hashes[path] = file_sha256(path) if path.is_file() else "missing"  # prepare then names the file
        data[key] = hashes[path]
    return {"data": data, "model": model_fingerprint(study.model)}


def changed(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two cell configs ('inputs.data.sst2:train', 'train.lr')."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


# what a classification head never sees: how the response would be written
RESPONSE_SIDE = ("input_loss", "output_format", "unmentioned", "labels", "reasoning")


def prompt_distinct(designs: list[Design]) -> list[Design]:
    """One design of each group of designs that differ only in how the response would be written (e.g. es-sde and
    es-sde+cot), in first-listed order: a head never writes a response, so at most an instruction's format hint
    would tell them apart."""
    groups: dict[str, list[Design]] = {}
    for d in designs:
        key = json.dumps({k: v for k, v in d.to_dict().items() if k not in (*RESPONSE_SIDE, "name")}, sort_keys=True)
        groups.setdefault(key, []).append(d)
    # a design without a rationale represents its group when there is one (a head cannot be trained on CoT)
    return [next((d for d in g if d.reasoning == "none"), g[0]) for g in groups.values()]


def _rationales(study: Study, design: Design) -> dict | None:
    """The rationale source, in the config of the cells that use it only: a design without CoT trains and
    evaluates the same whoever would write rationales, so its cell id (and its reuse) must not depend on that."""
    return study.rationales.model_dump() if study.rationales and design.reasoning != "none" else None


def eval_config(study: Study) -> dict:
    """The `eval:` section as a cell's config records it: the default backend (builtin) left out, so a built-in
    cell's config.yaml reads as it did before `eval.backend` existed; `backend: vllm` is recorded (not hashed)."""
    return study.eval.model_dump(exclude={"backend"} if study.eval.backend == "builtin" else None)


def run_order(study: Study, cells: list[Cell]) -> list[Cell]:
    """The order cells are trained in: untuned cells (cheap) first, then every design at the first seed and the
    smallest size, then the next: a study stopped halfway has compared all designs, not finished a few."""
    sizes = sorted(study.train_sizes, key=lambda n: float("inf") if n == "all" else n)
    return sorted(cells, key=lambda c: (c.untuned is None, study.seeds.index(c.seed) if c.untuned is None else 0,
                                        sizes.index(c.train_size) if c.untuned is None else 0))


def _without_demos(design: Design) -> Design:
    """The design with no demonstrations and every demonstration option at its default (they then mean nothing)."""
    return replace(design, **{f: Design.__dataclass_fields__[f].default
                              for f in ("demos", "demo_selection", "demo_similarity", "demo_pool")})


def expand(study: Study, designs: list[Design], variant: str = "", inputs: dict | None = None) -> list[Cell]:
    """The cells of a scalar study over its (distinct) designs; `inputs` (data and weights hashes) go into every
    cell's config and id."""
    cells, untuned_seen = [], set()
    for design in designs:
        for size in study.train_sizes:
            for seed in study.seeds:
                config = {
                    "task": study.task, "model": study.model, "modeling": study.modeling,
                    "design": design.to_dict(), "train_size": size, "seed": seed,
                    "prompt_format": study.prompt_format, "system_prompt": study.system_prompt,
                    "rationales": _rationales(study, design),
                    "train": study.train.model_dump(), "eval": eval_config(study), "render": RENDER_REVISION,
                    "inputs": inputs,
                }
                cells.append(Cell(cell_id(config), design, size, seed, config, variant=variant))
        for k in (study.untuned if study.modeling == "generative" else []):  # the untuned base model, zero-shot
            # (k=0) and k-shot in-context; a modeling sweep carries them in its generative half
            # k demonstrations whatever the design's own k; designs that then render the same prompts (e.g. FT and
            # FTICL at k=0) share one untuned cell, the first listed
            d = replace(design, demos=k) if k else _without_demos(design)
            config = {"task": study.task, "model": study.model, "modeling": "untuned", "design": d.to_dict(),
                      "seed": study.seeds[0], "prompt_format": study.prompt_format,
                      "system_prompt": study.system_prompt, "eval": eval_config(study), "untuned": k,
                      "train_size": study.train_sizes[0],
                      # prompts are cut to fit it (a k-shot prompt's demonstrations): another length, another cell
                      "max_length": study.train.max_length,
                      "rationales": _rationales(study, d), "render": RENDER_REVISION, "inputs": inputs}
            same = json.dumps({**config, "design": {**config["design"], "name": None}}, sort_keys=True, default=str)
            if same in untuned_seen:
                continue
            untuned_seen.add(same)
            cells.append(Cell(cell_id(config), d, 0, study.seeds[0], config, untuned=k, variant=variant))
    return cells
