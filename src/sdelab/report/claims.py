"""`sdelab claims CLAIMS.yaml`: a paper's headline claims, each checked against run folders.

A claims file states what a paper found as comparisons between two arms of a study (design and train size, as
the study's report labels them), the direction the paper reports and where the paper says it (`source`). Each
row first passes the validity gates of report.gates: an arm that does not beat its floor is **not learned**, an
arm whose outputs are (nearly) constant or mostly unparsed is **degenerate**, and a family without a measured
floor gets **no floor**; none of these rows gets a verdict. A row that passes gets the paired difference on the
same items and seeds with its seed-aware 95% interval (report.stats) and a verdict: **holds** (the interval lies
on the paper's side of zero), **fails** (on the other side) or **inconclusive** (it contains zero). An expected
null (`a = b`) holds when the interval lies within ±margin, fails when it excludes zero. `measure: format errors`
compares the arms' format-error rates instead of their scores (the SDE paper's format findings).

A `correlation` claim (the SDE paper's "a good prompt is not a good training sample") takes Spearman's rho across
designs between a prompt signal from `sdelab diagnose` and the fine-tuned score. It is an equivalence statement:
it **holds** when the whole 95% interval of rho lies below `bound` (default 0.3: the signal predicts at most
weakly), else **fails** when the interval lies above zero (the signal does predict the score), and is inconclusive
otherwise. A signal that is the same for every design is **degenerate** (it cannot rank them), and the row is
**not learned** when most designs' fine-tuned scores do not beat their floor.

Everything comes from the committed run folders, so `findings.md` regenerates without retraining."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sdelab import fileio
from sdelab.errors import SdelabError
from sdelab.report import stats as st
from sdelab.report.gates import check_arm, compare, error_rate_compare
from sdelab.report.records import group_cells, load_cells, set_label, trained_sizes
from sdelab.report.sections import constant, prompt_signals
from sdelab.report.text import code, text
from sdelab.yamlio import load_yaml, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Arm(_Strict):
    design: str = Field(description="The design as the report labels it ('<variant> <design>' in swept studies).")
    size: str | None = Field(None, description="Train size ('500', 'all') or 'untuned k=0'; default: the "
                                               "other arm's trained size, else every trained size.")


class Claim(_Strict):
    id: str
    paper: str
    claim: str = Field(description="The paper's finding, in one sentence.")
    runs: str = Field(description="The study's run folder, relative to the claims file.")
    kind: Literal["comparison", "correlation"] = "comparison"
    a: Arm | str | None = None
    b: Arm | str | None = None
    expect: Literal["a > b", "a < b", "a = b"] = "a > b"
    margin: float = Field(0.02, ge=0, description="For 'a = b': the largest difference that counts as none.")
    measure: Literal["score", "format errors"] = Field("score", description="Compare the primary metric, or the "
                                                                            "share of outputs the parser rejected.")
    bound: float = Field(0.3, gt=0, lt=1, description="For a correlation: the largest rho that counts as 'does not "
                                                      "predict'.")
    source: str = Field("", description="Where the paper says it (section, table or figure).")
    sets: list[str] | None = Field(None, description="Evaluation sets; default: every set both arms have.")
    signal: str = Field("k=0 in-context", description="For a correlation: '-prompt PPL', '-output PPL' or "
                                                      "'k=<n> in-context'.")
    note: str = ""


class ClaimsFile(_Strict):
    claims: list[Claim]


def load_claims(path: str | Path) -> list[Claim]:
    data, node = load_yaml(path)
    claims = validate(ClaimsFile, data, path, node).claims
    for i, c in enumerate(claims):
        if c.kind == "comparison" and (c.a is None or c.b is None):
            raise SdelabError("a comparison needs both arms 'a' and 'b'", path=path, field=f"claims.{i}.{c.id}")
    return claims


def _arm(x: Arm | str) -> Arm:
    return Arm(design=x) if isinstance(x, str) else x


def _arm_text(x: Arm | str) -> str:
    a = _arm(x)
    return code(a.design) + (f" ({text(a.size)})" if a.size else "")


def verdict(expect: str, lo: float, hi: float, margin: float) -> str:
    if expect == "a = b":
        return "holds" if -margin <= lo and hi <= margin else "fails" if lo > 0 or hi < 0 else "inconclusive"
    lo, hi = (lo, hi) if expect == "a > b" else (-hi, -lo)
    return "holds" if lo > 0 else "fails" if hi < 0 else "inconclusive"


def correlation_verdict(lo: float, hi: float, bound: float) -> str:
    """'Does not predict' as an equivalence statement: holds when rho's interval lies below `bound`, fails when it
    lies above zero."""
    return "holds" if hi < bound else "fails" if lo > 0 else "inconclusive"


VERDICTS = ("holds", "fails", "inconclusive", "not learned", "degenerate", "no floor", "not run")


def check(claim: Claim, base: Path, n_boot: int = 1000) -> list[dict]:
    """One result row per (evaluation set, train size) the claim covers; a run folder that is missing or has
    no finished cell for an arm yields a 'not run' row rather than an error."""
    out_dir = (base / claim.runs).resolve()
    cells = load_cells(out_dir) if out_dir.is_dir() else []
    if not cells:
        return [{"claim": claim, "set": "-", "size": "-", "result": "not run yet", "verdict": "not run", "gate": "-"}]
    groups = group_cells(cells)
    kinds = {s: m.kind for c in cells for s, m in c.eval.items()}
    model = cells[0].config.get("model", "?")
    if claim.kind == "correlation":
        return _correlation(claim, out_dir, cells, groups, kinds, model, n_boot)
    a, b = _arm(claim.a), _arm(claim.b)
    trained = trained_sizes(cells)
    # an arm without a size takes the other arm's trained size, or every trained size (against an untuned arm)
    fixed = a.size or b.size
    free = trained if not fixed or fixed.startswith("untuned") else [fixed]
    sizes = [(a.size, b.size)] if a.size and b.size else [(a.size or s, b.size or s) for s in free]
    how = error_rate_compare if claim.measure == "format errors" else compare
    rows = []
    for size_a, size_b in sizes:
        sets_a = {s for (d, z, s) in groups if d == a.design and z == size_a}
        sets_b = {s for (d, z, s) in groups if d == b.design and z == size_b}
        # an arm with no cell yet: 'not run' rows on the sets of the arm that has them
        sets = claim.sets or sorted(sets_a & sets_b) or sorted(sets_a | sets_b)
        for s in sets:
            label = set_label(s, kinds[s]) if s in kinds else s  # a set no cell has scored: kind unknown
            size = size_a if size_a == size_b else f"{size_a} vs {size_b}"
            primary = next((c.eval[s].primary for c in cells if s in c.eval), None)
            r = how(groups, (a.design, size_a, s), (b.design, size_b, s), primary, n_boot) if primary else None
            if r is None:
                ga, gb = groups.get((a.design, size_a, s)), groups.get((b.design, size_b, s))
                missing = a.design if not ga else b.design if not gb else "paired items"
                rows.append({"claim": claim, "set": label, "size": size, "result": f"no {text(missing)} yet",
                             "verdict": "not run", "gate": "-"})
                continue
            what = "format-error rate" if claim.measure == "format errors" else primary
            v = verdict(claim.expect, r.lo, r.hi, claim.margin) if r.gate == "ok" else r.gate
            rows.append({"claim": claim, "set": label, "size": size, "verdict": v, "comparison": r,
                         "gate": "passed" if r.gate == "ok" else f"{r.gate}: {text(r.why)}",
                         "result": f"{r.diff:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] {text(what)}, p={r.p:.3f}; {r.items} "
                                   f"items, seeds {text(','.join(map(str, r.seeds))) or '-'}, {text(model)}; "
                                   f"interval: {r.interval}"})
    return rows


def _correlation(claim: Claim, out_dir: Path, cells, groups, kinds, model, n_boot: int = 1000) -> list[dict]:
    from scipy.stats import spearmanr
    path = out_dir / "diagnostics.json"
    if not path.exists():
        return [{"claim": claim, "set": "-", "size": "-", "result": "no diagnostics.json yet", "verdict": "not run",
                 "gate": "-"}]
    diag = fileio.read_json(path)
    trained = trained_sizes(cells)
    size = trained[-1] if trained else None
    sets = claim.sets or [s for s in sorted(kinds) if kinds[s] == "in_domain"][:1]
    rows = []
    for s in sets:
        signals, tuned = prompt_signals(diag, groups, s, size)
        xs = signals.get(claim.signal)
        if xs is None:
            raise SdelabError(f"unknown prompt signal '{claim.signal}' (have: {', '.join(signals)})",
                              field=f"claims.{claim.id}.signal")
        label = set_label(s, kinds.get(s, "in_domain"))
        row = {"claim": claim, "set": label, "size": size}
        if len(tuned) < 4:
            rows.append({**row, "verdict": "not run", "gate": "-",
                         "result": f"{len(tuned)} designs with both scores (need 4 for an interval of rho)"})
            continue
        primary = next(c.eval[s].primary for c in cells if s in c.eval)
        learned = [check_arm(groups, (d, size, s), primary, n_boot).gate == "ok" for d in diag["designs"]
                   if (d, size, s) in groups]
        if constant(xs) or constant(tuned):  # measured, but a constant cannot rank the designs
            what, v = (claim.signal, xs[0]) if constant(xs) else ("the fine-tuned score", tuned[0])
            rows.append({**row, "verdict": "degenerate", "gate": f"degenerate: {text(what)} is constant",
                         "result": f"{text(what)} is {abs(v) if round(v, 3) == 0 else v:.3f} for all "
                                   f"{len(tuned)} designs: it cannot rank them, {text(model)}"})
            continue
        rho, p = spearmanr(xs, tuned)
        lo, hi = st.spearman_interval(float(rho), len(tuned))
        gate = "passed" if 2 * sum(learned) > len(learned) else \
            f"not learned: {len(learned) - sum(learned)} of {len(learned)} designs do not beat their floor"
        rows.append({**row, "verdict": correlation_verdict(lo, hi, claim.bound) if gate == "passed" else "not learned",
                     "gate": gate,
                     "result": f"Spearman rho({text(claim.signal)}, fine-tuned) = {rho:+.3f} [{lo:+.3f}, {hi:+.3f}], "
                               f"p={p:.3f}; holds below {claim.bound}; {len(tuned)} designs, {text(model)}"})
    return rows


def findings_markdown(claims_path: str | Path, n_boot: int = 1000) -> str:
    claims_path = Path(claims_path)
    claims = load_claims(claims_path)
    rows = [r for c in claims for r in check(c, claims_path.parent, n_boot)]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    decided = counts["holds"] + counts["fails"]
    gated = sum(r["gate"] == "passed" for r in rows)
    out = ["# Findings: the papers' claims at laptop scale\n",
           f"Generated by `sdelab claims {claims_path.name}` from the committed run folders (do not edit by hand; "
           "the reading is in each study's README; how to read it: [README.md](README.md#reading-findingsmd)). "
           "Each row first passes the **validity gates**: both arms beat their floor (majority class, untuned "
           "model or empty answer) with their interval above it (else **not learned**), and neither gives one "
           "answer to nearly every item or fails the format on most (else **degenerate**). Only then: effect = "
           "a − b on the same items and seeds with its seed-aware 95% interval; **holds** = the interval is on "
           "the paper's side of zero, **fails** = on the other side, **inconclusive** = it contains zero. "
           "Correlation claims are equivalence statements (holds = rho's interval below the stated bound).\n",
           "Rows: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + f". Gates passed: {gated} of {len(rows)}; "
           f"conclusive (holds or fails): {decided} of {len(rows)}.\n",
           "## By claim\n", "| id | paper | claim | where the paper says it | verdicts over its rows (evaluation set × "
           "train size) |", "|---|---|---|---|---|"]
    for c in claims:
        mine = [r["verdict"] for r in rows if r["claim"] is c]
        tally = ", ".join(f"{mine.count(v)} {v}" for v in VERDICTS if mine.count(v))
        out.append(f"| {code(c.id)} | {text(c.paper)} | {text(c.claim)} | {text(c.source or '-')} | {tally} |")
    out += ["", "## Every comparison\n",
            "| paper | claim | a vs b (expected) | set | train size | effect [95% CI], p; items, seeds, model; interval | "
            "gate | verdict |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c: Claim = r["claim"]
        arms = (f"{_arm_text(c.a)} vs {_arm_text(c.b)} ({c.expect}"
                f"{', format errors' if c.measure == 'format errors' else ''})" if c.kind == "comparison"
                else f"rank correlation ({text(c.signal)})")
        out.append(f"| {text(c.paper)} | {text(c.claim)} ({code(c.id)}) | {arms} | {text(r['set'])} | "
                   f"{text(r['size'])} | {r['result']} | {r['gate']} | {r['verdict']} |")
    notes = [c for c in claims if c.note]
    if notes:
        out += ["", "## Notes", ""] + [f"- **{text(c.id)}**: {text(c.note)}" for c in notes]
    return "\n".join(out) + "\n"
