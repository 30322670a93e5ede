"""`sdelab plan STUDY` (also printed by `sdelab run STUDY --dry-run`): power and cost before compute.

For every comparison the study's report will make (each design against the reference, per evaluation set and
train size) the smallest true difference the study resolves with 80% power at a two-sided 5% level, from the
same variance the finished report uses (report.stats): var_items(N) + 2 * sigma_seed^2 / S.

- var_items(N): the paired bootstrap variance of the difference over the items of a pilot (the study's output
  folder, or `--pilot DIR`: any finished cells of the same task) with up to S of its seeds, as the report computes
  it, scaled from the pilot's N0 items to the planned N as var * N0 / N. Without a pilot pair for that set: the
  median over the pilot's pairs; without any pilot: the stated prior PRIOR_ITEM_SD^2 / N (a per-item sd of the difference of 0.5: two designs that
  disagree on a quarter of the items of an accuracy set).
- sigma_seed^2: the pilot's pooled seed-to-seed variance on the set, else, for a study of >= 2 seeds, the prior
  PRIOR_SEED_SD^2 (0.015, a stated guess: half the largest difference, 0.03, that the genft-gen batch-plan check
  measured between two runs of one design). A one-seed study without a measured spread gets none, as its report's interval (which says so).
- The quantiles are Student's t with the Welch-Satterthwaite degrees of freedom the report will have (its
  trained designs x (S - 1) for the seed term), so two or three seeds are not taken for more than they know.
- S: the study's seeds per cell. More seeds buy down mainly the seed term (the seeds score the same items, so
  the item term shrinks with S only by the part of each item's noise that changes between seeds), more items only
  the item term: docs/results/README.md, "Sizing a study".

The cost: each unfinished cell's training tokens (its rendered samples x epochs) at the training tokens/s measured
on this machine, plus its evaluation items at the measured seconds per item. Measured means: the pilot's cells
run on this CPU with this model (median), else a probe that trains one cell on PROBE_TRAIN examples and
evaluates PROBE_EVAL items here (a few seconds to a minute; `--no-measure` skips it and leaves the cost open)."""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from sdelab.report import stats as st
from sdelab.report.gates import is_untuned, item_clusters, seed_variance, shared_items
from sdelab.report.records import Group, group_cells, load_cells, ref_label, stacked
from sdelab.report.text import text
from sdelab.results import CellRecord, design_label, size_label

PRIOR_ITEM_SD = 0.5
PRIOR_SEED_SD = 0.015
PROBE_TRAIN, PROBE_EVAL = 16, 8


@dataclass(frozen=True)
class PowerRow:
    design: str
    reference: str
    eval_set: str
    size: str
    items: int
    seeds: int
    item_sd: float  # sd of the difference over the N planned items (with up to S of the pilot's seeds)
    seed_sd: float
    source: str  # where the variances come from
    min_effect: float


@dataclass(frozen=True)
class Throughput:
    train_tokens_per_s: float | None
    eval_s_per_item: float | None
    source: str


def pilot_item_variance(groups: dict[tuple, Group], a_key: tuple, b_key: tuple, primary: str, seeds: int,
                        n_boot: int = 400) -> tuple[float, int] | None:
    """(variance of a - b over the items, as the report computes it with up to `seeds` of the pilot's shared seeds,
    number of items), or None."""
    common = shared_items(groups, a_key, b_key)
    if not common:
        return None
    a, b = groups[a_key], groups[b_key]
    first = sorted({s for s, _ in common})[:seeds]
    keys = [k for k in common if k[0] in first]
    clusters = item_clusters(keys)
    return (st.item_variance(primary, stacked(a, keys), stacked(b, keys), n_boot, clusters=clusters),
            int(clusters.max()) + 1)


def power_rows(comparisons: list[tuple[str, str, str, str, str, int]], seeds: int, pilot: dict[tuple, Group],
               n_boot: int = 400) -> list[PowerRow]:
    """comparisons: (design, reference, set, size, primary, planned items)."""
    per_set: dict[str, list[float]] = {}  # the pilot's per-item variances (var * N0) of every pair, by set
    measured = {}
    for design, ref, s, size, primary, _ in comparisons:
        for z in {size} | {k[1] for k in pilot if k[0] == design and k[2] == s and not is_untuned(k[1])}:
            got = pilot_item_variance(pilot, (design, z, s), (ref, z, s), primary, seeds, n_boot)
            if got:
                per_set.setdefault(s, []).append(got[0] * got[1])
                if z == size:
                    measured[(design, s, size)] = got[0] * got[1]
    rows = []
    for design, ref, s, size, primary, n in comparisons:
        if (design, s, size) in measured:
            unit, src = measured[(design, s, size)], "pilot pair"
        elif per_set.get(s):
            unit, src = statistics.median(per_set[s]), "pilot, other pairs"
        else:
            unit, src = PRIOR_ITEM_SD ** 2, "prior"
        var_seed, _ = seed_variance(pilot, s)
        # the trained (design, size) groups the report pools the seed variance over, on this set
        trained_designs = len({(d, z) for d, _, x, z, *_ in comparisons if x == s}
                              | {(r, z) for _, r, x, z, *_ in comparisons if x == s})
        if var_seed is not None:
            seed_src = "pilot seeds"
        elif seeds > 1:
            var_seed, seed_src = PRIOR_SEED_SD ** 2, "prior seed sd"
        else:  # the report of a one-seed study cannot measure training noise: its interval leaves it out
            var_seed, seed_src = 0.0, "1 seed: training noise not in the interval"
        item_var = unit / max(n, 1)
        term = 2 * var_seed / seeds
        # the report estimates the seed term from the study's own designs: (S - 1) degrees of freedom each
        df = st.satterthwaite_df(item_var, term, trained_designs * (seeds - 1))
        rows.append(PowerRow(design, ref, s, size, n, seeds, item_var ** 0.5, var_seed ** 0.5, f"{src}; {seed_src}",
                             st.min_effect((item_var + term) ** 0.5, df=df)))
    return rows


def pilot_throughput(cells: list[CellRecord], model: str, cpu: str) -> Throughput | None:
    """Median training tokens/s and evaluation seconds per item of the pilot's cells run on this CPU and model."""
    mine = [c for c in cells if c.manifest and c.manifest.get("cpu") == cpu
            and (c.manifest.get("model") or {}).get("name") == model]
    train = [c.manifest["train"]["tokens_per_second"] for c in mine if (c.manifest.get("train") or {})
             .get("tokens_per_second")]
    per_item = [c.manifest["timings"]["eval_s"] / n for c in mine
                if (n := sum(m.n for m in c.eval.values())) and "eval_s" in c.manifest.get("timings", {})]
    if not train and not per_item:
        return None
    return Throughput(statistics.median(train) if train else None,
                      statistics.median(per_item) if per_item else None,
                      f"pilot: {len(mine)} cells on this CPU")


def probe_throughput(ctx, cells) -> Throughput:
    """Train one cell of the study on PROBE_TRAIN examples and evaluate PROBE_EVAL items of its first set, here, in
    a temporary folder (nothing of it is kept)."""
    from sdelab import results
    from sdelab.study.runner import run_cell
    cell = next((c for c in cells if c.untuned is None and c.design.reasoning == "none"), None)
    if cell is None:
        return Throughput(None, None, "no cell without rationales to probe")
    n = min(PROBE_TRAIN, len(ctx.train_pool))
    cell = replace(cell, train_size=n, config={**cell.config, "train_size": n})
    train = ctx.study.train.model_copy(update={"epochs": 1.0})
    with tempfile.TemporaryDirectory() as tmp:
        probe = replace(ctx, out_dir=Path(tmp), study=ctx.study.model_copy(update={"train": train}),
                        targets=[replace(ctx.targets[0], examples=ctx.targets[0].examples[:PROBE_EVAL])])
        t0 = time.perf_counter()
        rec = results.read_cell(run_cell(probe, cell))
        wall = time.perf_counter() - t0
    tok = (rec.manifest.get("train") or {}).get("tokens_per_second")
    items = sum(m.n for m in rec.eval.values())
    return Throughput(tok, rec.manifest["timings"]["eval_s"] / items if items else None,
                      f"probe: {n} examples trained, {items} items scored here in {wall:.0f} s")


def plan_markdown(name: str, cpu: str, rows: list[PowerRow], cost_rows: list[tuple[str, int, int, int]],
                  through: dict[str, Throughput], cores: int = 2) -> str:
    """cost_rows: (sub-study label, cells to go, training tokens to go, evaluation items to go)."""
    out = [f"# Plan: {text(name)}\n", f"CPU: {text(cpu)}. Smallest effect resolved with 80% power (two-sided 5%): the "
           "seed-aware interval of the finished report, item term scaled from the pilot (or the prior) to the planned "
           "items.\n",
           "| design vs reference | set | train size | items | seeds | item sd | seed sd | smallest effect | from |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {text(r.design)} vs {text(r.reference)} | {text(r.eval_set)} | {text(r.size)} | {r.items} | "
                   f"{r.seeds} | {r.item_sd:.3f} | {r.seed_sd:.3f} | {r.min_effect:.3f} | {r.source} |")
    out += ["", "| sub-study | cells to go | training tokens | evaluation items | tokens/s | s/item | CPU-hours | "
            "measured by |", "|---|---|---|---|---|---|---|---|"]
    total = 0.0
    for label, cells, tokens, items in cost_rows:
        t = through.get(label) or Throughput(None, None, "not measured")
        hours = None
        if (t.train_tokens_per_s or not tokens) and t.eval_s_per_item is not None:
            # sdelab trains and evaluates on every core it may use: a wall-clock hour is `cores` CPU-hours
            hours = cores * ((tokens / t.train_tokens_per_s if tokens else 0.0) + items * t.eval_s_per_item) / 3600
            total += hours
        out.append(f"| {text(label)} | {cells} | {tokens:,} | {items:,} | "
                   f"{f'{t.train_tokens_per_s:.0f}' if t.train_tokens_per_s else '-'} | "
                   f"{f'{t.eval_s_per_item:.2f}' if t.eval_s_per_item is not None else '-'} | "
                   f"{f'{hours:.1f}' if hours is not None else '-'} | {text(t.source)} |")
    out.append(f"\nTotal: {total:.1f} CPU-hours ({total / cores:.1f} h wall-clock on {cores} cores) for the "
               "measured sub-studies.\n")
    return "\n".join(out)


def comparisons_of(sub, reference: str | None, targets) -> list[tuple[str, str, str, str, str, int]]:
    """(design, reference, set, size, primary, items) of each trained design against the reference that the
    report will make for a sub-study."""
    from sdelab.metrics import PRIMARY
    labels = [x for x in dict.fromkeys((design_label(c.variant, c.design.name), size_label(c.train_size, c.untuned))
                                       for c in sub.cells) if not is_untuned(x[1])]
    ref = reference or (labels[0][0] if labels else "")
    return [(label, ref_label(label, ref), t.key, size, PRIMARY[t.task.spec.family], len(t.examples))
            for label, size in labels if label != ref_label(label, ref) for t in targets]


def merged(first: Throughput | None, second: Throughput) -> Throughput:
    """Each figure from `first` where it has it, else from `second`."""
    if first is None:
        return second
    return Throughput(first.train_tokens_per_s or second.train_tokens_per_s,
                      first.eval_s_per_item if first.eval_s_per_item is not None else second.eval_s_per_item,
                      f"{first.source}; {second.source}")


def pilot_groups(pilot_dir: Path | None) -> tuple[list[CellRecord], dict[tuple, Group]]:
    cells = load_cells(pilot_dir) if pilot_dir and pilot_dir.is_dir() else []
    return cells, group_cells(cells)
