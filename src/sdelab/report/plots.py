"""The report's plots (matplotlib), drawn from the loaded records. Their file names are sdelab's own (NAMES), never
made from a design or set name; every label that holds a name is plain text (`TEXT`: no mathtext, and no LaTeX
whatever a matplotlibrc says: a '$' in a name is a dollar sign)."""
from __future__ import annotations

import io
import statistics
from pathlib import Path

import numpy as np

from sdelab import fileio
from sdelab.report.records import Loaded, rows_of, set_label

NAMES = ("scores.png", "id_vs_ood.png", "learning_curves.png", "format_errors.png", "training_loss.png")
TEXT = {"parse_math": False}  # the Text properties of a label that holds a name


def plots(r: Loaded, plots_dir: Path) -> list[tuple[str, Path, bytes]]:
    """The report's figures, written to `plots_dir` (PNG without metadata: the same records give the same bytes);
    (title, path, PNG bytes) of each."""
    import matplotlib
    matplotlib.use("Agg")
    with matplotlib.rc_context({"text.usetex": False}):
        return _draw(r, plots_dir)


def _draw(r: Loaded, plots_dir: Path) -> list[tuple[str, Path, bytes]]:
    import matplotlib.pyplot as plt
    cells, sets, groups = r.cells, r.sets, r.groups
    made = []

    def legend(ax, size):
        for t in ax.legend(fontsize=size).get_texts():
            t.set(**TEXT)

    def save(fig, name, title):
        assert name in NAMES
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
        plt.close(fig)
        p = plots_dir / name
        fileio.write_bytes(p, buf.getvalue())  # replaces a link in its place rather than writing through it
        made.append((title, p, buf.getvalue()))

    rows = rows_of(cells)
    labels = [f"{d}\n{sz}" for d, sz in rows]
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(sets))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    for i, (s, kind, primary) in enumerate(sets):
        means = [statistics.fmean(g.values) if (g := groups.get((d, sz, s))) and g.values else np.nan
                 for d, sz in rows]
        sds = [statistics.stdev(g.values) if (g := groups.get((d, sz, s))) and len(g.values) > 1 else 0
               for d, sz in rows]
        ax.bar(x + i * width, means, width, yerr=sds, capsize=3, label=f"{set_label(s, kind)} {primary}")
    ax.set_xticks(x + width * (len(sets) - 1) / 2, labels, fontsize=7, **TEXT)
    ax.set_ylabel("primary metric")
    legend(ax, 7)
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
                ax.annotate(f"{d} ({sz})", (statistics.fmean(xi), statistics.fmean(yo)), fontsize=7, **TEXT)
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
        ax.set_ylabel(f"{set_label(s, kind)} {primary}", **TEXT)
        legend(ax, 7)
        save(fig, "learning_curves.png", "Learning curves over training size")

    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 3.5))
    errs = [100 * statistics.fmean([e for s, _, _ in sets for e in groups[(d, sz, s)].errors
                                    if (d, sz, s) in groups] or [0]) for d, sz in rows]
    ax.bar(x, errs)
    ax.set_xticks(x, labels, fontsize=7, **TEXT)
    ax.set_ylabel("format errors (%)")
    save(fig, "format_errors.png", "Format-error rate per design")

    trained = [c for c in cells if c.curve]
    if trained:
        fig, ax = plt.subplots(figsize=(6, 4))
        for c in trained:
            ax.plot([p["step"] for p in c.curve], [p["loss"] for p in c.curve], label=f"{c.label} {c.size} "
                                                                                      f"s{c.seed}", lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        legend(ax, 6)
        save(fig, "training_loss.png", "Training loss")
    return made
