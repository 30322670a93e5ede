"""The results table, read from run folders only: a metric per design x train size x evaluation set,
mean ± sd over seeds, with the majority-class baseline."""
from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from sdelab.study import store


def collect(out_dir: Path, folders: list[Path] | None = None) -> list[dict]:
    """metrics.json of the given cell folders (default: every finished cell under out_dir)."""
    return [store.read_json(p / "metrics.json") for p in (folders or store.finished_cells(out_dir))]


def summarize(results: list[dict], metric: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per (design, train size), one column per evaluation set; `metric` None means
    each set's primary metric (accuracy, kappa, F1, ROUGE-L)."""
    sets: list[str] = []
    names: dict[str, str] = {}
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    errors: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    majority: dict[str, dict[str, float]] = defaultdict(dict)  # train size -> set -> baseline
    for r in results:
        size = f"untuned, k={r['untuned']}" if r.get("untuned") is not None else str(r["train_size"])
        key = ((r.get("variant") + " " if r.get("variant") else "") + r["design"], size)
        for name, m in r["eval"].items():
            if name not in sets:
                sets.append(name)
            met = metric or m.get("primary", "accuracy")
            tag = {"out_of_domain": " (OOD)", "cross_task": " (cross-task)"}.get(m.get("kind"), "")
            if m.get("template_seen") is False:
                tag += " (unseen template)"
            names[name] = f"{name}{tag} {met}"
            groups[key][name].append(m[met])
            errors[key][name].append(m.get("format_error_rate", 0.0))
            base = m.get("majority_baseline")
            if base and met in base:
                majority[size].setdefault(name, base[met])
    header = ["design", "train size", "seeds"] + [names[s] for s in sets] + ["format errors"]
    rows = []
    for (design, size), by_set in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        n = max(len(v) for v in by_set.values())
        cells = [_mean_sd(by_set.get(s, [])) for s in sets]
        fe = [x for s in sets for x in errors[(design, size)].get(s, [])]
        rows.append([design, size, str(n), *cells, f"{100 * statistics.fmean(fe):.1f}%" if fe else "-"])
    # one row, or one per train size when subsets of different sizes have different majority labels
    by_size = {size: tuple(f"{b[s]:.3f}" if s in b else "-" for s in sets) for size, b in majority.items()}
    if len(set(by_size.values())) == 1:
        by_size = {"-": next(iter(by_size.values()))}
    rows += [["majority class", size, "-", *vals, "-"] for size, vals in sorted(by_size.items())]
    return header, rows


def _mean_sd(xs: list[float]) -> str:
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f}"


def print_table(out_dir: Path, metric: str | None = None, title: str | None = None,
                folders: list[Path] | None = None) -> str:
    """Print the table with rich and return it as markdown."""
    from rich.console import Console
    from rich.table import Table

    header, rows = summarize(collect(out_dir, folders), metric)
    table = Table(title=title or str(out_dir))
    for h in header:
        table.add_column(h)
    for r in rows:
        table.add_row(*r)
    Console().print(table)
    md = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    md += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    return md
