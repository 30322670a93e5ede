"""The run record: what a finished cell's folder holds, typed and versioned, with its one writer (`write_config`
at the start, `write_cell` at the end; metrics.json last, so a folder holding it is a finished cell) and its one
reader (`read_cell`, which migrates folders written before `schema_version` existed in `_migrate`, the one place
that knows their gaps). The files and their fields: docs/architecture.md, "The run record"."""
from __future__ import annotations

import json
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from sdelab import fileio
from sdelab.errors import SdelabError
from sdelab.metrics import SPECS

SCHEMA_VERSION = 2
PARTIAL = ".partial"  # suffix of a cell folder still being written
CONFIG, METRICS, MANIFEST = "config.yaml", "metrics.json", "manifest.json"
PREDICTIONS, ITEM_STATS, TRAIN_LOG = "predictions.jsonl", "item_stats.json", "train_log.jsonl"


@dataclass
class PredictionRow:
    """One model output on one evaluation item: raw text, strict parse (None after a format error), lenient
    salvage, gold, error kind, and the label scores where the method gives them."""
    eval_set: str
    id: str
    input: dict
    raw: Any
    parsed: Any
    lenient: Any
    gold: Any
    error: str | None
    scores: Any = None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "scores" or v is not None}


@dataclass
class SetMetrics:
    """One evaluation set's metrics: the fields every reader uses, and all of them as written (`values`)."""
    primary: str
    kind: str  # in_domain | out_of_domain | cross_task
    template_seen: bool | None  # None: another task's set (its template was never trained on)
    format_error_rate: float
    prompts_truncated: int | None  # None: the folder predates the count
    majority_baseline: dict | None
    n: int
    values: dict
    top_answer_share: float | None = None  # share of items given the most frequent answer; None: not kept

    @property
    def value(self) -> float:
        return self.values[self.primary]


@dataclass
class ItemStats:
    primary: str
    ids: list[str]
    stats: list[list[float]]


@dataclass
class CellRecord:
    folder: Path
    cell: str
    variant: str
    design: str
    modeling: str
    train_size: int | str
    seed: int
    untuned: int | None
    config: dict
    eval: dict[str, SetMetrics]
    manifest: dict | None  # None: the folder predates manifest.json
    items: dict[str, ItemStats]  # {} when neither item_stats.json nor predictions were kept
    curve: list[dict] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @property
    def label(self) -> str:
        return design_label(self.variant, self.design)

    @property
    def size(self) -> str:
        return size_label(self.train_size, self.untuned)

    @property
    def precision(self) -> str:
        return (self.manifest or {}).get("precision", "unknown")

    @property
    def finished_at(self) -> datetime:
        """When the cell finished (cells from machines in other time zones compare correctly)."""
        stamp = (self.manifest or {}).get("finished_at")
        return datetime.fromisoformat(stamp) if stamp else datetime.min.replace(tzinfo=timezone.utc)


def design_label(variant: str, design: str) -> str:
    """The design as reports and claims name it: '<variant> <design>' in a swept study."""
    return f"{variant} {design}" if variant else design


def size_label(train_size: int | str, untuned: int | None) -> str:
    """The train size as reports and claims name it: '500', 'all' or 'untuned k=0'."""
    return f"untuned k={untuned}" if untuned is not None else str(train_size)


def size_key(size: str):
    """Sort key of size labels: numbers in order, then 'all', untuned first."""
    return (0, int(size)) if size.isdigit() else (1 if size == "all" else -1, size)


def item_stats(rows: list[PredictionRow], eval_metrics: dict[str, dict]) -> dict[str, ItemStats]:
    """Each evaluation set's item ids and sufficient statistics of its primary metric, strict (a format error is
    wrong), from the cell's prediction rows."""
    out = {}
    for key, m in eval_metrics.items():
        mine = [r for r in rows if r.eval_set == key]
        spec = SPECS[m["primary"]]
        stats = spec.stats([r.gold for r in mine], [r.parsed if r.error is None else None for r in mine])
        out[key] = ItemStats(m["primary"], [str(r.id) for r in mine], stats.round(6).tolist() if mine else [])
    return out


FORMAT_ERROR_ANSWER = "<format error>"


def top_answer_share(rows: list[PredictionRow]) -> float | None:
    """Share of the items that got the most frequent strict answer (every format error counts as one answer): 1.0
    is a model that says the same thing whatever the input (a degenerate arm, report.gates)."""
    if not rows:
        return None
    answers = Counter(json.dumps(r.parsed if r.error is None else FORMAT_ERROR_ANSWER, sort_keys=True,
                                 ensure_ascii=False, default=str) for r in rows)
    return round(answers.most_common(1)[0][1] / len(rows), 6)


def write_config(work: Path, config: dict) -> None:
    fileio.only_main(work)
    fileio.write_yaml(work / CONFIG, config)


def read_config(folder: Path) -> dict:
    """A cell folder's config.yaml (SdelabError naming the file when it is unreadable)."""
    return _read(folder / CONFIG, lambda t: _mapping(yaml.safe_load(t)))


def write_cell(work: Path, head: dict, eval_metrics: dict[str, dict], rows: list[PredictionRow],
               manifest: dict) -> None:
    """The finished cell's files; metrics.json last. `head`: cell, variant, design, modeling, train_size, seed,
    untuned."""
    fileio.only_main(work)
    fileio.write_jsonl(work / PREDICTIONS, [r.to_json() for r in rows])
    eval_metrics = {k: {**m, "top_answer_share": top_answer_share([r for r in rows if r.eval_set == k])}
                    for k, m in eval_metrics.items()}
    fileio.write_json(work / ITEM_STATS, {k: asdict(v) for k, v in item_stats(rows, eval_metrics).items()})
    fileio.write_json(work / MANIFEST, manifest)
    fileio.write_json(work / METRICS, {**head, "eval": eval_metrics, "schema_version": SCHEMA_VERSION})


def is_finished(folder: Path) -> bool:
    return folder.is_dir() and (folder / METRICS).exists() and not folder.name.endswith(PARTIAL)


def finished_folders(out_dir: Path) -> list[Path]:
    return sorted(p for p in out_dir.iterdir() if is_finished(p)) if out_dir.exists() else []


def read_cell(folder: Path) -> CellRecord:
    """The record of a finished cell folder, whatever its schema version. A file of it that cannot be read, or does
    not hold what it should (cut short, hand-edited, another program's), is named with the way out: deleting the
    cell folder makes the next `sdelab run` compute the cell again."""
    metrics = _read(folder / METRICS, lambda t: _mapping(json.loads(t)))
    manifest = _read(folder / MANIFEST, lambda t: _manifest(json.loads(t))) if (folder / MANIFEST).exists() else None
    config = read_config(folder)
    log = folder / TRAIN_LOG
    curve = _read(log, lambda t: _jsonl(t, _point)) if log.exists() else []
    return _migrate(folder, metrics, manifest, config, curve)


def read_predictions(folder: Path) -> list[PredictionRow]:
    """A finished cell's prediction rows ([] when the folder did not keep them: research-only data)."""
    path = folder / PREDICTIONS
    if not path.is_file() or path.is_symlink():
        return []
    return _read(path, lambda t: _jsonl(t, _prediction))


def read_cells(out_dir: Path) -> list[CellRecord]:
    return [read_cell(f) for f in finished_folders(out_dir)]


class Damaged(ValueError):
    """What is wrong with a file of a run record, at `line` (1-based) when it is one line's fault."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@contextmanager
def damaged(path: Path):
    """Whatever goes wrong reading or checking `path`, a file of a finished cell, becomes one error naming the file
    and the way out (the cell folder is `path`'s folder)."""
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, yaml.YAMLError) as e:
        line = getattr(e, "line", None)
        if isinstance(e, json.JSONDecodeError):
            why, line = f"not valid JSON ({e.msg} at column {e.colno})", e.lineno
        elif isinstance(e, UnicodeDecodeError):
            why = "not UTF-8 text"
        elif isinstance(e, yaml.YAMLError):
            mark = getattr(e, "problem_mark", None)
            why, line = f"not valid YAML ({getattr(e, 'problem', None) or e})", mark.line + 1 if mark else None
        elif isinstance(e, OSError):
            why = f"cannot be read ({e.strerror or e})"
        elif isinstance(e, KeyError):
            why = f"the field {e.args[0]!r} is missing"
        elif isinstance(e, RecursionError):
            why = "nested too deeply"
        else:
            why = str(e)
        raise SdelabError(f"{why}; the run record is damaged: delete the cell folder {path.parent} to re-run it",
                          path=path, line=line) from None


def _read(path: Path, parse) -> Any:
    with damaged(path):
        return parse(path.read_text(encoding="utf-8"))


def _mapping(obj) -> dict:
    if not isinstance(obj, dict):
        raise Damaged(f"holds {'a ' + type(obj).__name__ if obj is not None else 'nothing'} where a mapping of "
                      "fields belongs")
    return obj


def _manifest(obj) -> dict:
    """The manifest's fields that reports compute with: counts and seconds are numbers, the time a time."""
    m = _mapping(obj)
    train, timings, stamp = m.get("train"), m.get("timings", {}), m.get("finished_at")
    if train is not None and not (isinstance(train, dict) and all(_number(v) for k, v in train.items()
                                                                  if k in ("tokens", "tokens_per_second"))):
        raise Damaged("'train' must be null or the training counts (tokens, tokens_per_second: numbers)")
    if not isinstance(timings, dict) or not all(_number(v) for v in timings.values()):
        raise Damaged("'timings' must give each stage's seconds as a number")
    if stamp is not None:
        try:
            datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            raise Damaged(f"'finished_at' must be an ISO 8601 time, got {stamp!r}") from None
    return m


def _point(obj) -> dict:
    """A point of the loss curve: what the report's plot reads."""
    p = _mapping(obj)
    if not (_number(p["step"]) and _number(p["loss"])):
        raise Damaged("'step' and 'loss' must be numbers")
    return p


def _jsonl(text: str, make=_mapping) -> list:
    """`make` of every line's JSON object, a bad line named by its number."""
    out, lines = [], text.splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(make(json.loads(line)))
        except (ValueError, TypeError, KeyError) as e:
            cut = " (the file ends inside this line: cut short?)" if i == len(lines) and not text.endswith("\n") else ""
            why = f"not valid JSON ({e.msg})" if isinstance(e, json.JSONDecodeError) else \
                f"the field {e.args[0]!r} is missing" if isinstance(e, KeyError) else str(e)
            raise Damaged(why + cut, line=i) from None
    return out


def _prediction(obj) -> PredictionRow:
    row = PredictionRow(**_mapping(obj))
    if not isinstance(row.eval_set, str) or row.error is not None and not isinstance(row.error, str):
        raise Damaged("'eval_set' must be a set name and 'error' an error kind or null")
    return row


def _item_stats(v) -> ItemStats:
    st = ItemStats(**_mapping(v))
    if not (isinstance(st.primary, str) and isinstance(st.ids, list) and isinstance(st.stats, list)
            and len(st.ids) == len(st.stats)
            and all(isinstance(r, list) and all(_number(x) for x in r) for r in st.stats)):
        raise Damaged("a set's 'ids' and 'stats' must be lists of the same length, each stats row a list of numbers")
    return st


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _set_metrics(key: str, v: dict, rows: list[PredictionRow] | None) -> SetMetrics:
    v = _mapping(v)
    primary = v["primary"]
    if primary not in SPECS:
        raise Damaged(f"set {key!r}: unknown primary metric {primary!r} (sdelab's: {', '.join(SPECS)})")
    if not _number(v.get(primary)) or not isinstance(v["n"], int):
        raise Damaged(f"set {key!r}: its {primary} must be a number and 'n' the count of its items")
    share = v["top_answer_share"] if "top_answer_share" in v else (
        top_answer_share([r for r in rows if r.eval_set == key]) if rows else None)
    return SetMetrics(primary, v.get("kind", "in_domain"), v.get("template_seen"), v.get("format_error_rate", 0.0),
                      v.get("prompts_truncated"), v.get("majority_baseline"), v["n"], v, share)


def _migrate(folder: Path, m: dict, manifest: dict | None, config: dict, curve: list) -> CellRecord:
    """Version 1 (no schema_version): `variant` and `untuned` may be absent, a set may lack kind (in-domain),
    template_seen, format_error_rate (0), prompts_truncated (not counted) and majority_baseline; item_stats.json
    may be absent (computed from predictions.jsonl when it was kept, in memory: the folder is never written).
    A set written before sdelab kept `top_answer_share` gets it from predictions.jsonl where that was kept."""
    with damaged(folder / METRICS):
        sets_in = _mapping(m["eval"])
        if not isinstance(m["design"], str) or not isinstance(m["cell"], str) or not isinstance(m["seed"], int):
            raise Damaged("'cell' and 'design' must be names and 'seed' a whole number")
    rows = None
    if (folder / PREDICTIONS).exists() and (not (folder / ITEM_STATS).exists()
                                            or any("top_answer_share" not in v for v in sets_in.values()
                                                   if isinstance(v, dict))):
        rows = _read(folder / PREDICTIONS, lambda t: _jsonl(t, _prediction))
    with damaged(folder / METRICS):
        sets = {k: _set_metrics(k, v, rows) for k, v in sets_in.items()}
    if (folder / ITEM_STATS).exists():
        items = _read(folder / ITEM_STATS, lambda t: {k: _item_stats(v) for k, v in _mapping(json.loads(t)).items()})
    elif rows is not None:
        with damaged(folder / PREDICTIONS):
            items = item_stats(rows, sets_in)
    else:
        items = {}
    with damaged(folder / METRICS):
        return CellRecord(folder, m["cell"], m.get("variant") or "", m["design"], m.get("modeling", "generative"),
                          m["train_size"], m["seed"], m.get("untuned"), config, sets, manifest, items, curve,
                          m.get("schema_version", 1))
