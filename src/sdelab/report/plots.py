"""The report's figures (matplotlib, SVG), drawn from the loaded records, each with its uncertainty: the forest plot
of every comparison with the reference (seed-aware 95% intervals, coloured by verdict, the floor marked), in-domain
against out-of-domain scores with error bars, learning curves and training-loss curves with bands over seeds.

Their file names are sdelab's own (NAMES), never made from a design or set name. The SVG is inert and stable:
- text is drawn as paths (`svg.fonttype: path`) and matplotlib's comments (which repeat each text) are removed, so
  no string of a run folder (a design named `<script>`) appears in the file as text or markup;
- every label that holds a name is plain text (`TEXT`: no mathtext, and no LaTeX whatever a matplotlibrc says: a
  '$' in a name is a dollar sign);
- no date or creator in the metadata and a fixed `svg.hashsalt`: the same records give the same bytes.
The pure helpers (`forest_rows`, `id_ood_points`) compute what the figures draw."""
from __future__ import annotations

import io
import math
import re
import statistics
from pathlib import Path
from typing import NamedTuple

import numpy as np

from sdelab import fileio
from sdelab.report import stats as st
from sdelab.report.gates import Comparison, compare, floor, is_untuned
from sdelab.report.records import Loaded, ref_label, rows_of, set_label, stacked
from sdelab.results import size_key

NAMES = ("scores.svg", "forest.svg", "id_vs_ood.svg", "learning_curves.svg", "training_loss.svg",
         "format_errors.svg")
TEXT = {"parse_math": False}  # the Text properties of a label that holds a name
RC = {"text.usetex": False, "svg.fonttype": "path", "svg.hashsalt": "sdelab-report", "font.size": 8,
      "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7}
METADATA = {"Date": None, "Creator": None}
WIDTH = 10.0  # inches: 720 pt, about 960 CSS pixels: a laptop browser shows a figure whole, without scrolling
VERDICTS = ("better", "worse", "unresolved", "gated")
COLOURS = {"better": "#2ca02c", "worse": "#d62728", "unresolved": "#1f77b4", "gated": "#9e9e9e"}
VERDICT_LABEL = {"better": "clear: design above the reference", "worse": "clear: design below the reference",
                 "unresolved": "unresolved: interval spans 0"}  # gated: named by the gates that apply
LABEL_MAX = 40  # characters of a name a figure shows (the tables hold the whole name)


class ForestRow(NamedTuple):
    """One comparison of the forest plot: design (size) − reference on one evaluation set."""
    label: str  # 'design (size)'
    set: str  # the evaluation set's key
    diff: float
    lo: float  # the seed-aware 95% interval (may be infinite: nothing known)
    hi: float
    verdict: str  # one of VERDICTS: gated (an arm fails a validity gate), better / worse (clear of 0), unresolved
    gate: str  # gates.GATES: the worse of the two arms' gates
    floor: float | None  # the reference arm's floor minus its score (None: no floor measured)


class Point(NamedTuple):
    """One (design, size) of the in-domain vs out-of-domain figure: its mean score on each axis and the error bar's
    extent below and above it."""
    design: str
    size: str
    x: float
    x_err: tuple[float, float]
    y: float
    y_err: tuple[float, float]
    how: str  # 'sd' (over seeds), 'ci' (95% bootstrap over items, one seed) or 'none'


def short(name: str, n: int = LABEL_MAX) -> str:
    """A name on one line, cut to n characters ('…' marks the cut)."""
    one = " ".join(str(name).split())
    return one if len(one) <= n else one[:n - 1] + "…"


def verdict(c: Comparison) -> str:
    """gated (an arm fails a gate), better / worse (the interval clear of 0) or unresolved."""
    if c.gate != "ok":
        return "gated"
    return "unresolved" if not c.clear else "better" if c.lo > 0 else "worse"


def forest_rows(r: Loaded, reference: str, n_boot: int) -> list[ForestRow]:
    """Every (design, size) against its reference (records.ref_label) at the same size, set by set, as the
    significance section pairs them: an untuned row against the reference's first trained size. A design is not
    compared with itself; a pair sharing no scored item is left out."""
    rows, groups = rows_of(r.cells), r.groups
    out = []
    for design, size in rows:
        ref = ref_label(design, reference)
        if design == ref and not is_untuned(size):
            continue
        ref_size = size if not is_untuned(size) else next(
            (sz for d, sz in rows if d == ref and not is_untuned(sz)), size)
        if (design, size) == (ref, ref_size):
            continue
        for s, _, primary in r.sets:
            c = compare(groups, (design, size, s), (ref, ref_size, s), primary, n_boot, design, ref)
            if c is None or math.isnan(c.diff):
                continue
            out.append(ForestRow(f"{design} ({size})", s, c.diff, c.lo, c.hi, verdict(c),
                                 c.gate, floor_offset(r, (ref, ref_size, s), primary)))
    return out


def floor_offset(r: Loaded, key: tuple, primary: str) -> float | None:
    """The floor of arm `key` (gates.floor) minus the arm's mean score: where on a difference axis a design would
    sit if it scored only its floor."""
    g = r.groups.get(key)
    if not g or not g.values:
        return None
    _, value = floor(r.groups, key, primary)
    mean = statistics.fmean(g.values)
    return value - mean if value is not None and not math.isnan(mean) else None


def axis_score(r: Loaded, design: str, size: str, keys: list[str], n_boot: int) -> tuple[float, float, float, str] | None:
    """(mean, extent below, extent above, how) of a (design, size) over the sets `keys`: the mean of its sets'
    means, with the sd over seeds of each seed's mean over those sets when it has >= 2 seeds, else the 95%
    bootstrap interval over items (the mean of the sets' intervals when there are several); None when it has no
    score on them."""
    gs = [(s, g) for s in keys if (g := r.groups.get((design, size, s))) and g.values]
    if not gs:
        return None
    mean = statistics.fmean(statistics.fmean(g.values) for _, g in gs)
    if math.isnan(mean):
        return None
    per_seed = [statistics.fmean(c.eval[s].value for s, _ in gs if s in c.eval) for c in r.cells
                if c.label == design and c.size == size and any(s in c.eval for s, _ in gs)]
    per_seed = [v for v in per_seed if not math.isnan(v)]
    if len(per_seed) >= 2:
        sd = statistics.stdev(per_seed)
        return mean, sd, sd, "sd"
    if all(g.items for _, g in gs):
        cis = [st.bootstrap_ci(g.primary, stacked(g), n_boot) for _, g in gs]
        lo, hi = statistics.fmean(c[0] for c in cis), statistics.fmean(c[1] for c in cis)
        return mean, max(0.0, mean - lo), max(0.0, hi - mean), "ci"
    return mean, 0.0, 0.0, "none"


def id_ood_sets(r: Loaded) -> tuple[list[str], list[str]]:
    return [s for s, k, _ in r.sets if k == "in_domain"], [s for s, k, _ in r.sets if k != "in_domain"]


def id_ood_points(r: Loaded, n_boot: int) -> list[Point]:
    """Each (design, size) with a score on both the in-domain sets and the others, in the tables' order."""
    id_sets, ood_sets = id_ood_sets(r)
    out = []
    for d, sz in rows_of(r.cells):
        x, y = axis_score(r, d, sz, id_sets, n_boot), axis_score(r, d, sz, ood_sets, n_boot)
        if x and y:
            out.append(Point(d, sz, x[0], (x[1], x[2]), y[0], (y[1], y[2]),
                             x[3] if x[3] == y[3] else f"{x[3]}/{y[3]}"))
    return out


def majority_of(r: Loaded, sets: list[str], size: str | None = None) -> float | None:
    """The majority-class score on `sets` (their mean), from the trained groups' floors (at `size`, or every size);
    None unless every set has one."""
    per = []
    for s in sets:
        vals = [m for (d, z, ss), g in r.groups.items() if ss == s and not is_untuned(z)
                and (size is None or z == size) for m in g.majority]
        if not vals:
            return None
        per.append(statistics.fmean(vals))
    return statistics.fmean(per) if per else None


def plots(r: Loaded, plots_dir: Path, reference: str, n_boot: int) -> list[tuple[str, Path, bytes]]:
    """The report's figures, written to `plots_dir` (SVG, text as paths, no date: the same records give the same
    bytes); (title, path, SVG bytes) of each, in the report's order. `reference`: the design every other is
    compared with (forest plot); `n_boot`: bootstrap resamples of the intervals."""
    import matplotlib
    matplotlib.use("Agg")
    with matplotlib.rc_context(RC):
        return _draw(r, plots_dir, reference, n_boot)


def svg_bytes(fig) -> bytes:
    """The figure as SVG without matplotlib's comments (each text's characters, kept beside its paths)."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata=METADATA)
    plt.close(fig)
    return re.sub(rb"<!--.*?-->\n?", b"", buf.getvalue(), flags=re.S)


def _colours(names: list[str]) -> dict[str, str]:
    import matplotlib
    if len(names) <= 10:
        order = [matplotlib.colormaps["tab10"](i) for i in range(10)]
    else:  # tab20's strong colours first, then their light pairs (two neighbours never share a hue)
        tab20 = matplotlib.colormaps["tab20"]
        order = [tab20(i) for i in range(0, 20, 2)] + [tab20(i) for i in range(1, 20, 2)]
    return {n: matplotlib.colors.to_hex(order[i % len(order)]) for i, n in enumerate(names)}


def _plain(texts) -> None:
    for t in texts:
        t.set(**TEXT)


def _draw(r: Loaded, plots_dir: Path, reference: str, n_boot: int) -> list[tuple[str, Path, bytes]]:
    made = []

    def save(fig, name, title):
        assert name in NAMES
        data = svg_bytes(fig)
        p = plots_dir / name
        fileio.write_bytes(p, data)  # replaces a link in its place rather than writing through it
        made.append((title, p, data))

    colours = _colours(list(dict.fromkeys(c.label for c in r.cells)))
    save(_scores(r), "scores.svg", "Score per design (mean ± sd over seeds)")
    if rows := forest_rows(r, reference, n_boot):
        save(_forest(r, rows), "forest.svg", "Each comparison against the reference")
    if points := id_ood_points(r, n_boot):
        save(_id_vs_ood(r, points, colours), "id_vs_ood.svg", "In-domain vs out-of-domain")
    if (fig := _learning_curves(r, colours, n_boot)) is not None:
        save(fig, "learning_curves.svg", "Learning curves over training size")
    if (fig := _training_loss(r, colours)) is not None:
        save(fig, "training_loss.svg", "Training loss")
    save(_format_errors(r), "format_errors.svg", "Format-error rate per design")
    return made


def _row_axis(n: int, height: float):
    """A figure for one bar per table row: wide enough for the rows, never wider than WIDTH."""
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(min(WIDTH, max(6.0, 0.8 * n + 1.5)), height), layout="constrained")


def _row_ticks(ax, x, rows) -> None:
    """'design' over 'size' under each bar; on one slanted line when there are too many rows for that."""
    tilt = len(rows) > 8
    labels = [f"{short(d, 28)}{' (' if tilt else chr(10)}{short(sz, 16)}{')' if tilt else ''}" for d, sz in rows]
    ax.set_xticks(x, labels, fontsize=6.5, rotation=35 if tilt else 0, ha="right" if tilt else "center",
                  rotation_mode="anchor" if tilt else "default", **TEXT)


def _scores(r: Loaded):
    rows, sets, groups = rows_of(r.cells), r.sets, r.groups
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(sets))
    fig, ax = _row_axis(len(rows), 4.2)
    for i, (s, kind, primary) in enumerate(sets):
        means = [statistics.fmean(g.values) if (g := groups.get((d, sz, s))) and g.values else np.nan
                 for d, sz in rows]
        sds = [statistics.stdev(g.values) if (g := groups.get((d, sz, s))) and len(g.values) > 1 else 0
               for d, sz in rows]
        ax.bar(x + i * width, means, width, yerr=sds, capsize=2, label=short(f"{set_label(s, kind)} {primary}"))
    _row_ticks(ax, x + width * (len(sets) - 1) / 2, rows)
    ax.set_ylabel("primary metric")
    _plain(ax.legend(fontsize=7).get_texts())
    return fig


def _format_errors(r: Loaded):
    rows, sets, groups = rows_of(r.cells), r.sets, r.groups
    x = np.arange(len(rows))
    fig, ax = _row_axis(len(rows), 3.6)
    errs = [100 * statistics.fmean([e for s, _, _ in sets if (d, sz, s) in groups for e in groups[(d, sz, s)].errors]
                                   or [0]) for d, sz in rows]
    ax.bar(x, errs)
    _row_ticks(ax, x, rows)
    ax.set_ylabel("format errors (%)")
    return fig


def _grid(n: int, ncols: int, panel_h: float, width: float, **kw):
    import matplotlib.pyplot as plt
    cols = min(n, ncols)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(width, panel_h * nrows), squeeze=False, layout="constrained", **kw)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def panel_limits(values: list[float], floors: list[float]) -> tuple[float, float]:
    """x limits of a forest panel: its differences, finite interval ends and 0, padded; a floor is taken in only
    when it lies within one data span of them (a floor far below would squeeze every interval into a corner: it
    is marked at the panel's edge instead)."""
    lo, hi = min(values + [0.0]), max(values + [0.0])
    span = hi - lo or 1.0
    near = [f for f in floors if lo - span <= f <= hi + span]
    lo, hi = min([lo] + near), max([hi] + near)
    pad = 0.06 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def _forest(r: Loaded, rows: list[ForestRow]):
    from matplotlib.lines import Line2D
    sets = [(s, k, p) for s, k, p in r.sets if any(x.set == s for x in rows)]
    labels = list(dict.fromkeys(x.label for x in rows))
    where = {lab: i for i, lab in enumerate(labels)}
    ncols = min(len(sets), 3)
    fig, axes = _grid(len(sets), 3, 0.24 * len(labels) + 1.3, min(WIDTH, 3.2 * ncols + 3.2), sharey=True)
    gated = sorted({x.gate for x in rows if x.verdict == "gated"})
    shown: dict[str, str] = {}
    for ax, (s, kind, primary) in zip(axes, sets):
        mine = [x for x in rows if x.set == s]
        floors = [(where[x.label], x.floor) for x in mine if x.floor is not None and math.isfinite(x.floor)]
        lo_lim, hi_lim = panel_limits([v for x in mine for v in (x.diff, x.lo, x.hi) if math.isfinite(v)],
                                      [f for _, f in floors])
        for v in VERDICTS:
            pts = [x for x in mine if x.verdict == v]
            if not pts:
                continue
            lo = np.array([max(x.lo, lo_lim) for x in pts])  # an unknown (infinite) end runs to the panel's edge
            hi = np.array([min(x.hi, hi_lim) for x in pts])
            d = np.array([x.diff for x in pts])
            ax.errorbar(d, [where[x.label] for x in pts], xerr=[np.maximum(d - lo, 0), np.maximum(hi - d, 0)],
                        fmt="o", ms=4, color=COLOURS[v], ecolor=COLOURS[v], elinewidth=1.6, capsize=2)
            shown[v] = VERDICT_LABEL.get(v, "gated: " + " / ".join(gated))
        ax.axvline(0, color="black", lw=0.8)
        if floors:
            _floors(ax, floors, len(labels), lo_lim, hi_lim)
            shown["floor"] = "floor: the reference's floor − its score (← →: off the panel, at that value)"
        ax.set_xlim(lo_lim, hi_lim)
        ax.set_title(short(f"{set_label(s, kind)} {primary}", 60), **TEXT)
        ax.set_xlabel("design − reference (95% seed-aware CI)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(labels)), [short(lab) for lab in labels], **TEXT)
    axes[0].set_ylim(len(labels) - 0.5, -0.5)  # the tables' order, top down
    handles = [Line2D([], [], color=COLOURS[v], marker="o", ms=4, lw=1.6) for v in VERDICTS if v in shown]
    names = [shown[v] for v in VERDICTS if v in shown]
    if "floor" in shown:
        handles.append(Line2D([], [], color="black", ls="--", lw=0.9))
        names.append(shown["floor"])
    _plain(fig.legend(handles, names, loc="outside lower center", ncols=2 if ncols == 1 else 3).get_texts())
    return fig


def _floors(ax, floors: list[tuple[int, float]], n: int, lo: float, hi: float) -> None:
    """The floor on a forest panel, dashed: one line when every row shares it, else a mark on each row; a floor
    outside the panel is written at its edge with an arrow."""
    def edge(y, f, size):
        left = f < lo
        ax.text(lo if left else hi, y, f"{'← ' if left else ''}floor {f:+.2f}{'' if left else ' →'}",
                ha="left" if left else "right", va="center", fontsize=size, color="black",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    if max(f for _, f in floors) - min(f for _, f in floors) < 1e-9:
        f = floors[0][1]
        if lo <= f <= hi:
            ax.axvline(f, color="black", ls="--", lw=0.9)
        else:
            edge(n - 0.5 - 0.02 * n - 0.3, f, 6.5)  # at the bottom of the panel
        return
    inside = [(y, f) for y, f in floors if lo <= f <= hi]
    if inside:
        ax.vlines([f for _, f in inside], [y - 0.4 for y, _ in inside], [y + 0.4 for y, _ in inside],
                  color="black", ls="--", lw=0.9)
    for y, f in floors:
        if not lo <= f <= hi:
            edge(y + 0.3, f, 6.5)  # just below the row's interval


def clusters(points: list[tuple[float, float]], tol: tuple[float, float]) -> list[list[int]]:
    """Indices of the points whose markers would overlap, grouped (single linkage: a point within `tol` (x, y) of
    any point of a group joins it, and groups it bridges merge), each group in the points' order."""
    parent = list(range(len(points)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i
    for i, (x, y) in enumerate(points):
        for j in range(i):
            if abs(x - points[j][0]) <= tol[0] and abs(y - points[j][1]) <= tol[1]:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(points)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values())


def _id_vs_ood(r: Loaded, points: list[Point], colours: dict[str, str]):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    fig, ax = plt.subplots(figsize=(8.0, 4.8), layout="constrained")
    xs, ys = [p.x for p in points], [p.y for p in points]
    tol = (0.045 * ((max(xs) - min(xs)) or 1.0), 0.045 * ((max(ys) - min(ys)) or 1.0))  # a marker's width
    for group in clusters(list(zip(xs, ys)), tol):
        for k, i in enumerate(group):
            p, c = points[i], colours.get(points[i].design, "#555555")
            ax.errorbar([p.x], [p.y], xerr=[[p.x_err[0]], [p.x_err[1]]], yerr=[[p.y_err[0]], [p.y_err[1]]],
                        fmt="o", ms=12 if len(group) == 1 else 6, color=c, ecolor=c, elinewidth=1, capsize=2,
                        mec="white", mew=0.8, alpha=0.9)
            if len(group) == 1:  # the number on its marker
                ax.text(p.x, p.y, str(i + 1), ha="center", va="center", fontsize=6.5, color="white", weight="bold")
            else:  # points on one spot: their numbers around it, each on a line to the spot
                angle = math.pi / 2 + 2 * math.pi * k / len(group)
                radius = 16 + 2 * len(group)
                ax.annotate(str(i + 1), (p.x, p.y), xytext=(radius * math.cos(angle), radius * math.sin(angle)),
                            textcoords="offset points", ha="center", va="center", fontsize=6.5, color="white",
                            weight="bold", bbox={"boxstyle": "circle,pad=0.25", "fc": c, "ec": "none"},
                            arrowprops={"arrowstyle": "-", "color": c, "lw": 0.7, "shrinkA": 0, "shrinkB": 2})
    lims = [min(min(p.x - p.x_err[0], p.y - p.y_err[0]) for p in points),
            max(max(p.x + p.x_err[1], p.y + p.y_err[1]) for p in points)]
    handles = [Line2D([], [], color=colours.get(p.design, "#555555"), marker="o", ls="", ms=6) for p in points]
    names = [f"{i} = {short(p.design)} ({short(p.size, 16)})" for i, p in enumerate(points, 1)]
    id_sets, ood_sets = id_ood_sets(r)
    mx, my = majority_of(r, id_sets), majority_of(r, ood_sets)
    if mx is not None:
        ax.axvline(mx, color="black", ls="--", lw=0.8)
    if my is not None:
        ax.axhline(my, color="black", ls="--", lw=0.8)
    if mx is not None or my is not None:
        handles.append(Line2D([], [], color="black", ls="--", lw=0.8))
        names.append("majority class")
    if lims[0] < lims[1]:
        ax.plot(lims, lims, color="grey", ls=":", lw=0.8)
        handles.append(Line2D([], [], color="grey", ls=":", lw=0.8))
        names.append("out-of-domain = in-domain")
    hows = {p.how for p in points}
    bars = ("sd over seeds" if hows == {"sd"} else "95% bootstrap CI over items (one seed)" if hows == {"ci"}
            else "sd over seeds (≥ 2 seeds), else 95% bootstrap CI over items")
    ax.set_xlabel(f"in-domain (mean of {len(id_sets)} ID set{'s' if len(id_sets) > 1 else ''})")
    ax.set_ylabel(f"out-of-domain / cross-task (mean of {len(ood_sets)} set{'s' if len(ood_sets) > 1 else ''})")
    ax.set_title(f"error bars: {bars}")
    ax.grid(alpha=0.3)
    _plain(fig.legend(handles, names, loc="outside right upper", fontsize=7 if len(names) <= 24 else 6).get_texts())
    return fig


def _learning_curves(r: Loaded, colours: dict[str, str], n_boot: int):
    groups = r.groups
    sizes = sorted({sz for _, sz in rows_of(r.cells) if sz.isdigit()}, key=int)
    if len(sizes) < 2:
        return None
    panel_sets = r.sets if len(r.sets) <= 3 else \
        [next((x for x in r.sets if x[1] == "in_domain"), r.sets[0])]
    designs = list(dict.fromkeys(d for d, sz in rows_of(r.cells) if sz.isdigit()))
    fig, axes = _grid(len(panel_sets), 3, 3.6, min(WIDTH, 4.0 * len(panel_sets) + 2.8))
    parts: set[str] = set()
    for ax, (s, kind, primary) in zip(axes, panel_sets):
        for j, d in enumerate(designs):
            pts = [(int(sz), g) for sz in sizes if (g := groups.get((d, sz, s))) and g.values]
            if not pts:
                continue
            dodge = math.exp(0.025 * (j - (len(designs) - 1) / 2))  # designs side by side at each size
            xs = [x * dodge for x, _ in pts]
            ys = [statistics.fmean(g.values) for _, g in pts]
            c = colours.get(d, "#555555")
            ax.plot(xs, ys, marker="o", ms=3.5, color=c, label=short(d))
            if any(len(g.values) >= 2 for _, g in pts):
                ax.fill_between(xs, [min(g.values) if len(g.values) >= 2 else y for (_, g), y in zip(pts, ys)],
                                [max(g.values) if len(g.values) >= 2 else y for (_, g), y in zip(pts, ys)],
                                color=c, alpha=0.18, lw=0)
                parts.add("band: min–max over seeds")
            one = [(x, g, y) for x, (_, g), y in zip(xs, pts, ys) if len(g.values) < 2 and g.items]
            if one:
                cis = [st.bootstrap_ci(primary, stacked(g), n_boot) for _, g, _ in one]
                ax.errorbar([x for x, _, _ in one], [y for _, _, y in one],
                            yerr=[[max(0.0, y - lo) for (_, _, y), (lo, _) in zip(one, cis)],
                                  [max(0.0, hi - y) for (_, _, y), (_, hi) in zip(one, cis)]],
                            fmt="none", ecolor=c, elinewidth=0.9, capsize=2)
                parts.add("bars: 95% bootstrap CI over items (one seed)")
        floor_line(ax, r, s, primary, sizes)
        ax.set_xscale("log")
        ax.set_xticks([int(z) for z in sizes], sizes)  # the sizes themselves, not powers of ten
        ax.minorticks_off()
        ax.set_xlabel("training examples")
        ax.set_ylabel(short(f"{set_label(s, kind)} {primary}", 50), **TEXT)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    _plain(fig.legend(handles, names, loc="outside right upper", title="; ".join(sorted(parts)) or None,
                      title_fontsize=7).get_texts())
    return fig


def floor_line(ax, r: Loaded, s: str, primary: str, sizes: list[str]) -> None:
    """The floor on a learning-curve panel: the majority class at each size (accuracy, kappa), else the best
    untuned model on the set, dashed."""
    maj = [(int(z), m) for z in sizes if (m := majority_of(r, [s], z)) is not None]
    if primary in ("accuracy", "kappa") and maj:
        ax.plot([x for x, _ in maj], [m for _, m in maj], color="black", ls="--", lw=0.9, label="majority class")
        return
    untuned = [statistics.fmean(g.values) for (d, z, ss), g in r.groups.items()
               if ss == s and is_untuned(z) and g.values]
    untuned = [u for u in untuned if not math.isnan(u)]
    if untuned:
        ax.axhline(max(untuned), color="black", ls="--", lw=0.9, label="untuned model (best)")


def loss_curve(cells) -> tuple[list[int], list[float], list[float], list[float]]:
    """(steps, mean, min, max) over the cells' training-loss curves, step by step (a step some seed did not log
    is averaged over the others)."""
    by: dict[int, list[float]] = {}
    for c in cells:
        for p in c.curve:
            if isinstance(p.get("loss"), (int, float)) and math.isfinite(p["loss"]):
                by.setdefault(int(p["step"]), []).append(float(p["loss"]))
    steps = sorted(by)
    return (steps, [statistics.fmean(by[k]) for k in steps], [min(by[k]) for k in steps],
            [max(by[k]) for k in steps])


def _training_loss(r: Loaded, colours: dict[str, str]):
    trained = [c for c in r.cells if c.curve]
    if not trained:
        return None
    sizes = sorted({c.size for c in trained}, key=size_key)
    fig, axes = _grid(len(sizes), 3, 3.4, min(WIDTH, 3.2 * min(len(sizes), 3) + 2.8), sharey=True)
    several = False
    for ax, sz in zip(axes, sizes):
        for d in dict.fromkeys(c.label for c in trained if c.size == sz):
            cells = [c for c in trained if c.size == sz and c.label == d]
            steps, mean, lo, hi = loss_curve(cells)
            if not steps:
                continue
            col = colours.get(d, "#555555")
            ax.plot(steps, mean, color=col, lw=1.2, label=short(d))
            if len(cells) >= 2:
                ax.fill_between(steps, lo, hi, color=col, alpha=0.18, lw=0)
                several = True
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(short(f"train size {sz}", 50), **TEXT)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training loss (mean over seeds)")
    seen: dict[str, object] = {}
    for ax in axes:
        for h, n in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(n, h)
    _plain(fig.legend(list(seen.values()), list(seen), loc="outside right upper",
                      title="band: min–max over seeds" if several else None, title_fontsize=7).get_texts())
    return fig
