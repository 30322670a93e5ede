"""The answer first: for each factor the study varied (one option changed away from the reference design), which
option wins on each evaluation set, by how much, with its seed-aware interval, behind the validity gates, in plain
words. The same comparisons as the ranked summary (sections.summary), read for a reader's first screen."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sdelab.report.gates import ArmCheck, Comparison, check_arm, compare
from sdelab.report.records import Loaded, ref_label, rows_of, set_label
from sdelab.report.text import text
from sdelab.results import size_key

READ = {"clear": "clear", "unresolved": "unresolved"}  # a passed comparison's reading; else the gate's name


@dataclass(frozen=True)
class FactorRow:
    """The best other option of one factor against the reference's option, on one evaluation set."""
    factor: str
    ref: str  # the reference design (each swept variant has its own)
    size: str  # the train size compared (the largest the reference shares with the others)
    set: str
    kind: str
    primary: str
    ref_option: str
    option: str  # the best other option
    c: Comparison  # option − reference
    ref_check: ArmCheck  # the validity gate of each arm on its own
    option_check: ArmCheck

    @property
    def verdict(self) -> str:
        """clear | unresolved (both arms passed the gates) | the gate that stopped the reading."""
        if self.c.gate != "ok":
            return self.c.gate
        return "clear" if self.c.clear else "unresolved"

    @property
    def winner(self) -> str:
        """The winning option ('-' when gated, 'tie' for no difference)."""
        if self.c.gate != "ok":
            return "-"
        return self.option if self.c.diff > 0 else self.ref_option if self.c.diff < 0 else "tie"


def design_options(cells) -> dict[str, dict]:
    """Each trained design's options, with its modeling paradigm as one more factor (gen vs cls)."""
    return {c.label: {**c.config.get("design", {}), "modeling": c.config.get("modeling")}
            for c in cells if c.untuned is None}


def factor_rows(r: Loaded, reference: str, n_boot: int) -> list[FactorRow]:
    """For each factor varied one at a time away from the reference (each swept variant's own reference, e.g.
    'gen inst-first' and 'cls inst-first') and each evaluation set: the best other option against the
    reference's, at the reference's largest train size shared with them. A comparison that passes the gates is
    preferred to a gated one."""
    cells, groups = r.cells, r.groups
    opts = design_options(cells)
    by_factor: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for d, o in opts.items():
        ref = ref_label(d, reference)
        if d == ref or ref not in opts:
            continue
        diff = [k for k in o if k != "name" and o.get(k) != opts[ref].get(k)]
        if len(diff) == 1:
            by_factor[(diff[0], ref)].append((d, str(o[diff[0]])))
    rows = rows_of(cells)
    out = []
    for factor, ref in sorted(by_factor):
        shared = [sz for d, sz in rows if d == ref and any((o, sz) in rows for o, _ in by_factor[(factor, ref)])]
        if not shared:
            continue
        size = max(shared, key=size_key)
        for s, kind, primary in r.sets:
            best = None
            for d, v in by_factor[(factor, ref)]:
                c = compare(groups, (d, size, s), (ref, size, s), primary, n_boot, d, ref)
                if c and (best is None or ((c.gate == "ok"), c.diff) > ((best[2].gate == "ok"), best[2].diff)):
                    best = (d, v, c)
            if best is not None:
                d, v, c = best
                out.append(FactorRow(factor, ref, size, s, kind, primary, str(opts[ref].get(factor)), v, c,
                                     check_arm(groups, (ref, size, s), primary, n_boot),
                                     check_arm(groups, (d, size, s), primary, n_boot)))
    return out


def option_name(factor: str, value: str) -> str:
    """An option as a reader names it: its value, or 'factor=value' for a switch (True / False / None)."""
    return f"{factor}={value}" if value in ("True", "False", "None") else value


def sentence(row: FactorRow, ref_stated: bool = False) -> str:
    """One comparison in plain words (markdown, every name escaped). `ref_stated`: the reference's failed gate is
    said above the table, so a cell says only how the other option fared."""
    c, m = row.c, text(row.primary)
    option, ref_option = option_name(row.factor, row.option), option_name(row.factor, row.ref_option)
    if row.verdict not in READ:
        if ref_stated and row.ref_check.gate != "ok":
            o = row.option_check
            return (f"not read: the reference did not learn; {text(option)} " +
                    (f"**{text(o.gate)}** ({text(o.why)})" if o.gate != "ok" else f"learned ({text(o.why)})"))
        return f"not read: **{text(row.verdict)}** ({text(c.why)})"
    if row.verdict == "unresolved":
        return (f"unresolved: {text(option)} − {text(ref_option)} = {c.diff:+.3f} {m} "
                f"[{c.lo:+.3f}, {c.hi:+.3f}]")
    win, lose = (option, ref_option) if c.diff > 0 else (ref_option, option)
    d, lo, hi = (c.diff, c.lo, c.hi) if c.diff > 0 else (-c.diff, -c.hi, -c.lo)
    return f"**{text(win)}** beats {text(lose)} by {d:+.3f} {m} [{lo:+.3f}, {hi:+.3f}]"


def failed_references(rows: list[FactorRow]) -> list[str]:
    """A line for each reference (and train size) that fails a validity gate (gates.check_arm reads its in-domain
    set, whichever set a row compares on): every comparison with it is unreadable, which a reader should learn
    before the table."""
    out, seen = [], set()
    for x in rows:
        key = (x.ref, x.size)
        if key in seen or x.ref_check.gate == "ok":
            continue
        seen.add(key)
        out.append(f"- **The reference {text(x.ref)} (n={text(x.size)}) is {text(x.ref_check.gate)}**: "
                   f"{text(x.ref_check.why)}. No option can be compared with it at this size: train on more "
                   "examples or for longer (`sdelab plan` estimates the size a comparison needs).")
    return out
def headline(r: Loaded, reference: str, n_boot: int) -> list[str]:
    """The first section of a report: one row per factor, one column per evaluation set."""
    rows = factor_rows(r, reference, n_boot)
    out = ["## The answer\n"]
    if not rows:
        return out + ["No design differs from the reference in exactly one option, so no factor has a winner to "
                      "report; the tables below compare each design with the reference.\n"]
    sets = list(dict.fromkeys((x.set, x.kind) for x in rows))
    factors = list(dict.fromkeys((x.factor, x.ref) for x in rows))
    several = len({ref for _, ref in factors}) > 1
    by = {(x.factor, x.ref, x.set): x for x in rows}
    clear = sum(x.verdict == "clear" for x in rows)
    gated = sum(x.verdict not in READ for x in rows)
    out.append(f"{clear} of {len(rows)} comparisons have a clear winner (95% interval clear of zero), "
               f"{len(rows) - clear - gated} are unresolved at this study's size, {gated} are not read because an "
               "arm did not learn the task or is degenerate (the validity gates). Each row: the factor's best other "
               "option against the reference design's, at the train size named, seeds and items pooled.\n")
    refs = failed_references(rows)
    if refs:
        out += refs + [""]
    stated = {(x.ref, x.size) for x in rows if x.ref_check.gate != "ok"}
    out += ["| factor | " + " | ".join(text(set_label(s, k)) for s, k in sets) + " |",
            "|---|" + "---|" * len(sets)]
    for factor, ref in factors:
        size = next(x.size for x in rows if (x.factor, x.ref) == (factor, ref))
        name = f"{text(factor)}" + (f" ({text(ref)})" if several else "") + f", n={text(size)}"
        cols = [sentence(by[(factor, ref, s)], (ref, size) in stated) if (factor, ref, s) in by else "-" for s, _ in sets]
        out.append(f"| {name} | " + " | ".join(cols) + " |")
    return out + [""]
