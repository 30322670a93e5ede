"""Task: what a data set asks for (fields, label space, templates, where its splits live), declared in YAML."""
from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sdelab.errors import SdelabError
from sdelab.tasks.formats import FORMATS, read_rows
from sdelab.tasks.readers import Row

Family = Literal["single_classification", "pair_classification", "multi_aspect", "span_extraction",
                 "text_generation"]
FAMILIES: tuple[str, ...] = Family.__args__  # type: ignore[attr-defined]
CLASSIFICATION = ("single_classification", "pair_classification")
# a {name} that reads as a field name (design/codec.py fills {field} for each input, and leaves other braces)
PLACEHOLDER = re.compile(r"\{([\w.-]+)\}")
UNMENTIONED = "unmentioned"  # the reserved label of an aspect the text does not mention (multi_aspect)
ROW_SLICE = re.compile(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*")  # a split's `rows:` ('0:2500', '2500:', ':-100')


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateSpec(_Strict):
    name: str = Field(description="Short name used by designs (`template: NAME`) and reports.")
    instruction: str = Field(description="The task instruction (the 'concise' prompt style). May use {targets} "
                                          "and {labels}.")
    complex: str | None = Field(None, description="The 'complex' prompt style: task definition, label "
                                                  "definitions, what counts as a match.")
    input: str = Field(description="How the input fields are written, with {field} placeholders.")


class SplitSpec(_Strict):
    path: str = Field(description="Data file. '{data_root}/...' is read from the data root, other relative "
                                  "paths from the task YAML's folder.")
    format: str | None = Field(None, description="File format (sdelab.tasks.formats.FORMATS); guessed from the "
                                                 "extension when omitted.")
    columns: dict[str, str] | None = Field(None, description="field -> column in the file (overrides the task's).")
    rows: str | None = Field(None, description="A slice 'start:end' of the file's rows (to split one file).")
    domain: Literal["in", "out"] = Field("in", description="In-domain or out-of-domain relative to train.")
    evaluate: bool = Field(True, description="Evaluated by default (false for pools of demonstrations).")

    @field_validator("rows")
    @classmethod
    def _row_slice(cls, v):
        if v is not None and not ROW_SLICE.fullmatch(v):
            raise ValueError(f"rows takes a slice 'start:end' of the file's rows (0-based, end not included; either "
                             f"may be left out, e.g. '0:2500' or '2500:')")
        return v

    @field_validator("format")
    @classmethod
    def _known_format(cls, v):
        if v is not None and v not in FORMATS:
            raise ValueError(f"unknown format '{v}'; known: {', '.join(FORMATS)}")
        return v


class TaskSpec(_Strict):
    name: str
    family: Family
    language: Literal["en", "zh"]
    description: str = ""
    task_type: str | None = Field(None, description="What is asked, e.g. sentiment, nli, aspect_sentiment: a model "
                                  "evaluated on another task of the same type is out-of-domain, of another type "
                                  "cross-task (default: the task's name).")
    inputs: list[str] = Field(description="Input field names, in order.")
    labels: dict[str, str] = Field(default_factory=dict, description="Label name -> the words the model writes "
                                   "(TxtLabel). Classification: the classes; multi_aspect: each aspect's labels.")
    label_numbers: dict[str, int] | None = Field(None, description="Label name -> number (NumLabel); default "
                                                 "1, 0, -1, ... in label order, and -2 for unmentioned.")
    label_map: dict[str, str] | None = Field(None, description="Raw value in the data -> label name.")
    aliases: dict[str, list[str]] = Field(default_factory=dict, description="Label or target name -> other "
                                                                             "accepted answers.")
    targets: dict[str, str] | None = Field(None, description="multi_aspect: aspect name -> how it is written; "
                                           "span_extraction: entity/event type -> how it is written.")
    placeholder: str | None = Field(None, description="What PU designs write for an unmentioned target "
                                                      "(default: 未提及 / not mentioned).")
    heuristic: dict | None = Field(None, description="This task's 'heuristic' design (default: the Sample Design "
                                                     "Engineering baseline).")
    weak: dict | None = Field(None, description="This task's 'weak' design (EW-SDE; default: Inst-last, Natural, "
                                                "OU, as the SDE code's weak1).")
    soft_match: Literal["ratio_contained", "ratio"] = Field(
        "ratio_contained", description="span_extraction: the soft F1's rule: a predicted text snaps to the most "
        "similar gold text (difflib ratio > 0.5) that contains it or is contained in it (GENIA, as the SDE code), "
        "or without that condition, scoring distinct predictions (MAVEN, as the SDE code).")
    quote_spans: bool = Field(False, description="span_extraction: Natural and Lines quote each text ('IL-2', as "
                                                 "the SDE code's GENIA samples) instead of writing it bare.")
    pairs_separator: str = Field(", ", description="span_extraction, Pairs: between type and text (the SDE code: "
                                                  "',' for GENIA, ', ' for MAVEN).")
    hints: dict[str, str] = Field(default_factory=dict, description="The task's own format instruction for an "
                                  "'<output_format>+<unmentioned>' design (e.g. 'pairs+omit'), replacing sdelab's "
                                  "generic hint (the SDE code's wording for GENIA and MAVEN).")
    json_keys: tuple[str, str] | None = Field(None, description="The JSON output's two keys: (target, value), e.g. "
                                              "('方面', '情感'), ('entity_type', 'entity_names'); default by "
                                              "family and language.")
    drop_labels: list[str] = Field(default_factory=list, description="Raw label values meaning 'no gold': such "
                                                                     "rows are skipped.")
    skip_empty: bool = Field(False, description="Skip rows with an empty input (counted) instead of failing; "
                                                "for published files known to hold a few.")
    columns: dict[str, str] | None = Field(None, description="field -> column in the file, for every split.")
    templates: list[TemplateSpec]
    splits: dict[str, SplitSpec]
    train_split: str = "train"

    def presets(self) -> dict[str, dict | None]:
        """The task's own versions of the named designs (options over sdelab's defaults)."""
        return {"heuristic": self.heuristic, "weak": self.weak}

    @model_validator(mode="after")
    def _check(self):
        if self.family == "pair_classification" and len(self.inputs) != 2:
            raise ValueError(f"family {self.family} takes 2 input fields, got {len(self.inputs)}")
        if self.family != "pair_classification" and self.family != "text_generation" and len(self.inputs) != 1:
            raise ValueError(f"family {self.family} takes 1 input field, got {len(self.inputs)}")
        if self.family in CLASSIFICATION + ("multi_aspect",) and not self.labels:
            raise ValueError(f"family {self.family} needs labels")
        if self.family in ("multi_aspect", "span_extraction") and not self.targets:
            raise ValueError(f"family {self.family} needs targets")
        if UNMENTIONED in self.labels:
            raise ValueError(f"'{UNMENTIONED}' is reserved (multi_aspect adds it); do not list it in labels")
        names = set(self.labels) | ({UNMENTIONED} if self.family == "multi_aspect" else set())
        for raw, name in (self.label_map or {}).items():
            if name not in names:
                raise ValueError(f"label_map maps '{raw}' to '{name}', which is not in labels")
        for name in self.aliases:
            if name not in names and name not in (self.targets or {}):
                raise ValueError(f"aliases names '{name}', which is neither a label nor a target")
        for name in self.label_numbers or {}:
            if name not in names:
                raise ValueError(f"label_numbers names '{name}', which is not in labels")
        if self.train_split not in self.splits:
            raise ValueError(f"train_split '{self.train_split}' is not one of the splits")
        for t in self.templates:  # a template that does not write an input trains on samples without it
            unknown = sorted(set(PLACEHOLDER.findall(t.input)) - set(self.inputs))
            missing = [f for f in self.inputs if "{" + f + "}" not in t.input]
            if self.family == "text_generation" and len(missing) < len(self.inputs):
                missing = []  # a generation template may leave out a side field (e.g. the answer a question asks for)
            if unknown or missing:
                raise ValueError(f"template '{t.name}': its input "
                                 + (f"names {', '.join('{' + u + '}' for u in unknown)}, not an input field; "
                                    if unknown else "")
                                 + (f"never writes {', '.join('{' + m + '}' for m in missing)}; " if missing else "")
                                 + f"the inputs are {', '.join('{' + f + '}' for f in self.inputs)} (got {t.input!r})")
        return self


Gold = Union[str, dict, tuple]


@dataclass(frozen=True)
class Example:
    """One row. `gold` depends on the family: a label name (classification); {aspect: label name} over every
    aspect (multi_aspect); a tuple of (type, text) pairs in reading order (span_extraction); a text
    (text_generation). `rationale` feeds CoT designs."""
    id: str
    fields: dict[str, str]
    gold: Gold
    source: str = ""  # "path:line"
    rationale: str | None = None

    @property
    def label(self) -> Gold:  # classification code reads better with this name
        return self.gold


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
        """Every label a prediction can take (multi_aspect: the task's labels plus 'unmentioned')."""
        return list(self.spec.labels) + ([UNMENTIONED] if self.spec.family == "multi_aspect" else [])

    def template(self, name: str | None) -> TemplateSpec:
        if name is None:
            return self.spec.templates[0]
        for t in self.spec.templates:
            if t.name == name:
                return t
        raise SdelabError(f"task '{self.name}' has no template '{name}'; known: "
                          f"{', '.join(t.name for t in self.spec.templates)}")

    def eval_splits(self) -> list[str]:
        return [s for s, sp in self.spec.splits.items() if s != self.spec.train_split and sp.evaluate]

    def split_path(self, split: str, data_root: Path) -> Path:
        spec = self._split(split)
        if spec.path.startswith("{data_root}"):
            return Path(str(data_root) + spec.path[len("{data_root}"):])
        path = (self.yaml_path.parent if self.yaml_path else Path.cwd()) / spec.path
        try:
            resolved = path.resolve()
        except (RuntimeError, OSError):  # a symbolic link loop (RuntimeError before Python 3.13)
            resolved = None
        # a link to nowhere keeps its own name (readers.check_file says where it points)
        return resolved if resolved is not None and (resolved.exists() or not path.is_symlink()) else \
            Path(os.path.abspath(path))

    def _split(self, split: str) -> SplitSpec:
        if split not in self.spec.splits:
            raise SdelabError(f"task '{self.name}' has no split '{split}'; known: {', '.join(self.spec.splits)}")
        return self.spec.splits[split]

    def load(self, split: str, data_root: Path, extra_columns: dict[str, str] | None = None) -> list[Example]:
        """All examples of a split, validated: non-empty inputs, labels inside the label set."""
        spec = self._split(split)
        path = self.split_path(split, data_root)
        if spec.path.startswith("{data_root}") and not data_root.exists():
            raise SdelabError(f"the data root {data_root} does not exist (set data_root in the study, "
                              "--data-root, or SDELAB_DATA_ROOT)", path=path)
        columns = {**(spec.columns or self.spec.columns or {}), **(extra_columns or {})}
        rows = read_rows(path, spec.format, columns)
        if spec.rows:
            a, b = ROW_SLICE.fullmatch(spec.rows).groups()
            n, rows = len(rows), rows[int(a) if a else None:int(b) if b else None]
            if not rows:
                raise SdelabError(f"rows '{spec.rows}' selects none of the {n} rows of {path.name}",
                                  path=self.yaml_path, field=f"splits.{split}.rows")
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
            if self._dropped(row):
                self.skipped[split] += 1
                continue
            gold = self._gold(row, path)
            rid = row.values.get("id") or row.values.get("idx") or f"{split}-{row.line}"
            rationale = (row.values.get("rationale") or "").strip() or None
            out.append(Example(id=str(rid), fields=fields, gold=gold, source=f"{path.name}:{row.line}",
                               rationale=rationale))
        return out

    # -- gold, per family -------------------------------------------------------------------------------------
    def _dropped(self, row: Row) -> bool:
        if not self.spec.drop_labels:
            return False
        keys = ["label"] if self.is_classification else list(self.spec.targets or [])
        return any((row.values.get(k) or "").strip() in self.spec.drop_labels for k in keys)

    def _gold(self, row: Row, path: Path):
        fam = self.spec.family
        if fam in CLASSIFICATION:
            return self._label(row, "label", path, allowed=self.spec.labels)
        if fam == "multi_aspect":
            return {t: self._label(row, t, path, allowed={**self.spec.labels, UNMENTIONED: ""})
                    for t in self.spec.targets}
        if fam == "span_extraction":
            return self._spans(row, path)
        out = row.values.get("output")
        if out is None:
            raise SdelabError("missing output column", path=path, line=row.line, field="output")
        if not out.strip():
            raise SdelabError("empty reference text", path=path, line=row.line, field="output")
        return out.strip()

    def _label(self, row: Row, key: str, path: Path, allowed: dict) -> str:
        raw = row.values.get(key)
        if raw is None:
            raise SdelabError(f"missing column for '{key}' (columns: {', '.join(row.values)})", path=path,
                              line=row.line, field=key)
        raw = raw.strip()
        label = self.spec.label_map.get(raw) if self.spec.label_map is not None else (raw if raw in allowed
                                                                                       else None)
        if label is None:
            known = list(self.spec.label_map or allowed)
            raise SdelabError(f"label '{raw}' is not in the task's label set ({', '.join(known)})",
                              path=path, line=row.line, field=key)
        return label

    def _spans(self, row: Row, path: Path) -> tuple[tuple[str, str], ...]:
        raw = row.values.get("spans")
        if raw is None:
            raise SdelabError("missing spans column", path=path, line=row.line, field="spans")
        try:
            items = json.loads(raw) if raw.strip() else []
        except json.JSONDecodeError:
            raise SdelabError("spans must be a JSON list of [type, text] or {\"type\", \"text\"}", path=path,
                              line=row.line, field="spans") from None
        out = []
        for it in items:
            typ, text = (it.get("type"), it.get("text")) if isinstance(it, dict) else (tuple(it) + (None, None))[:2]
            if typ not in self.spec.targets:
                raise SdelabError(f"type '{typ}' is not in the task's schema ({', '.join(self.spec.targets)})",
                                  path=path, line=row.line, field="spans")
            if not isinstance(text, str) or not text.strip():
                raise SdelabError("a span with an empty text", path=path, line=row.line, field="spans")
            out.append((typ, text.strip()))
        order = {t: i for i, t in enumerate(self.spec.targets)}
        return tuple(sorted(out, key=lambda s: order[s[0]]))  # by type, reading order within a type

    # -- label spaces -----------------------------------------------------------------------------------------
    @property
    def is_classification(self) -> bool:
        return self.spec.family in CLASSIFICATION

    def label_number(self, label: str) -> int:
        nums = self.spec.label_numbers
        if nums and label in nums:
            return nums[label]
        if label == UNMENTIONED:
            return -2
        return 1 - list(self.spec.labels).index(label)

    def placeholder(self) -> str:
        return self.spec.placeholder or {"zh": "未提及", "en": "not mentioned"}[self.spec.language]


def subset(examples: list[Example], size: int | None, seed: int, *, what: str = "training set") -> list[Example]:
    """A reproducible random subset (`size` None = all, in a seeded order)."""
    if size is not None and size > len(examples):
        raise SdelabError(f"{what} size {size} is larger than the data ({len(examples)} examples)")
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    return [examples[i] for i in idx[: size if size is not None else len(idx)]]


__all__ = ["Task", "TaskSpec", "Example", "subset", "FAMILIES", "FORMATS", "UNMENTIONED"]
