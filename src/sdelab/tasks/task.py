"""Task: what a data set asks for (fields, label space, templates, where its splits live), declared in YAML."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdelab.errors import SdelabError
from sdelab.tasks.readers import FORMATS, read_rows

Family = Literal["single_classification", "pair_classification"]
FAMILIES: tuple[str, ...] = Family.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateSpec(_Strict):
    name: str = Field(description="Short name used by designs (`template: NAME`) and reports.")
    instruction: str = Field(description="The task instruction.")
    input: str = Field(description="How the input fields are written, with {field} placeholders.")


class SplitSpec(_Strict):
    path: str = Field(description="Data file. '{data_root}/...' is read from the data root, other relative "
                                  "paths from the task YAML's folder.")
    format: Literal["jsonl", "json", "csv", "tsv", "prefixed"] | None = Field(
        None, description="File format; guessed from the extension when omitted.")
    columns: dict[str, str] | None = Field(None, description="field -> column in the file (overrides the task's).")
    rows: str | None = Field(None, description="A slice 'start:end' of the file's rows (to split one file).")
    domain: Literal["in", "out"] = Field("in", description="In-domain or out-of-domain relative to train.")


class TaskSpec(_Strict):
    name: str
    family: Family
    language: Literal["en", "zh"]
    description: str = ""
    inputs: list[str] = Field(description="Input field names, in order.")
    labels: dict[str, str] = Field(description="Label name -> the words the model writes (TxtLabel).")
    label_map: dict[str, str] | None = Field(None, description="Raw value in the data -> label name.")
    aliases: dict[str, list[str]] = Field(default_factory=dict, description="Label name -> other accepted answers.")
    drop_labels: list[str] = Field(default_factory=list, description="Raw label values meaning 'no gold': such "
                                                                     "rows are skipped.")
    skip_empty: bool = Field(False, description="Skip rows with an empty input (counted) instead of failing; "
                                                "for published files known to hold a few.")
    columns: dict[str, str] | None = Field(None, description="field -> column in the file, for every split.")
    templates: list[TemplateSpec]
    splits: dict[str, SplitSpec]
    train_split: str = "train"

    @model_validator(mode="after")
    def _check(self):
        expect = 2 if self.family == "pair_classification" else 1
        if len(self.inputs) != expect:
            raise ValueError(f"family {self.family} takes {expect} input field(s), got {len(self.inputs)}")
        for raw, name in (self.label_map or {}).items():
            if name not in self.labels:
                raise ValueError(f"label_map maps '{raw}' to '{name}', which is not in labels")
        for name in self.aliases:
            if name not in self.labels:
                raise ValueError(f"aliases names '{name}', which is not in labels")
        if self.train_split not in self.splits:
            raise ValueError(f"train_split '{self.train_split}' is not one of the splits")
        return self


@dataclass(frozen=True)
class Example:
    id: str
    fields: dict[str, str]
    label: str  # a label name of the task
    source: str = ""  # "path:line"


@dataclass
class Task:
    spec: TaskSpec
    yaml_path: Path | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # rows skipped per split (drop_labels, skip_empty)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label_names(self) -> list[str]:
        return list(self.spec.labels)

    def template(self, name: str | None) -> TemplateSpec:
        if name is None:
            return self.spec.templates[0]
        for t in self.spec.templates:
            if t.name == name:
                return t
        raise SdelabError(f"task '{self.name}' has no template '{name}'; known: "
                          f"{', '.join(t.name for t in self.spec.templates)}")

    def eval_splits(self) -> list[str]:
        return [s for s in self.spec.splits if s != self.spec.train_split]

    def split_path(self, split: str, data_root: Path) -> Path:
        spec = self._split(split)
        if spec.path.startswith("{data_root}"):
            return Path(str(data_root) + spec.path[len("{data_root}"):])
        base = self.yaml_path.parent if self.yaml_path else Path.cwd()
        return (base / spec.path).resolve()

    def _split(self, split: str) -> SplitSpec:
        if split not in self.spec.splits:
            raise SdelabError(f"task '{self.name}' has no split '{split}'; known: {', '.join(self.spec.splits)}")
        return self.spec.splits[split]

    def load(self, split: str, data_root: Path) -> list[Example]:
        """All examples of a split, validated: non-empty inputs, labels inside the label set."""
        spec = self._split(split)
        path = self.split_path(split, data_root)
        if spec.path.startswith("{data_root}") and not data_root.exists():
            raise SdelabError(f"the data root {data_root} does not exist (set data_root in the study, "
                              "--data-root, or SDELAB_DATA_ROOT)", path=path)
        columns = spec.columns or self.spec.columns
        rows = read_rows(path, spec.format, columns)
        if spec.rows:
            a, _, b = spec.rows.partition(":")
            rows = rows[int(a) if a else None:int(b) if b else None]
        out, self.skipped[split] = [], 0
        for row in rows:
            fields = {}
            if self.spec.skip_empty and any(not (row.values.get(f) or "").strip() for f in self.spec.inputs):
                self.skipped[split] += 1
                continue
            for f in self.spec.inputs:
                v = row.values.get(f)
                if v is None:
                    raise SdelabError(f"missing input field (columns: {', '.join(row.values)})",
                                      path=path, line=row.line, field=f)
                if not v.strip():
                    raise SdelabError("empty text", path=path, line=row.line, field=f)
                fields[f] = v.strip()
            raw = row.values.get("label")
            if raw is None:
                raise SdelabError("missing label column", path=path, line=row.line, field="label")
            if raw.strip() in self.spec.drop_labels:
                self.skipped[split] += 1
                continue
            label = self.to_label(raw.strip())
            if label is None:
                allowed = list(self.spec.label_map or self.spec.labels)
                raise SdelabError(f"label '{raw}' is not in the task's label set ({', '.join(allowed)})",
                                  path=path, line=row.line, field="label")
            rid = row.values.get("id") or row.values.get("idx") or f"{split}-{row.line}"
            out.append(Example(id=str(rid), fields=fields, label=label, source=f"{path.name}:{row.line}"))
        return out

    def to_label(self, raw: str) -> str | None:
        if self.spec.label_map is not None:
            return self.spec.label_map.get(raw)
        return raw if raw in self.spec.labels else None


def subset(examples: list[Example], size: int | None, seed: int, *, what: str = "training set") -> list[Example]:
    """A reproducible random subset (`size` None = all, in a seeded order)."""
    if size is not None and size > len(examples):
        raise SdelabError(f"{what} size {size} is larger than the data ({len(examples)} examples)")
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    return [examples[i] for i in idx[: size if size is not None else len(idx)]]


def majority_label(examples: list[Example]) -> str:
    from collections import Counter
    return Counter(e.label for e in examples).most_common(1)[0][0]


__all__ = ["Task", "TaskSpec", "Example", "subset", "majority_label", "FAMILIES", "FORMATS"]
