"""The quick results table printed after a run, from the cells' records: a metric per design x train size x
evaluation set, mean ± sd over seeds, with the majority-class baseline (labels as the report writes them)."""
from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from sdelab.report.records import kind_label, majority, read_records
from sdelab.report.text import text
from sdelab.results import CellRecord, read_cell


def summarize(cells: list[CellRecord], metric: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per (design, train size), one column per evaluation set; `metric` None means
    each set's primary metric (accuracy, kappa, F1, ROUGE-L)."""
    sets: dict[str, str] = {}  # key -> column title
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    errors: dict[tuple, list[float]] = defaultdict(list)
    for c in cells:
        for name, m in c.eval.items():
            kind = m.kind + (":unseen-template" if m.template_seen is False else "")
            tag = "" if kind == "in_domain" else f" ({kind_label(kind)})"
            sets.setdefault(name, f"{name}{tag} {metric or m.primary}")
            groups[(c.label, c.size)][name].append(m.values[metric or m.primary])
            errors[(c.label, c.size)].append(m.format_error_rate)
    header = ["design", "train size", "seeds", *sets.values(), "format errors"]
    rows = []
    for (design, size), by_set in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        n = max(len(v) for v in by_set.values())
        fe = errors[(design, size)]
        rows.append([design, size, str(n), *(_mean_sd(by_set.get(s, [])) for s in sets),
                     f"{100 * statistics.fmean(fe):.1f}%" if fe else "-"])
    rows += [["majority class", size, "-", *vals, "-"] for size, vals in majority(cells, list(sets), metric).items()]
    return header, rows


def _mean_sd(xs: list[float]) -> str:
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f}"


def print_table(out_dir: Path, metric: str | None = None, title: str | None = None,
                folders: list[Path] | None = None) -> str:
    """Print the table of the given cell folders (default: every finished cell under out_dir) with rich and
    return it as markdown."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # the cells a run just wrote, else the folder's records as every report reads them (report.records)
    header, rows = summarize([read_cell(f) for f in folders] if folders else read_records(out_dir), metric)
    table = Table(title=escape(title or str(out_dir)))  # names are text, not rich markup
    for h in header:
        table.add_column(escape(h))
    for r in rows:
        table.add_row(*map(escape, r))
    Console().print(table)
    md = "| " + " | ".join(map(text, header)) + " |\n|" + "---|" * len(header) + "\n"
    md += "".join("| " + " | ".join(map(text, r)) + " |\n" for r in rows)
    return md

