"""`sdelab report STUDY_DIR`: report.md and report.html from run folders alone.

Tables of every evaluation set's primary metric by design (mean ± sd over seeds, 95% bootstrap CI over the pooled
items), paired significance of each design against the reference design (paired bootstrap; McNemar for
accuracy), the in-domain / out-of-domain / cross-task matrix with the untuned baselines, plots, and a ranked
summary of which option wins for each factor. Deterministic: the same run folders give the same files."""
from __future__ import annotations

import base64
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

from sdelab.errors import SdelabError
from sdelab.report import stats as st
from sdelab.study import store

KIND_ORDER = {"in_domain": 0, "out_of_domain": 1, "cross_task": 2}
STUDY_COPY = "study.yaml"  # the study as run, written by `sdelab run` next to the run folders


@dataclass
class CellResult:
    folder: Path
    config: dict
    metrics: dict
    items: dict[str, dict]  # evaluation set -> {"primary", "ids", "stats"} (stats.per_item)
    curve: list[dict]
    manifest: dict | None = None  # manifest.json (absent in folders from before it existed)

    @property
    def design(self) -> str:
        v = self.metrics.get("variant")
        return f"{v} {self.metrics['design']}" if v else self.metrics["design"]

    @property
    def size(self) -> str:
        u = self.metrics.get("untuned")
        return f"untuned k={u}" if u is not None else str(self.metrics["train_size"])

    @property
    def seed(self) -> int:
        return self.metrics["seed"]


@dataclass
class Group:
    """All seeds of one (design, train size) on one evaluation set."""
    values: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    items: dict[tuple, np.ndarray] = field(default_factory=dict)  # (seed, item id) -> sufficient statistics


def load_cells(out_dir: Path) -> list[CellResult]:
    """The finished cells of a run folder, the newest of each (design, train size, seed) only (see superseded)."""
    return _current(_read_cells(out_dir))[0]


def _read_cells(out_dir: Path) -> list[CellResult]:
    cells = []
    for d in store.finished_cells(out_dir):
        metrics = store.read_json(d / "metrics.json")
        curve_file = d / "train_log.jsonl"
        curve = [json.loads(x) for x in curve_file.read_text().splitlines()] if curve_file.exists() else []
        manifest = store.read_json(d / "manifest.json") if (d / "manifest.json").exists() else None
        cells.append(CellResult(d, yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")), metrics,
                                cell_items(d, metrics), curve, manifest))
    return sorted(cells, key=lambda c: (c.design, _size_key(c.size), c.seed))


def _finished_at(c: CellResult) -> datetime:
    """When the cell finished (its manifest; cells from machines in other time zones compare correctly)."""
    stamp = (c.manifest or {}).get("finished_at")
    return datetime.fromisoformat(stamp) if stamp else datetime.min.replace(tzinfo=timezone.utc)


def _current(cells: list[CellResult]) -> tuple[list[CellResult], list[tuple[CellResult, CellResult]]]:
    """(cells, superseded): a study changed and run again into the same folder (another lr, max_length, evaluation
    set...) leaves the old cells beside the new ones under other ids; counting both would pass them off as extra
    seeds. Of each (design, train size, seed) the most recently finished cell counts; the others are returned
    with the cell that replaced them."""
    newest: dict[tuple, CellResult] = {}
    for c in cells:
        key = (c.design, c.size, c.seed)
        if key not in newest or _finished_at(c) > _finished_at(newest[key]):
            newest[key] = c
    kept = {id(c) for c in newest.values()}
    return ([c for c in cells if id(c) in kept],
            [(c, newest[(c.design, c.size, c.seed)]) for c in cells if id(c) not in kept])


def _superseded_note(old: list[tuple[CellResult, CellResult]]) -> list[str]:
    if not old:
        return []
    rows = []
    for c, new in old:
        keys = sorted(k for k in set(c.config) | set(new.config) if c.config.get(k) != new.config.get(k))
        rows.append(f"| {c.folder.name} | {new.folder.name} | {', '.join(keys)} |")
    return ["## Superseded run folders (not counted)\n",
            "These cells have the design, train size and seed of a newer cell whose settings differ (the study was "
            "changed and run again into this folder); only the newer one counts. Delete or move the old folders "
            "to silence this.\n", "| ignored | replaced by | settings that differ |", "|---|---|---|", *rows, ""]


def cell_items(d: Path, metrics: dict) -> dict[str, dict]:
    """The cell's per-item statistics: item_stats.json, else computed from predictions.jsonl (and saved, so a
    folder whose predictions stay out of git still reports), else none (no interval or paired test for it)."""
    path, preds = d / store.ITEM_STATS, d / "predictions.jsonl"
    if path.exists():
        return store.read_json(path)
    if not preds.exists():  # a folder from before item_stats.json whose predictions were not kept: means only
        return {}
    rows = [json.loads(x) for x in preds.read_text(encoding="utf-8").splitlines() if x]
    items = st.per_item(rows, metrics["eval"])
    store.write_json(path, items)
    return items


def _size_key(size: str):
    return (0, int(size)) if size.isdigit() else (1 if size == "all" else -1, size)


def build_report(out_dir: Path, reference: str | None = None, n_boot: int = 1000) -> tuple[Path, Path]:
    cells, superseded = _current(_read_cells(out_dir))
    if not cells:
        raise SdelabError("no finished run folders here", path=out_dir)
    study = yaml.safe_load((out_dir / STUDY_COPY).read_text(encoding="utf-8")) if (out_dir / STUDY_COPY).exists() \
        else {}
    designs = list(dict.fromkeys(c.design for c in cells))
    reference = reference or study.get("reference") or _first_listed(study, designs)
    sets = _eval_sets(cells)
    groups = group_cells(cells)
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    md = [f"# Report: {study.get('name', out_dir.name)}\n",
          f"Run folders: {len(cells)} cells. Reference design: `{reference}`. Metric per evaluation set: its task's "
          "primary metric (strict: a format error counts as wrong). Cells are mean ± sd over seeds; CI is the 95% "
          f"percentile bootstrap over the items of all seeds pooled ({n_boot} resamples); p compares a design with "
          "the reference on the same items and seeds (paired bootstrap; McNemar for accuracy).\n"]
    bare = [c.folder.name for c in cells if not c.items]
    if bare:
        md.append(f"{len(bare)} cell(s) kept neither predictions nor per-item statistics ({store.ITEM_STATS}): "
                  "their means count, but they get no interval and no paired test: " + ", ".join(bare) + ".\n")
    md += _superseded_note(superseded)
    md += _precision_note(cells)
    md += _truncation_note(cells)
    md += _main_table(cells, sets, groups, n_boot)
    md += _matrix(cells, sets, groups)
    md += _significance(cells, sets, groups, reference, n_boot)
    md += _summary(cells, sets, groups, reference, n_boot)
    md += _errors_table(cells, sets, groups)
    md += _secondary_table(cells, sets)
    md += _cost_table(cells)
    md += _diagnostics(out_dir, cells, sets, groups)
    plots = _plots(cells, sets, groups, plots_dir)
    md.append("## Plots\n")
    for title, p in plots:
        md.append(f"### {title}\n\n![{title}](plots/{p.name})\n")
    text = "\n".join(md)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    store.write_text(md_path, text)
    store.write_text(html_path, _html(text, out_dir))
    return md_path, html_path


def group_cells(cells: list[CellResult]) -> dict[tuple, Group]:
    """(design, train size, evaluation set) -> its seeds' values, format-error rates and prediction rows."""
    groups: dict[tuple, Group] = defaultdict(Group)
    for c in cells:
        for s, m in c.metrics["eval"].items():
            g = groups[(c.design, c.size, s)]
            g.values.append(m[m["primary"]])
            g.errors.append(m.get("format_error_rate", 0.0))
            it = c.items.get(s, {"ids": [], "stats": []})
            for i, row in zip(it["ids"], it["stats"]):
                g.items[(c.seed, i)] = np.asarray(row, dtype=float)
    return groups


def _first_listed(study: dict, designs: list[str]) -> str:
    for d in study.get("designs", []):
        if isinstance(d, str) and d in designs:
            return d
    return designs[0]


def _eval_sets(cells: list[CellResult]) -> list[tuple[str, str, str]]:
    """(key, kind, primary) of every evaluation set, in-domain first; the kind of a set written with a template
    the model was not trained on ends in UNSEEN."""
    seen = {}
    for c in cells:
        for s, m in c.metrics["eval"].items():
            seen.setdefault(s, (m.get("kind", "in_domain"), m["primary"], m.get("template_seen")))
    return [(s, k + (UNSEEN if t is False else ""), p)
            for s, (k, p, t) in sorted(seen.items(), key=lambda kv: (KIND_ORDER.get(kv[1][0], 9), kv[1][2] is False,
                                                                     kv[0]))]


UNSEEN = ":unseen-template"
KIND_LABEL = {"in_domain": "ID", "out_of_domain": "OOD", "cross_task": "cross-task"}


def _kind_label(kind: str) -> str:
    base = kind.removesuffix(UNSEEN)
    return KIND_LABEL.get(base, base) + (", unseen template" if base != kind else "")


def _label(key: str, kind: str) -> str:
    return f"{key} ({_kind_label(kind)})"


def _matrix(cells, sets, groups) -> list[str]:
    """The generalization view: each design's mean primary metric over the sets of each kind (ID, ID with an
    unseen template, OOD, cross-task), when a study evaluates more than one kind."""
    kinds = list(dict.fromkeys(k for _, k, _ in sets))
    if len(kinds) < 2:
        return []
    out = ["## Generalization matrix (mean over the sets of each kind)\n",
           "Each column averages the design's primary metric over the evaluation sets of that kind it was scored on "
           "(set by set in the table above); in brackets, how many sets.\n",
           "| design | train size | " + " | ".join(_kind_label(k) for k in kinds) + " |",
           "|---|---|" + "---|" * len(kinds)]
    for design, size in _rows_of(cells):
        cols = []
        for k in kinds:
            vals = [statistics.fmean(g.values) for s, kk, _ in sets if kk == k
                    and (g := groups.get((design, size, s))) and g.values]
            cols.append(f"{statistics.fmean(vals):.3f} ({len(vals)})" if vals else "-")
        out.append(f"| {design} | {size} | " + " | ".join(cols) + " |")
    return out + [""]


def _rows_of(cells):
    return list(dict.fromkeys((c.design, c.size) for c in cells))


def _stats(group: Group, keys=None) -> np.ndarray:
    """The group's per-item statistics stacked (all items, or `keys` in that order)."""
    return np.stack([group.items[k] for k in (sorted(group.items) if keys is None else keys)])


def _main_table(cells, sets, groups, n_boot) -> list[str]:
    out = ["## Results by design and evaluation set\n",
           "| design | train size | seeds | " + " | ".join(f"{_label(s, k)} {p}" for s, k, p in sets) + " |",
           "|---|---|---|" + "---|" * len(sets)]
    for design, size in _rows_of(cells):
        cols, n = [], 0
        for s, _, primary in sets:
            g = groups.get((design, size, s))
            if not g or not g.values:
                cols.append("-")
                continue
            n = max(n, len(g.values))
            sd = f" ± {statistics.stdev(g.values):.3f}" if len(g.values) > 1 else ""
            ci = " [{:.3f}, {:.3f}]".format(*st.bootstrap_ci(primary, _stats(g), n_boot)) if g.items else ""
            cols.append(f"{statistics.fmean(g.values):.3f}{sd}{ci}")
        out.append(f"| {design} | {size} | {n} | " + " | ".join(cols) + " |")
    return out + _baseline_rows(cells, sets) + [""]


def _baseline_rows(cells, sets) -> list[str]:
    """Always answering the training set's most frequent label: one row, or one per train size when the training
    subsets of different sizes have different majority labels."""
    by_size = {}
    for size in {c.size for c in cells if not c.size.startswith("untuned")}:
        vals = []
        for s, _, primary in sets:
            v = next((c.metrics["eval"][s].get("majority_baseline") for c in cells if c.size == size
                      and s in c.metrics["eval"] and c.metrics["eval"][s].get("majority_baseline")), None)
            vals.append(f"{v[primary]:.3f}" if v and primary in v else "-")
        if any(v != "-" for v in vals):
            by_size[size] = vals
    if len(set(map(tuple, by_size.values()))) == 1:
        by_size = {"-": next(iter(by_size.values()))}
    return [f"| majority class | {size} | - | " + " | ".join(vals) + " |"
            for size, vals in sorted(by_size.items(), key=lambda kv: _size_key(kv[0]))]


def _ref_label(design: str, reference: str) -> str:
    """The reference design of the same swept variant ('lcqmc es-sde+json' -> 'lcqmc es-sde'), unless the
    reference names a variant itself ('cls inst-first': every variant is compared with it)."""
    return design.rsplit(" ", 1)[0] + " " + reference if " " in design and " " not in reference else reference


def _paired(groups, a_key, b_key, primary, n_boot):
    a, b = groups.get(a_key), groups.get(b_key)
    if not a or not b:
        return None
    common = sorted(set(a.items) & set(b.items))
    if not common:
        return None
    sa, sb = _stats(a, common), _stats(b, common)
    diff, p = st.paired_bootstrap(primary, sa, sb, n_boot)
    mc = st.mcnemar(sa[:, 0], sb[:, 0]) if primary == "accuracy" else None
    return diff, p, mc, len(common)


def _significance(cells, sets, groups, reference, n_boot) -> list[str]:
    out = [f"## Each design against the reference (`{reference}`)\n",
           "Difference in the primary metric (design − reference) on the same items and seeds; p from the paired "
           "bootstrap (McNemar in brackets for accuracy); * marks p < 0.05.\n",
           "| design | train size | " + " | ".join(_label(s, k) for s, k, _ in sets) + " |",
           "|---|---|" + "---|" * len(sets)]
    for design, size in _rows_of(cells):
        ref = _ref_label(design, reference)
        if design == ref and not size.startswith("untuned"):
            continue
        ref_size = size if not size.startswith("untuned") else next(
            (sz for d, sz in _rows_of(cells) if d == ref and not sz.startswith("untuned")), size)
        cols = []
        for s, _, primary in sets:
            r = _paired(groups, (design, size, s), (ref, ref_size, s), primary, n_boot)
            if r is None:
                cols.append("-")
                continue
            diff, p, mc, _ = r
            star = "*" if p < 0.05 else ""
            cols.append(f"{diff:+.3f} (p={p:.3f}{f', McNemar {mc:.3f}' if mc is not None else ''}){star}")
        out.append(f"| {design} | {size} | " + " | ".join(cols) + " |")
    return out + [""]


def _design_options(cells) -> dict[str, dict]:
    """Each trained design's options, with its modeling paradigm as one more factor (gen vs cls)."""
    return {c.design: {**c.config.get("design", {}), "modeling": c.config.get("modeling")}
            for c in cells if c.metrics.get("untuned") is None}


def _summary(cells, sets, groups, reference, n_boot) -> list[str]:
    """For each factor varied one at a time away from the reference (each swept variant's own reference, e.g.
    'gen inst-first' and 'cls inst-first'): the winning option, by how much, and whether the difference is
    significant, per evaluation set, at the reference's largest train size."""
    opts = _design_options(cells)
    by_factor: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for d, o in opts.items():
        ref = _ref_label(d, reference)
        if d == ref or ref not in opts:
            continue
        diff = [k for k in o if k != "name" and o.get(k) != opts[ref].get(k)]
        if len(diff) == 1:
            by_factor[(diff[0], ref)].append((d, str(o[diff[0]])))
    out = ["## Ranked summary: which option wins for each factor\n"]
    if not by_factor:
        return out + ["No design differs from the reference in exactly one option.\n"]
    out += ["| factor | evaluation set | winner | reference option | best other option | other − reference | p | "
            "significant |", "|---|---|---|---|---|---|---|---|"]
    several = len({ref for _, ref in by_factor}) > 1
    rows = _rows_of(cells)
    sizes = {}
    for factor, ref in sorted(by_factor):
        # the largest train size the reference shares with a design it is compared with
        shared = [sz for d, sz in rows if d == ref and any((o, sz) in rows for o, _ in by_factor[(factor, ref)])]
        size = sizes[ref] = max(shared, key=_size_key) if shared else None
        for s, kind, primary in sets:
            best = None
            for d, v in by_factor[(factor, ref)]:
                r = _paired(groups, (d, size, s), (ref, size, s), primary, n_boot)
                if r and (best is None or r[0] > best[1]):
                    best = (v, r[0], r[1])
            if best is None:
                continue
            v, diff, p = best
            ref_opt = opts[ref].get(factor)
            winner = v if diff > 0 else str(ref_opt) if diff < 0 else "tie"
            out.append(f"| {factor}{f' ({ref})' if several else ''} | {_label(s, kind)} | {winner} | {ref_opt} | "
                       f"{v} | {diff:+.3f} | {p:.3f} | {'yes' if p < 0.05 else 'no'} |")
    at = ", ".join(f"{sz} for {r}" for r, sz in sizes.items()) if several else next(iter(sizes.values()))
    return out + [f"\n(train size {at}; the reference design's option against the best of the others.)\n"]


def _diagnostics(out_dir: Path, cells, sets, groups) -> list[str]:
    """Prompt signals on the base model (sdelab diagnose) beside the fine-tuned scores, and their rank
    correlation across designs: does a good prompt make a good training sample?"""
    path = out_dir / "diagnostics.json"
    if not path.exists():
        return []
    from scipy.stats import spearmanr
    diag = store.read_json(path)
    ks = diag["ks"]
    s, kind, primary = next(((s, k, p) for s, k, p in sets if k == "in_domain"), sets[0])
    trained = [sz for _, sz in _rows_of(cells) if not sz.startswith("untuned")]
    size = sorted(set(trained), key=_size_key)[-1] if trained else None
    out = ["## Design diagnostics: prompt quality vs fine-tuned quality\n",
           f"From `sdelab diagnose` on the untuned model ({diag['examples']} training examples for the perplexities); "
           f"in-context ({_icl_items(diag, s)}) and fine-tuned scores on {_label(s, kind)} ({primary}), fine-tuned "
           f"at train size {size}. "
           "Spearman's rho across designs between each prompt signal (higher = better prompt; perplexities are "
           "negated) and the fine-tuned score.\n",
           "| design | prompt PPL | output PPL | " + " | ".join(f"k={k} in-context" for k in ks) +
           " | fine-tuned |", "|---|---|---|" + "---|" * (len(ks) + 1)]
    for design, r in diag["designs"].items():
        g = groups.get((design, size, s))
        ft = statistics.fmean(g.values) if g and g.values else None
        icl = [(r["icl"][str(k)].get(s), r.get("icl_format_errors", {}).get(str(k), {}).get(s)) for k in ks]
        out.append(f"| {design} | {r['prompt_ppl']:.2f} | {r['output_ppl']:.2f} | " +
                   " | ".join("-" if v is None else f"{v:.3f}" + ("" if e is None else f" ({100 * e:.0f}% format "
                                                                  "errors)") for v, e in icl) +
                   f" | {'-' if ft is None else f'{ft:.3f}'} |")
    out.append("")
    signals, tuned = prompt_signals(diag, groups, s, size)
    if len(tuned) >= 3:
        out += ["| prompt signal | Spearman rho with the fine-tuned score | p |", "|---|---|---|"]
        for name, xs in signals.items():
            if constant(xs) or constant(tuned):
                out.append(f"| {name} | - (constant) | - |")
                continue
            rho, p = spearmanr(xs, tuned)
            out.append(f"| {name} | {rho:+.3f} | {p:.3f} |")
        out.append("")
    else:
        out.append("(Rank correlations need at least 3 designs with both diagnostics and fine-tuned scores.)\n")
    return out


def _icl_items(diag: dict, eval_set: str) -> str:
    n = diag.get("icl_examples", {}).get(eval_set)  # files written before --size record no count: all items
    return f"first {n} items" if n is not None else "all items"


def constant(xs: list[float]) -> bool:
    """The same value for every design at the precision the tables show (0.000 and a stray -0.0002 kappa of a
    base model that answers nothing in format are one value: ranking them would be ranking noise)."""
    return len({round(x, 3) for x in xs}) < 2


def prompt_signals(diag: dict, groups: dict, eval_set: str, size: str | None) -> tuple[dict[str, list], list]:
    """Over the designs with a fine-tuned score: each prompt signal (higher = better prompt; perplexities
    negated) and the fine-tuned scores, aligned."""
    ks = diag["ks"]
    signals: dict[str, list] = {"-prompt PPL": [], "-output PPL": [], **{f"k={k} in-context": [] for k in ks}}
    tuned = []
    for design, r in diag["designs"].items():
        g = groups.get((design, size, eval_set))
        if not g or not g.values:
            continue
        tuned.append(statistics.fmean(g.values))
        signals["-prompt PPL"].append(-r["prompt_ppl"])
        signals["-output PPL"].append(-r["output_ppl"])
        for k in ks:
            v = r["icl"][str(k)].get(eval_set)
            signals[f"k={k} in-context"].append(v if v is not None else float("nan"))
    return signals, tuned


def _errors_table(cells, sets, groups) -> list[str]:
    out = ["## Format errors (share of outputs the strict parser rejected)\n",
           "| design | train size | " + " | ".join(_label(s, k) for s, k, _ in sets) + " |",
           "|---|---|" + "---|" * len(sets)]
    for design, size in _rows_of(cells):
        cols = [f"{100 * statistics.fmean(g.errors):.1f}%" if (g := groups.get((design, size, s))) and g.errors
                else "-" for s, _, _ in sets]
        out.append(f"| {design} | {size} | " + " | ".join(cols) + " |")
    return out + [""]


SECONDARY = {"kappa": ["slot_accuracy", "exact_match", "lenient_kappa"],
             "f1": ["strict_soft_f1", "lenient_exact_f1", "lenient_soft_f1"],
             "accuracy": ["macro_f1", "lenient_accuracy"], "rougeL": ["bleu"]}


def _secondary_table(cells, sets) -> list[str]:
    """The family's other metrics (mean ± sd over seeds), one table per primary metric."""
    out = []
    for primary in dict.fromkeys(p for _, _, p in sets):
        names = SECONDARY.get(primary, [])
        mine = [(s, k) for s, k, p in sets if p == primary]
        if not names:
            continue
        out += [f"## Other metrics of the {primary} sets (mean ± sd over seeds)\n",
                "| design | train size | set | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
        for design, size in _rows_of(cells):
            for s, kind in mine:
                ms = [c.metrics["eval"][s] for c in cells if c.design == design and c.size == size
                      and s in c.metrics["eval"]]
                if not ms:
                    continue
                cols = []
                for n in names:
                    xs = [m[n] for m in ms if n in m]
                    sd = f" ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else ""
                    cols.append(f"{statistics.fmean(xs):.3f}{sd}" if xs else "-")
                out.append(f"| {design} | {size} | {_label(s, kind)} | " + " | ".join(cols) + " |")
        out.append("")
    return out


def _precision_note(cells) -> list[str]:
    """Cells computed in different precisions (a study resumed on a machine with or without native bf16, where
    `precision: auto` picks differently) differ a little for that reason alone: say which ran in which."""
    by: dict[str, list[str]] = defaultdict(list)
    for c in cells:
        if c.manifest is not None:
            by[c.manifest.get("precision", "unknown")].append(c.folder.name)
    if len(by) < 2:
        return []
    parts = "; ".join(f"{p}: {', '.join(sorted(names))}" for p, names in sorted(by.items()))
    return [f"Cells ran in different precisions ({parts}): comparisons across precisions include numeric "
            "differences, not only the designs'.\n"]


def _truncation_note(cells) -> list[str]:
    """Cells whose training samples or evaluation prompts had their input cut to fit train.max_length (the tail
    of the item's input goes; demonstrations and instruction stay): their scores are of shortened inputs."""
    rows = []
    for c in cells:
        train = (c.manifest or {}).get("train") or {}
        parts = [f"{train['truncated_samples']} of {train['examples']} training samples"] \
            if train.get("truncated_samples") else []
        cut = {s: e["prompts_truncated"] for s, e in c.metrics["eval"].items() if e.get("prompts_truncated")}
        if cut:
            parts.append(f"{sum(cut.values())} of {sum(c.metrics['eval'][s]['n'] for s in cut)} evaluation "
                         f"prompts ({', '.join(f'{s}: {n}' for s, n in cut.items())})")
        if parts:
            rows.append(f"| {c.design} | {c.size} | {c.seed} | {'; '.join(parts)} |")
    if not rows:
        return []
    uncounted = any("prompts_truncated" not in e for c in cells for e in c.metrics["eval"].values())
    return ["## Inputs cut to fit max_length\n",
            "These cells saw shortened inputs (the tail of the item's own input was cut; instruction and "
            "demonstrations were kept): raise train.max_length to compare them on whole inputs."
            + (" Cells run before sdelab counted cut evaluation prompts show their training samples only."
               if uncounted else "") + "\n",
            "| design | train size | seed | inputs cut |", "|---|---|---|---|", *rows, ""]


def _cost_table(cells) -> list[str]:
    """What each design cost to train and evaluate (mean over seeds, from the cells' manifest.json)."""
    per: dict[tuple, list[dict]] = defaultdict(list)
    for c in cells:
        if c.manifest is not None and c.metrics.get("untuned") is None:
            per[(c.design, c.size)].append(c.manifest)
    if not per:
        return []
    out = ["## Cost (mean over seeds)\n",
           "Training tokens are the prompt and response tokens the model processed (padding excluded).\n",
           "| design | train size | training tokens | train time (s) | tokens/s | eval time (s) |",
           "|---|---|---|---|---|---|"]
    for (design, size), ms in per.items():
        mean = lambda f: statistics.fmean(f(m) for m in ms)  # noqa: E731
        out.append(f"| {design} | {size} | {mean(lambda m: m['train']['tokens']):,.0f} | "
                   f"{mean(lambda m: m['timings']['train_s']):.0f} | "
                   f"{mean(lambda m: m['train']['tokens_per_second']):.0f} | "
                   f"{mean(lambda m: m['timings']['eval_s']):.0f} |")
    return out + [""]


def _plots(cells, sets, groups, plots_dir: Path) -> list[tuple[str, Path]]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []

    def save(fig, name, title):
        p = plots_dir / name
        fig.tight_layout()
        fig.savefig(p, dpi=90, metadata={"Software": None})
        plt.close(fig)
        made.append((title, p))

    rows = _rows_of(cells)
    labels = [f"{d}\n{sz}" for d, sz in rows]
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(sets))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    for i, (s, kind, primary) in enumerate(sets):
        means = [statistics.fmean(g.values) if (g := groups.get((d, sz, s))) and g.values else np.nan
                 for d, sz in rows]
        sds = [statistics.stdev(g.values) if (g := groups.get((d, sz, s))) and len(g.values) > 1 else 0
               for d, sz in rows]
        ax.bar(x + i * width, means, width, yerr=sds, capsize=3, label=f"{_label(s, kind)} {primary}")
    ax.set_xticks(x + width * (len(sets) - 1) / 2, labels, fontsize=7)
    ax.set_ylabel("primary metric")
    ax.legend(fontsize=7)
    save(fig, "scores.png", "Score per design (mean ± sd over seeds)")

    id_sets = [s for s, k, _ in sets if k == "in_domain"]
    ood_sets = [s for s, k, _ in sets if k != "in_domain"]
    if id_sets and ood_sets:
        fig, ax = plt.subplots(figsize=(5, 4))
        for d, sz in rows:
            xi = [statistics.fmean(g.values) for s in id_sets if (g := groups.get((d, sz, s))) and g.values]
            yo = [statistics.fmean(g.values) for s in ood_sets if (g := groups.get((d, sz, s))) and g.values]
            if xi and yo:
                ax.scatter(statistics.fmean(xi), statistics.fmean(yo))
                ax.annotate(f"{d} ({sz})", (statistics.fmean(xi), statistics.fmean(yo)), fontsize=7)
        ax.set_xlabel("in-domain (mean of ID sets)")
        ax.set_ylabel("out-of-domain / cross-task (mean)")
        save(fig, "id_vs_ood.png", "In-domain vs out-of-domain")

    sizes = sorted({sz for _, sz in rows if sz.isdigit()}, key=int)
    if len(sizes) > 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        s, kind, primary = sets[0]
        for d in dict.fromkeys(d for d, _ in rows):
            ys = [statistics.fmean(g.values) if (g := groups.get((d, sz, s))) and g.values else np.nan
                  for sz in sizes]
            ax.plot([int(z) for z in sizes], ys, marker="o", label=d)
        ax.set_xscale("log")
        ax.set_xticks([int(z) for z in sizes], sizes)  # the sizes themselves, not powers of ten
        ax.minorticks_off()
        ax.set_xlabel("training examples")
        ax.set_ylabel(f"{_label(s, kind)} {primary}")
        ax.legend(fontsize=7)
        save(fig, "learning_curves.png", "Learning curves over training size")

    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 3.5))
    errs = [100 * statistics.fmean([e for s, _, _ in sets for e in groups[(d, sz, s)].errors
                                    if (d, sz, s) in groups] or [0]) for d, sz in rows]
    ax.bar(x, errs)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("format errors (%)")
    save(fig, "format_errors.png", "Format-error rate per design")

    trained = [c for c in cells if c.curve]
    if trained:
        fig, ax = plt.subplots(figsize=(6, 4))
        for c in trained:
            ax.plot([p["step"] for p in c.curve], [p["loss"] for p in c.curve], label=f"{c.design} {c.size} "
                                                                                      f"s{c.seed}", lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
        save(fig, "training_loss.png", "Training loss")
    return made


def _html(md: str, out_dir: Path) -> str:
    """A self-contained page: markdown tables as HTML tables, plots embedded as PNG data."""
    import html
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>sdelab report</title><style>"
             "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}</style></head><body>"]
    lines, i = md.splitlines(), 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            cells = [[html.escape(c.strip()) for c in r.strip("|").split("|")] for r in block if "---|" not in r]
            parts.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in cells[0]) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:]) + "</table>")
            continue
        if ln.startswith("!["):
            name = ln[ln.index("](") + 2: ln.rindex(")")]
            data = base64.b64encode((out_dir / name).read_bytes()).decode()
            parts.append(f"<img src='data:image/png;base64,{data}'>")
        elif ln.startswith("#"):
            level = len(ln) - len(ln.lstrip("#"))
            parts.append(f"<h{level}>{html.escape(ln.lstrip('#').strip())}</h{level}>")
        elif ln.strip():
            parts.append(f"<p>{html.escape(ln)}</p>")
        i += 1
    parts.append("</body></html>")
    return "\n".join(parts)
