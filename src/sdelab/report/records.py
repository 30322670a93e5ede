"""A study's output folder as every report reads it: the finished cells' records (the newest of each design, train
size and seed), their evaluation sets and labels, and the per-(design, size, set) groups of seeds that tables,
statistics, plots and claims are computed from."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdelab.errors import SdelabError
from sdelab.results import (CONFIG, ITEM_STATS, MANIFEST, METRICS, PREDICTIONS, TRAIN_LOG, CellRecord,
                            finished_folders, read_cell, size_key)
from sdelab.yamlio import load_yaml

KIND_ORDER = {"in_domain": 0, "out_of_domain": 1, "cross_task": 2}
KIND_LABEL = {"in_domain": "ID", "out_of_domain": "OOD", "cross_task": "cross-task"}
UNSEEN = ":unseen-template"
STUDY_COPY = "study.yaml"  # the study as run, written by `sdelab run` next to the run folders
DIAGNOSTICS = "diagnostics.json"  # sdelab diagnose's results, beside the run folders
RECORD = (CONFIG, METRICS, MANIFEST, PREDICTIONS, ITEM_STATS, TRAIN_LOG)  # what a report reads of a cell folder


@dataclass
class Group:
    """All seeds of one (design, train size) on one evaluation set."""
    values: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    items: dict[tuple, np.ndarray] = field(default_factory=dict)  # (seed, item id) -> sufficient statistics
    majority: list[float] = field(default_factory=list)  # the majority-class score of each seed's training subset
    top_shares: list[float] = field(default_factory=list)  # each seed's share of its most frequent answer (kept ones)
    sizes: list[int] = field(default_factory=list)  # items scored per seed
    kind: str = "in_domain"  # the set's kind (in_domain | out_of_domain | cross_task)
    primary: str = ""  # the set's primary metric


@dataclass
class Loaded:
    out_dir: Path
    study: dict  # study.yaml as run ({} when absent)
    cells: list[CellRecord]  # the counted cells, sorted by design, size and seed
    superseded: list[tuple[CellRecord, CellRecord]]  # (ignored cell, the newer cell that replaced it)
    sets: list[tuple[str, str, str]]  # (key, kind, primary), in-domain first
    groups: dict[tuple, Group]


def load(out_dir: Path) -> Loaded:
    cells, superseded = current(read_records(out_dir))
    if not cells:
        raise SdelabError("no finished run folders here", path=out_dir)
    copy = out_dir / STUDY_COPY
    study = load_yaml(copy)[0] if copy.exists() else {}
    if not isinstance(study, dict | None):
        raise SdelabError("not a study (a YAML mapping)", path=copy)
    return Loaded(out_dir, study or {}, cells, superseded, eval_sets(cells), group_cells(cells))


def load_cells(out_dir: Path) -> list[CellRecord]:
    """The counted cells of an output folder (none when it has no finished cell)."""
    return current(read_records(out_dir))[0]


def read_records(out_dir: Path) -> list[CellRecord]:
    """Every finished cell's record. A run folder may have been edited by hand: a file a report reads (a cell's
    record, the study copy, the diagnostics) that is a link leading out of the folder is refused, so a report only
    ever shows what the folder itself holds (and every string of it as text: report.text)."""
    root, folders = out_dir.resolve(), finished_folders(out_dir)
    for p in [out_dir / STUDY_COPY, out_dir / DIAGNOSTICS, *folders, *(f / n for f in folders for n in RECORD)]:
        if not p.resolve().is_relative_to(root):
            raise SdelabError("leads out of the run folder (a link): a report reads only the folder's own files; "
                              "put a copy in its place", path=p)
    return [read_cell(f) for f in folders]


def current(cells: list[CellRecord]) -> tuple[list[CellRecord], list[tuple[CellRecord, CellRecord]]]:
    """(cells, superseded), sorted by design, size and seed: a study changed and run again into the same folder
    (another lr, max_length, evaluation set...) leaves the old cells beside the new ones under other ids; counting
    both would pass them off as extra seeds. Of each (design, train size, seed) the most recently finished cell
    counts; the others are returned with the cell that replaced them."""
    cells, newest = sorted(cells, key=lambda c: (c.label, size_key(c.size), c.seed)), {}
    for c in cells:
        key = (c.label, c.size, c.seed)
        if key not in newest or c.finished_at > newest[key].finished_at:
            newest[key] = c
    kept = {id(c) for c in newest.values()}
    return ([c for c in cells if id(c) in kept],
            [(c, newest[(c.label, c.size, c.seed)]) for c in cells if id(c) not in kept])


def group_cells(cells: list[CellRecord]) -> dict[tuple, Group]:
    """(design, train size, evaluation set) -> its seeds' values, format-error rates and per-item statistics."""
    groups: dict[tuple, Group] = defaultdict(Group)
    for c in cells:
        for s, m in c.eval.items():
            g = groups[(c.label, c.size, s)]
            g.values.append(m.value)
            g.kind, g.primary = m.kind, m.primary
            g.errors.append(m.format_error_rate)
            g.sizes.append(m.n)
            if m.majority_baseline and isinstance(v := m.majority_baseline.get(m.primary), (int, float)) \
                    and v == v:  # a NaN majority (no item) is no floor
                g.majority.append(float(m.majority_baseline[m.primary]))
            if m.top_answer_share is not None:
                g.top_shares.append(m.top_answer_share)
            it = c.items.get(s)
            for i, row in zip(it.ids, it.stats) if it else ():
                g.items[(c.seed, i)] = np.asarray(row, dtype=float)
    return groups


def eval_sets(cells: list[CellRecord]) -> list[tuple[str, str, str]]:
    """(key, kind, primary) of every evaluation set, in-domain first; the kind of a set written with a template
    the model was not trained on ends in UNSEEN."""
    seen = {}
    for c in cells:
        for s, m in c.eval.items():
            seen.setdefault(s, (m.kind, m.primary, m.template_seen))
    return [(s, k + (UNSEEN if t is False else ""), p)
            for s, (k, p, t) in sorted(seen.items(), key=lambda kv: (KIND_ORDER.get(kv[1][0], 9), kv[1][2] is False,
                                                                     kv[0]))]


def kind_label(kind: str) -> str:
    base = kind.removesuffix(UNSEEN)
    return KIND_LABEL.get(base, base) + (", unseen template" if base != kind else "")


def set_label(key: str, kind: str) -> str:
    return f"{key} ({kind_label(kind)})"


def rows_of(cells: list[CellRecord]) -> list[tuple[str, str]]:
    """(design, train size) of every table row, in the cells' order."""
    return list(dict.fromkeys((c.label, c.size) for c in cells))


def trained_sizes(cells: list[CellRecord]) -> list[str]:
    return sorted({c.size for c in cells if c.untuned is None}, key=size_key)


def stacked(group: Group, keys=None) -> np.ndarray:
    """The group's per-item statistics stacked (all items, or `keys` in that order)."""
    return np.stack([group.items[k] for k in (sorted(group.items) if keys is None else keys)])


def majority(cells: list[CellRecord], sets: list[str], metric: str | None = None) -> dict[str, list[str]]:
    """Always answering the training set's most frequent label, per set (formatted; '-' where a set has none):
    one row ('-'), or one per train size when the training subsets of different sizes have different majority
    labels."""
    by_size = {}
    for size in {c.size for c in cells if c.untuned is None}:
        vals = []
        for s in sets:
            v = next((c.eval[s] for c in cells if c.size == size and s in c.eval and c.eval[s].majority_baseline),
                     None)
            name = metric or (v.primary if v else None)
            vals.append(f"{v.majority_baseline[name]:.3f}" if v and name in v.majority_baseline else "-")
        if any(v != "-" for v in vals):
            by_size[size] = vals
    if len(set(map(tuple, by_size.values()))) == 1:
        by_size = {"-": next(iter(by_size.values()))}
    return dict(sorted(by_size.items(), key=lambda kv: size_key(kv[0])))


def ref_label(design: str, reference: str) -> str:
    """The reference design of the same swept variant ('lcqmc es-sde+json' -> 'lcqmc es-sde'), unless the
    reference names a variant itself ('cls inst-first': every variant is compared with it)."""
    return design.rsplit(" ", 1)[0] + " " + reference if " " in design and " " not in reference else reference
