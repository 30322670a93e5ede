"""The report's figures (report.plots) on synthetic records: which figures are drawn when, what the forest plot and
the in-domain vs out-of-domain plot draw (their pure helpers), and the SVG files: valid, the same bytes for the same
records (also from another process), no wider than a laptop's browser, and inert: no string of a run folder appears
in them as text or markup, and no name is read as mathtext or LaTeX."""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from sdelab.report import stats as st
from sdelab.report.gates import compare
from sdelab.report.plots import (COLOURS, NAMES, WIDTH, clusters, forest_rows, id_ood_points, loss_curve,
                                 panel_limits, plots)
from sdelab.report.records import Loaded, eval_sets, group_cells, stacked
from sdelab.results import CellRecord, ItemStats, SetMetrics

N = 300
BASE = np.random.default_rng(0).random((3, N))  # one draw per seed, shared by every design: paired differences


def cell(design: str, size, seed: int, p: dict[str, float], kinds: dict[str, str] | None = None, majority=0.3,
         errors=0.0, top=0.5, untuned: int | None = None, curve: bool = True, variant: str = "") -> CellRecord:
    """A finished cell scoring each set `s` with accuracy p[s] on N items (item i right when BASE[seed, i] < p)."""
    kinds = kinds or {}
    ev, items = {}, {}
    for s, q in p.items():
        correct = (BASE[seed] < q).astype(float)
        ev[s] = SetMetrics("accuracy", kinds.get(s, "in_domain"), True, errors, 0,
                           {"label": "x", "accuracy": majority} if majority is not None else None, N,
                           {"accuracy": float(correct.mean())}, top)
        items[s] = ItemStats("accuracy", [f"i{i}" for i in range(N)], [[x] for x in correct])
    steps = [{"step": k, "loss": 2.0 / k + 0.01 * seed} for k in (10, 20, 30)] if curve and untuned is None else []
    return CellRecord(Path("/nowhere") / f"{design}-{size}-{seed}", f"c-{design}-{size}-{seed}", variant, design,
                      "untuned" if untuned is not None else "generative", size if untuned is None else "all", seed,
                      untuned, {}, ev, None, items, steps)


def loaded(cells: list[CellRecord]) -> Loaded:
    cells = sorted(cells, key=lambda c: (c.label, c.size, c.seed))
    return Loaded(Path("/nowhere"), {}, cells, [], eval_sets(cells), group_cells(cells))


OOD = {"ood": "out_of_domain"}


def study(names: dict[str, str] | None = None, sizes=(100, 200), seeds=(0, 1)) -> Loaded:
    """ref, better (clear), worse (clear), same (unresolved), broken (degenerate: gated) at each size and seed, on
    an in-domain and an out-of-domain set, plus the reference untuned."""
    n = names or {}
    arms = {"ref": 0.70, "better": 0.85, "worse": 0.55, "same": 0.705, "broken": 0.70}
    cells = []
    for d, q in arms.items():
        for size in sizes:
            for seed in seeds:
                cells.append(cell(n.get(d, d), size, seed, {n.get("val", "val"): q + (size == 200) * 0.05,
                                                            n.get("ood", "ood"): q - 0.1},
                                  {n.get("ood", "ood"): "out_of_domain"}, errors=0.6 if d == "broken" else 0.0,
                                  variant=n.get("variant", "")))
    cells.append(cell(n.get("ref", "ref"), "all", 0, {n.get("val", "val"): 0.4, n.get("ood", "ood"): 0.3},
                      {n.get("ood", "ood"): "out_of_domain"}, untuned=0, variant=n.get("variant", "")))
    return loaded(cells)


def by_label(rows, eval_set="val"):
    return {x.label: x for x in rows if x.set == eval_set}


def test_forest_rows_pair_each_design_with_the_reference_and_follow_the_verdicts():
    r = study()
    rows = forest_rows(r, "ref", 200)
    val = by_label(rows)
    assert set(val) == {f"{d} ({z})" for d in ("better", "worse", "same", "broken") for z in (100, 200)} \
        | {"ref (untuned k=0)"}  # the reference is not compared with itself
    for z in (100, 200):
        assert val[f"better ({z})"].verdict == "better" and val[f"better ({z})"].lo > 0
        assert val[f"worse ({z})"].verdict == "worse" and val[f"worse ({z})"].hi < 0
        assert val[f"same ({z})"].verdict == "unresolved" and val[f"same ({z})"].lo < 0 < val[f"same ({z})"].hi
        assert val[f"broken ({z})"].verdict == "gated" and val[f"broken ({z})"].gate == "degenerate"
    # the numbers are the report's comparison: an untuned row against the reference's first trained size
    c = compare(r.groups, ("ref", "untuned k=0", "val"), ("ref", "100", "val"), "accuracy", 200, "ref", "ref")
    u = val["ref (untuned k=0)"]
    assert (u.diff, u.lo, u.hi) == (c.diff, c.lo, c.hi) and u.verdict == "worse"
    # the floor: the reference's majority class (0.3) minus its score, at the paired size
    assert val["better (200)"].floor == pytest.approx(0.3 - statistics.fmean(r.groups[("ref", "200", "val")].values))
    assert {x.set for x in rows} == {"val", "ood"}
    assert forest_rows(r, "no-such-design", 200) == []  # nothing to compare: no forest plot


def test_the_reference_of_each_swept_variant():
    cells = [cell(d, 100, s, {"val": q}, variant=v) for v in ("gen", "cls") for d, q in (("ref", 0.7), ("b", 0.8))
             for s in (0, 1)]
    rows = forest_rows(loaded(cells), "ref", 100)
    assert sorted(x.label for x in rows) == ["cls b (100)", "gen b (100)"]


def test_id_vs_ood_points_carry_sd_over_seeds_or_the_items_interval():
    r = study()
    p = {(x.design, x.size): x for x in id_ood_points(r, 200)}
    two = p[("better", "100")]
    per_seed = [c.eval["val"].value for c in r.cells if c.label == "better" and c.size == "100"]
    assert two.how == "sd" and two.x == pytest.approx(statistics.fmean(per_seed))
    assert two.x_err == pytest.approx((statistics.stdev(per_seed), statistics.stdev(per_seed)))
    one = p[("ref", "untuned k=0")]  # one seed: the 95% bootstrap interval over items
    lo, hi = st.bootstrap_ci("accuracy", stacked(r.groups[("ref", "untuned k=0", "val")]), 200)
    assert one.how == "ci" and one.x_err == pytest.approx((one.x - lo, hi - one.x))
    assert id_ood_points(loaded([c for c in r.cells if "ood" not in c.eval] or
                                [cell("a", 100, 0, {"val": 0.7})]), 200) == []  # no out-of-domain set


def svgs(made) -> dict[str, bytes]:
    return {p.name: data for _, p, data in made}


def test_every_figure_is_valid_deterministic_svg_of_moderate_size(tmp_path):
    r = study()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    first, second = plots(r, a, "ref", 100), plots(r, b, "ref", 100)
    assert [p.name for _, p, _ in first] == list(NAMES)  # every figure, in the report's order
    assert svgs(first) == svgs(second)  # the same records, the same bytes
    for title, p, data in first:
        assert p.parent == a and p.read_bytes() == data and title
        root = ET.fromstring(data)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert float(root.get("width").removesuffix("pt")) <= WIDTH * 72 + 0.01  # a laptop browser shows it whole
        assert b"<!--" not in data and b"<text" not in data and b"dc:date" not in data.lower()


def test_the_bytes_do_not_depend_on_the_process(tmp_path):
    """svg.hashsalt is fixed: the ids (clip paths, glyphs) are the same in another process."""
    here = tmp_path / "here"
    here.mkdir()
    mine = svgs(plots(study(), here, "ref", 50))
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; import test_plots as t; "
              "t.plots(t.study(), Path(sys.argv[2]), 'ref', 50)")
    there = tmp_path / "there"
    there.mkdir()
    subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent), str(there)], check=True,
                   env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg",
                        "HOME": str(tmp_path)})
    assert {p.name: p.read_bytes() for p in there.iterdir()} == mine


PWN = {"ref": "<script>alert('pwn-ref')</script>", "better": "pwn-better $\\frac{ ]]> &amp;",
       "worse": "pwn-worse\n<img src=x onerror=alert(1)>", "same": "pwn-same $x^2$ --> <!--",
       "broken": "pwn-broken \\begin{document}", "val": "pwn-val <svg onload=alert(1)>", "ood": "pwn-ood $$ &#x41;",
       "variant": "pwn-variant <a href='javascript:x'>"}


def test_no_user_string_appears_in_the_svg_and_none_is_read_as_math(tmp_path):
    """Names as text drawn as paths, matplotlib's comments (which repeat every text) removed: the file holds no
    name, tag or attribute of a run folder's. A '$' or a LaTeX command in a name is plain text (mathtext would
    refuse '$\\frac{' with an error; LaTeX is off whatever the matplotlibrc says)."""
    import matplotlib
    r = study(PWN)
    with matplotlib.rc_context({"text.usetex": True}):  # a user's matplotlibrc asking for LaTeX
        made = plots(r, tmp_path, PWN["variant"] + " " + PWN["ref"], 50)
    assert [p.name for _, p, _ in made] == list(NAMES)
    assert len([x for x in forest_rows(r, PWN["variant"] + " " + PWN["ref"], 50)]) == 18
    for _, p, data in made:
        ET.fromstring(data)  # still one well-formed document
        low = data.lower()
        for bad in (b"pwn", b"script", b"alert", b"onerror", b"onload", b"javascript", b"<img", b"<a ", b"href='",
                    b"<!--", b"<text", b"frac", b"begin{"):
            assert bad not in low, f"{bad!r} in {p.name}"
        tags = {el.tag.split("}")[-1] for el in ET.fromstring(data).iter()}
        assert tags <= {"svg", "metadata", "RDF", "Work", "type", "format", "defs", "style", "g", "path", "use",
                        "clipPath", "rect", "polyline", "line", "circle", "ellipse", "polygon", "title"}, tags


def test_forest_colours_follow_the_verdicts(tmp_path):
    made = svgs(plots(study(), tmp_path, "ref", 100))
    forest = made["forest.svg"].decode()
    for v in ("better", "worse", "unresolved", "gated"):
        assert COLOURS[v] in forest, v
    # without the worse design (and the untuned reference, also below it), no red
    r = loaded([c for c in study().cells if c.label != "worse" and c.untuned is None])
    assert {x.verdict for x in forest_rows(r, "ref", 100)} == {"better", "unresolved", "gated"}
    made = svgs(plots(r, tmp_path, "ref", 100))
    assert COLOURS["worse"] not in made["forest.svg"].decode() and COLOURS["better"] in made["forest.svg"].decode()


def test_figures_are_drawn_only_when_there_is_something_to_show(tmp_path):
    one = loaded([cell("ref", 100, 0, {"val": 0.7}, curve=False)])  # one design, size, set and seed, no curve
    assert [p.name for _, p, _ in plots(one, tmp_path, "ref", 50)] == ["scores.svg", "format_errors.svg"]
    two = loaded([cell(d, 100, 0, {"val": q}) for d, q in (("ref", 0.7), ("b", 0.8))])
    assert [p.name for _, p, _ in plots(two, tmp_path, "ref", 50)] == \
        ["scores.svg", "forest.svg", "training_loss.svg", "format_errors.svg"]
    sizes = loaded([cell(d, z, 0, {"val": q}, curve=False) for d, q in (("ref", 0.7), ("b", 0.8)) for z in (10, 20)])
    assert "learning_curves.svg" in [p.name for _, p, _ in plots(sizes, tmp_path, "ref", 50)]
    # many evaluation sets: the learning curves keep the first in-domain one, the forest plot wraps its panels
    many = {f"s{i}": 0.7 for i in range(5)}
    wide = loaded([cell(d, z, s, {k: q + 0.1 * (d == "b") for k, q in many.items()})
                   for d in ("ref", "b") for z in (10, 20) for s in (0, 1)])
    assert {p.name for _, p, _ in plots(wide, tmp_path, "ref", 50)} >= {"forest.svg", "learning_curves.svg"}


def test_an_interval_of_nothing_known_runs_to_the_panel_edge_and_far_floors_stay_off_it(tmp_path, monkeypatch):
    from sdelab.report import plots as module
    rows = [module.ForestRow("a (1)", "val", 0.01, -math.inf, math.inf, "unresolved", "ok", -0.9),
            module.ForestRow("b (1)", "val", 0.03, 0.01, 0.05, "better", "ok", -0.8)]
    monkeypatch.setattr(module, "forest_rows", lambda r, reference, n_boot: rows)
    made = svgs(plots(study(), tmp_path, "ref", 20))
    ET.fromstring(made["forest.svg"])
    assert COLOURS["unresolved"] in made["forest.svg"].decode()
    assert panel_limits([-0.05, 0.02], [-0.9]) == pytest.approx((-0.05 - 0.06 * 0.07, 0.02 + 0.06 * 0.07))
    lo, hi = panel_limits([-0.05, 0.02], [-0.08])  # a floor near the data is taken in
    assert lo < -0.08 and hi > 0.02


def test_loss_curves_average_the_seeds_step_by_step_and_close_points_group():
    cells = [cell("a", 100, s, {"val": 0.7}) for s in (0, 1)]
    steps, mean, lo, hi = loss_curve(cells)
    assert steps == [10, 20, 30] and mean[0] == pytest.approx(0.2 + 0.005) and (lo[0], hi[0]) == pytest.approx((0.2, 0.21))
    assert clusters([(0, 0), (0.01, 0), (0.02, 0.001), (1, 1)], (0.015, 0.015)) == [[0, 1, 2], [3]]
    assert json.dumps(clusters([], (1, 1))) == "[]"
