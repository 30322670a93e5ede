"""The sections of a study's report, each a renderer over the loaded records (report.records): markdown lines."""
from __future__ import annotations

import statistics
from collections import defaultdict

from sdelab import fileio
from sdelab.report import stats as st
from sdelab.report.gates import GATES, compare
from sdelab.report.headline import factor_rows
from sdelab.report.records import Loaded, kind_label, majority, ref_label, rows_of, set_label, stacked
from sdelab.report.text import code, text
from sdelab.results import size_key


def superseded_note(r: Loaded, reference: str, n_boot: int) -> list[str]:
    if not r.superseded:
        return []
    rows = []
    for c, new in r.superseded:
        keys = sorted(str(k) for k in set(c.config) | set(new.config) if c.config.get(k) != new.config.get(k))
        rows.append(f"| {text(c.folder.name)} | {text(new.folder.name)} | {', '.join(map(text, keys))} |")
    return ["## Superseded run folders (not counted)\n",
            "These cells have the design, train size and seed of a newer cell whose settings differ (the study was "
            "changed and run again into this folder); only the newer one counts. Delete or move the old folders "
            "to silence this.\n", "| ignored | replaced by | settings that differ |", "|---|---|---|", *rows, ""]


def precision_note(r: Loaded, reference: str, n_boot: int) -> list[str]:
    """Cells computed in different precisions (a study resumed on a machine with or without native bf16, where
    `precision: auto` picks differently) differ a little for that reason alone: say which ran in which."""
    by: dict[str, list[str]] = defaultdict(list)
    for c in r.cells:
        if c.manifest is not None:
            by[str(c.precision)].append(c.folder.name)
    if len(by) < 2:
        return []
    parts = "; ".join(f"{text(p)}: {', '.join(map(text, sorted(names)))}" for p, names in sorted(by.items()))
    return [f"Cells ran in different precisions ({parts}): comparisons across precisions include numeric "
            "differences, not only the designs'.\n"]


def truncation_note(r: Loaded, reference: str, n_boot: int) -> list[str]:
    """Cells whose training samples or evaluation prompts had their input cut to fit train.max_length (the tail
    of the item's input goes; demonstrations and instruction stay): their scores are of shortened inputs."""
    rows = []
    for c in r.cells:
        train = (c.manifest or {}).get("train") or {}
        parts = [f"{text(train['truncated_samples'])} of {text(train.get('examples'))} training samples"] \
            if train.get("truncated_samples") else []
        cut = {s: e.prompts_truncated for s, e in c.eval.items() if e.prompts_truncated}
        if cut:
            parts.append(f"{sum(cut.values())} of {sum(c.eval[s].n for s in cut)} evaluation "
                         f"prompts ({', '.join(f'{text(s)}: {n}' for s, n in cut.items())})")
        if parts:
            rows.append(f"| {text(c.label)} | {text(c.size)} | {text(c.seed)} | {'; '.join(parts)} |")
    if not rows:
        return []
    uncounted = any(e.prompts_truncated is None for c in r.cells for e in c.eval.values())
    return ["## Inputs cut to fit max_length\n",
            "These cells saw shortened inputs (the tail of the item's own input was cut; instruction and "
            "demonstrations were kept): raise train.max_length to compare them on whole inputs."
            + (" Cells run before sdelab counted cut evaluation prompts show their training samples only."
               if uncounted else "") + "\n",
            "| design | train size | seed | inputs cut |", "|---|---|---|---|", *rows, ""]


def main_table(r: Loaded, reference: str, n_boot: int) -> list[str]:
    cells, sets, groups = r.cells, r.sets, r.groups
    out = ["## Results by design and evaluation set\n",
           "| design | train size | seeds | " + " | ".join(f"{text(set_label(s, k))} {text(p)}" for s, k, p in sets)
           + " |",
           "|---|---|---|" + "---|" * len(sets)]
    for design, size in rows_of(cells):
        cols, n = [], 0
        for s, _, primary in sets:
            g = groups.get((design, size, s))
            if not g or not g.values:
                cols.append("-")
                continue
            n = max(n, len(g.values))
            sd = f" ± {statistics.stdev(g.values):.3f}" if len(g.values) > 1 else ""
            ci = " [{:.3f}, {:.3f}]".format(*st.bootstrap_ci(primary, stacked(g), n_boot)) if g.items else ""
            cols.append(f"{statistics.fmean(g.values):.3f}{sd}{ci}")
        out.append(f"| {text(design)} | {text(size)} | {n} | " + " | ".join(cols) + " |")
    rows = majority(cells, [s for s, _, _ in sets])
    return out + [f"| majority class | {text(size)} | - | " + " | ".join(vals) + " |" for size, vals in rows.items()] \
        + [""]


def matrix(r: Loaded, reference: str, n_boot: int) -> list[str]:
    """The generalization view: each design's mean primary metric over the sets of each kind (ID, ID with an
    unseen template, OOD, cross-task), when a study evaluates more than one kind."""
    cells, sets, groups = r.cells, r.sets, r.groups
    kinds = list(dict.fromkeys(k for _, k, _ in sets))
    if len(kinds) < 2:
        return []
    out = ["## Generalization matrix (mean over the sets of each kind)\n",
           "Each column averages the design's primary metric over the evaluation sets of that kind it was scored on "
           "(set by set in the table above); in brackets, how many sets.\n",
           "| design | train size | " + " | ".join(text(kind_label(k)) for k in kinds) + " |",
           "|---|---|" + "---|" * len(kinds)]
    for design, size in rows_of(cells):
        cols = []
        for k in kinds:
            vals = [statistics.fmean(g.values) for s, kk, _ in sets if kk == k
                    and (g := groups.get((design, size, s))) and g.values]
            cols.append(f"{statistics.fmean(vals):.3f} ({len(vals)})" if vals else "-")
        out.append(f"| {text(design)} | {text(size)} | " + " | ".join(cols) + " |")
    return out + [""]


def significance(r: Loaded, reference: str, n_boot: int) -> list[str]:
    cells, sets, groups = r.cells, r.sets, r.groups
    out = [f"## Each design against the reference ({code(reference)})\n",
           "Difference in the primary metric (design − reference) on the same items and seeds, its seed-aware 95% "
           "interval and p (McNemar on the items in brackets for accuracy); * marks an interval clear of zero. "
           "A difference is only read when both arms pass the validity gates (report.gates; docs/results/README.md): "
           "**not learned** = an arm's in-domain score does not beat its floor with its interval above it, "
           "**degenerate** = one answer for nearly every item or mostly format errors.\n",
           "| design | train size | " + " | ".join(text(set_label(s, k)) for s, k, _ in sets) + " |",
           "|---|---|" + "---|" * len(sets)]
    tally: dict[str, int] = defaultdict(int)
    how: dict[str, str] = {}
    for design, size in rows_of(cells):
        ref = ref_label(design, reference)
        if design == ref and not size.startswith("untuned"):
            continue
        ref_size = size if not size.startswith("untuned") else next(
            (sz for d, sz in rows_of(cells) if d == ref and not sz.startswith("untuned")), size)
        cols = []
        for s, _, primary in sets:
            c = compare(groups, (design, size, s), (ref, ref_size, s), primary, n_boot, design, ref)
            if c is None:
                cols.append("-")
                continue
            tally[c.gate] += 1
            how.setdefault(s, c.interval)
            star = "*" if c.clear else ""
            mc = f", McNemar {c.mcnemar:.3f}" if c.mcnemar is not None else ""
            gate = "" if c.gate == "ok" else f" **{c.gate}**"
            cols.append(f"{c.diff:+.3f} [{c.lo:+.3f}, {c.hi:+.3f}] (p={c.p:.3f}{mc}){star}{gate}")
        out.append(f"| {text(design)} | {text(size)} | " + " | ".join(cols) + " |")
    if tally:
        out += ["", "Gates: " + ", ".join(f"{tally[g]} {'passed' if g == 'ok' else g}" for g in GATES if tally[g])
                + ". Intervals: " + "; ".join(f"{text(s)}: {h}" for s, h in how.items()) + "."]
    return out + [""]


def summary(r: Loaded, reference: str, n_boot: int) -> list[str]:
    """For each factor varied one at a time away from the reference (headline.factor_rows): the winning option,
    by how much, and whether the difference is significant, per evaluation set, behind the validity gates."""
    rows = factor_rows(r, reference, n_boot)
    out = ["## Ranked summary: which option wins for each factor\n"]
    if not rows:
        return out + ["No design differs from the reference in exactly one option.\n"]
    out += ["| factor | evaluation set | winner | reference option | best other option | other − reference "
            "[95% CI] | p | gate | difference |", "|---|---|---|---|---|---|---|---|---|"]
    several = len({x.ref for x in rows}) > 1
    for x in rows:
        c = x.c
        read = x.verdict if c.gate == "ok" else "-"
        out.append(f"| {text(x.factor)}{f' ({text(x.ref)})' if several else ''} | {text(set_label(x.set, x.kind))} | "
                   f"{text(x.winner)} | {text(x.ref_option)} | {text(x.option)} | {c.diff:+.3f} [{c.lo:+.3f}, "
                   f"{c.hi:+.3f}] | {c.p:.3f} | {'passed' if c.gate == 'ok' else c.gate} | {read} |")
    sizes = dict.fromkeys((x.ref, x.size) for x in rows)
    at = ", ".join(f"{text(sz)} for {text(ref)}" for ref, sz in sizes) if several else text(rows[0].size)
    return out + [f"\n(train size {at}; the reference design's option against the best of the others.)\n"]


def decoding_samples(r: Loaded, reference: str, n_boot: int) -> list[str]:
    """Sampled decoding (`eval.decoding`): each design's mean and spread over the samples of a set ('<set>~s<i>'),
    the seed's mean first (the decoding noise the SDE paper checks designs against)."""
    base: dict[str, list[str]] = defaultdict(list)
    for s, _, _ in r.sets:
        if "~s" in s:
            base[s.rsplit("~s", 1)[0]].append(s)
    if not base:
        return []
    out = ["## Sampled decoding: mean ± sd over the samples\n",
           "| design | train size | " + " | ".join(f"{text(b)} ({len(ss)} samples)" for b, ss in base.items()) + " |",
           "|---|---|" + "---|" * len(base)]
    for design, size in rows_of(r.cells):
        cols = []
        for ss in base.values():
            xs = [statistics.fmean(g.values) for s in ss if (g := r.groups.get((design, size, s))) and g.values]
            cols.append(f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else "-")
        out.append(f"| {text(design)} | {text(size)} | " + " | ".join(cols) + " |")
    return out + [""]


def errors_table(r: Loaded, reference: str, n_boot: int) -> list[str]:
    cells, sets, groups = r.cells, r.sets, r.groups
    out = ["## Format errors (share of outputs the strict parser rejected)\n",
           "| design | train size | " + " | ".join(text(set_label(s, k)) for s, k, _ in sets) + " |",
           "|---|---|" + "---|" * len(sets)]
    for design, size in rows_of(cells):
        cols = [f"{100 * statistics.fmean(g.errors):.1f}%" if (g := groups.get((design, size, s))) and g.errors
                else "-" for s, _, _ in sets]
        out.append(f"| {text(design)} | {text(size)} | " + " | ".join(cols) + " |")
    return out + [""]


SECONDARY = {"kappa": ["slot_accuracy", "exact_match", "lenient_kappa"],
             "f1": ["strict_soft_f1", "lenient_exact_f1", "lenient_soft_f1"],
             "accuracy": ["macro_f1", "lenient_accuracy"], "rougeL": ["bleu"]}


def secondary_table(r: Loaded, reference: str, n_boot: int) -> list[str]:
    """The family's other metrics (mean ± sd over seeds), one table per primary metric."""
    cells, sets = r.cells, r.sets
    out = []
    for primary in dict.fromkeys(p for _, _, p in sets):
        names = SECONDARY.get(primary, [])
        mine = [(s, k) for s, k, p in sets if p == primary]
        if not names:
            continue
        out += [f"## Other metrics of the {text(primary)} sets (mean ± sd over seeds)\n",
                "| design | train size | set | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
        for design, size in rows_of(cells):
            for s, kind in mine:
                ms = [c.eval[s].values for c in cells if c.label == design and c.size == size
                      and s in c.eval]
                if not ms:
                    continue
                cols = []
                for n in names:
                    xs = [m[n] for m in ms if n in m]
                    sd = f" ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else ""
                    cols.append(f"{statistics.fmean(xs):.3f}{sd}" if xs else "-")
                out.append(f"| {text(design)} | {text(size)} | {text(set_label(s, kind))} | " + " | ".join(cols) + " |")
        out.append("")
    return out


def cost_table(r: Loaded, reference: str, n_boot: int) -> list[str]:
    """What each design cost to train and evaluate (mean over seeds, from the cells' manifest.json)."""
    per: dict[tuple, list[dict]] = defaultdict(list)
    for c in r.cells:
        if c.manifest is not None and c.untuned is None:
            per[(c.label, c.size)].append(c.manifest)
    if not per:
        return []
    out = ["## Cost (mean over seeds)\n",
           "Training tokens are the prompt and response tokens the model processed (padding excluded).\n",
           "| design | train size | training tokens | train time (s) | tokens/s | eval time (s) |",
           "|---|---|---|---|---|---|"]
    for (design, size), ms in per.items():
        mean = lambda f: statistics.fmean(f(m) for m in ms)  # noqa: E731
        out.append(f"| {text(design)} | {text(size)} | {mean(lambda m: m['train']['tokens']):,.0f} | "
                   f"{mean(lambda m: m['timings']['train_s']):.0f} | "
                   f"{mean(lambda m: m['train']['tokens_per_second']):.0f} | "
                   f"{mean(lambda m: m['timings']['eval_s']):.0f} |")
    return out + [""]


def diagnostics(r: Loaded, reference: str, n_boot: int) -> list[str]:
    """Prompt signals on the base model (sdelab diagnose) beside the fine-tuned scores, and their rank
    correlation across designs: does a good prompt make a good training sample?"""
    out_dir, cells, sets, groups = r.out_dir, r.cells, r.sets, r.groups
    path = out_dir / "diagnostics.json"
    if not path.exists():
        return []
    from scipy.stats import spearmanr
    diag = fileio.read_json(path)
    ks = diag["ks"]
    s, kind, primary = next(((s, k, p) for s, k, p in sets if k == "in_domain"), sets[0])
    trained = [sz for _, sz in rows_of(cells) if not sz.startswith("untuned")]
    size = sorted(set(trained), key=size_key)[-1] if trained else None
    out = ["## Design diagnostics: prompt quality vs fine-tuned quality\n",
           f"From `sdelab diagnose` on the untuned model ({text(diag['examples'])} training examples for the "
           f"perplexities); in-context ({icl_items(diag, s)}) and fine-tuned scores on {text(set_label(s, kind))} "
           f"({text(primary)}), fine-tuned at train size {text(size)}. "
           "Spearman's rho across designs between each prompt signal (higher = better prompt; perplexities are "
           "negated) and the fine-tuned score.\n",
           "| design | prompt PPL | output PPL | " + " | ".join(f"k={text(k)} in-context" for k in ks) +
           " | fine-tuned |", "|---|---|---|" + "---|" * (len(ks) + 1)]
    for design, r in diag["designs"].items():
        g = groups.get((design, size, s))
        ft = statistics.fmean(g.values) if g and g.values else None
        icl = [(r["icl"][str(k)].get(s), r.get("icl_format_errors", {}).get(str(k), {}).get(s)) for k in ks]
        out.append(f"| {text(design)} | {r['prompt_ppl']:.2f} | {r['output_ppl']:.2f} | " +
                   " | ".join("-" if v is None else f"{v:.3f}" + ("" if e is None else f" ({100 * e:.0f}% format "
                                                                  "errors)") for v, e in icl) +
                   f" | {'-' if ft is None else f'{ft:.3f}'} |")
    out.append("")
    signals, tuned = prompt_signals(diag, groups, s, size)
    if len(tuned) >= 3:
        out += ["| prompt signal | Spearman rho with the fine-tuned score | p |", "|---|---|---|"]
        for name, xs in signals.items():
            if constant(xs) or constant(tuned):
                out.append(f"| {text(name)} | - (constant) | - |")
                continue
            rho, p = spearmanr(xs, tuned)
            out.append(f"| {text(name)} | {rho:+.3f} | {p:.3f} |")
        out.append("")
    else:
        out.append("(Rank correlations need at least 3 designs with both diagnostics and fine-tuned scores.)\n")
    return out


def icl_items(diag: dict, eval_set: str) -> str:
    n = diag.get("icl_examples", {}).get(eval_set)  # files written before --size record no count: all items
    return f"first {text(n)} items" if n is not None else "all items"


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
