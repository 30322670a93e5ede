"""Validity gates and the seed-aware comparison of two arms: what a reviewer checks before reading a difference.

A difference between two designs means something only when both learned the task. Before any verdict, each arm
of a comparison passes two gates:

- **degenerate**: its outputs carry (nearly) no information about the input: more than FORMAT_ERROR_MAX of them
  are rejected by the strict parser, or one answer is given to ONE_ANSWER_MAX or more of the items. Past half the
  outputs unparsed, at least half the items are wrong whatever the model understood, so a difference between two
  such arms measures how fast a format is learned; with one answer for 95% of the items, at most 5% of the items
  can carry a difference at all.
- **not learned** (trained arms only): the arm's in-domain score (its first in-domain set, whatever set the row
  compares: an out-of-domain row asks how a model that learned the task transfers) must beat its family's floor
  with its seed-aware interval above it. The floors (`floor`): the majority class of the training subset for
  classification (accuracy) and multi-aspect sentiment (kappa), the untuned base model (its best number of demonstrations in the study) for
  generation (ROUGE-L), and the better of the empty answer (F1 0) and the untuned model for spans. The floor's
  value is taken as fixed (no interval of its own). An untuned arm is a floor itself and only has to pass the
  degenerate gate.

A comparison whose arms pass both gates gets the seed-aware interval of stats.py (item variance from the paired
bootstrap plus the study's seed variance) and only then a verdict (report.claims)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from sdelab.report import stats as st
from sdelab.report.records import Group, stacked

FORMAT_ERROR_MAX = 0.5
ONE_ANSWER_MAX = 0.95
GATES = ("ok", "not learned", "degenerate", "no floor")  # 'no floor': the study measured none for this family


@dataclass(frozen=True)
class ArmCheck:
    gate: str  # one of GATES
    why: str


@dataclass(frozen=True)
class Comparison:
    diff: float
    lo: float
    hi: float
    p: float
    mcnemar: float | None
    items: int  # (seed, item) pairs compared
    seeds: list[int]
    interval: str  # how the interval was formed (seeds x items, or items only and why)
    gate: str  # the worse of the two arms' gates
    why: str  # the arms' gate reasons

    @property
    def clear(self) -> bool:
        """The 95% interval excludes zero."""
        return self.lo > 0 or self.hi < 0


def is_untuned(size: str) -> bool:
    return size.startswith("untuned")


def seed_variance(groups: dict[tuple, Group], eval_set: str, field: str = "values") -> tuple[float | None, int]:
    """The study's pooled seed-to-seed variance of one design's score (or format-error rate) on a set, over its
    trained designs and sizes with >= 2 seeds."""
    return st.pooled_seed_variance([getattr(g, field) for (d, z, s), g in groups.items()
                                    if s == eval_set and not is_untuned(z)])


def floor(groups: dict[tuple, Group], key: tuple, primary: str) -> tuple[str, float | None]:
    """(name, value) of the floor the arm `key` = (design, size, set) must beat."""
    design, _, eval_set = key
    g = groups[key]
    untuned = {z: statistics.fmean(u.values) for (d, z, s), u in groups.items()
               if d == design and s == eval_set and is_untuned(z) and u.values}
    best = max(untuned.items(), key=lambda kv: kv[1]) if untuned else None
    if primary in ("accuracy", "kappa"):
        return ("majority class", statistics.fmean(g.majority)) if g.majority else ("majority class", None)
    if primary == "f1":
        return (best[0], best[1]) if best and best[1] > 0 else ("empty answer", 0.0)
    return (best[0], best[1]) if best else ("untuned model", None)


def in_domain_key(groups: dict[tuple, Group], key: tuple) -> tuple | None:
    """The (design, size, set) whose score says whether the arm learned its task: its first in-domain set in the
    trained wording ('@' marks another) scored by greedy decoding, else by the first decoding sample ('~s')."""
    def home(k: tuple, g: Group, sampled: bool) -> bool:
        return k[:2] == key[:2] and g.kind == "in_domain" and "@" not in k[2] and ("~s" in k[2]) == sampled
    for sampled in (False, True):
        homes = sorted(k for k, g in groups.items() if home(k, g, sampled))
        if homes:
            return key if key in homes else homes[0]
    return None


def item_clusters(keys: list[tuple]) -> np.ndarray:
    """The item of each (seed, item) key, as an index: the bootstrap draws an item with all its seeds."""
    index: dict = {}
    return np.array([index.setdefault(i, len(index)) for _, i in keys])


def check_arm(groups: dict[tuple, Group], key: tuple, primary: str, n_boot: int = 1000,
              count_format_errors: bool = True) -> ArmCheck:
    g = groups[key]
    err = statistics.fmean(g.errors) if g.errors else 0.0
    if count_format_errors and err > FORMAT_ERROR_MAX:
        return ArmCheck("degenerate", f"{100 * err:.0f}% format errors")
    # with format errors the measured quantity, one answer that is the format error is the finding: not gated
    if count_format_errors and g.top_shares and (share := statistics.fmean(g.top_shares)) >= ONE_ANSWER_MAX:
        return ArmCheck("degenerate", f"one answer for {100 * share:.0f}% of items")
    if is_untuned(key[1]):
        return ArmCheck("ok", "untuned: a floor itself")
    home = in_domain_key(groups, key)
    if home is None:
        return ArmCheck("no floor", "no in-domain set scored")
    key, g = home, groups[home]
    primary = g.primary or primary
    name, value = floor(groups, key, primary)
    if value is None:
        return ArmCheck("no floor", f"no {name} measured")
    mean = statistics.fmean(g.values)
    if not g.items:  # NaN compares False: a score that is not a number has not beaten anything
        return (ArmCheck("not learned", f"{mean:.3f} on {key[2]} <= {name} {value:.3f}") if not mean > value else
                ArmCheck("ok", f"{mean:.3f} > {name} {value:.3f} (no interval: no per-item statistics)"))
    seeds = len({s for s, _ in g.items})
    var_seed, df = seed_variance(groups, key[2])
    keys = sorted(g.items)
    a = stacked(g, keys)
    var_items = st.item_variance(primary, a, None, n_boot, clusters=item_clusters(keys))
    term = var_seed / seeds if var_seed is not None else 0.0
    lo, _, _ = st.normal_interval(st.value(primary, a), var_items + term,
                                  df=st.satterthwaite_df(var_items, term, df))
    where = f" on {key[2]}"
    if not lo > value:
        return ArmCheck("not learned", f"{mean:.3f}{where}, interval from {lo:.3f}, not above {name} {value:.3f}")
    return ArmCheck("ok", f"{mean:.3f}{where} > {name} {value:.3f}")


def combine(checks: list[tuple[str, ArmCheck]]) -> tuple[str, str]:
    """The worse gate of the arms (degenerate before not learned before no floor) and every failing arm's reason."""
    order = {"degenerate": 0, "not learned": 1, "no floor": 2, "ok": 3}
    gate = min((c.gate for _, c in checks), key=order.__getitem__)
    why = "; ".join(f"{name}: {c.why}" for name, c in checks if c.gate != "ok")
    return gate, why


def shared_items(groups: dict[tuple, Group], a_key: tuple, b_key: tuple) -> list[tuple]:
    """The (seed, item) keys both arms scored, sorted ([] when either arm is missing)."""
    a, b = groups.get(a_key), groups.get(b_key)
    return sorted(set(a.items) & set(b.items)) if a and b else []


def compare(groups: dict[tuple, Group], a_key: tuple, b_key: tuple, primary: str, n_boot: int = 1000,
            a_name: str = "a", b_name: str = "b") -> Comparison | None:
    """a - b on their common (seed, item) pairs with the seed-aware interval and both arms' gates; None when the
    two share no scored item."""
    common = shared_items(groups, a_key, b_key)
    if not common:
        return None
    a, b = groups[a_key], groups[b_key]
    sa, sb = stacked(a, common), stacked(b, common)
    diff = st.value(primary, sa) - st.value(primary, sb)
    var_items = st.item_variance(primary, sa, sb, n_boot, clusters=item_clusters(common))
    seeds = sorted({s for s, _ in common})
    var_seed, df = seed_variance(groups, a_key[2])
    trained = [k for k in (a_key, b_key) if not is_untuned(k[1])]
    term = var_seed * len(trained) / len(seeds) if var_seed is not None else 0.0
    if var_seed is not None:
        interval = (f"seeds x items ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}; study seed sd "
                    f"{var_seed ** 0.5:.3f}, df {df})")
    else:
        interval = ("items only (1 seed: the interval ignores training noise, which this study did not measure)"
                    if trained else "items (untuned arms: no training noise)")
    lo, hi, p = st.normal_interval(diff, var_items + term, df=st.satterthwaite_df(var_items, term, df))
    mc = st.mcnemar(sa[:, 0], sb[:, 0]) if primary == "accuracy" else None
    gate, why = combine([(a_name, check_arm(groups, a_key, primary, n_boot)),
                         (b_name, check_arm(groups, b_key, primary, n_boot))])
    return Comparison(diff, lo, hi, p, mc, len(common), seeds, interval, gate, why)


def error_rate_compare(groups: dict[tuple, Group], a_key: tuple, b_key: tuple, primary: str, n_boot: int = 1000,
                       a_name: str = "a", b_name: str = "b") -> Comparison | None:
    """a - b in format-error rate (the share of outputs the strict parser rejected), pooled over each arm's seeds:
    a normal interval of the difference of two proportions (unpaired: per-item errors are not kept) plus the
    study's seed variance of the rate (trained arms). The degenerate gate does not count format errors here, nor a
    single answer (which may be the format error): they are what is measured."""
    a, b = groups.get(a_key), groups.get(b_key)
    if not a or not b or not a.errors or not b.errors:
        return None
    pa = sum(e * n for e, n in zip(a.errors, a.sizes)) / sum(a.sizes)
    pb = sum(e * n for e, n in zip(b.errors, b.sizes)) / sum(b.sizes)
    # the seeds score the same items: the binomial term counts each item once
    var = pa * (1 - pa) / max(a.sizes) + pb * (1 - pb) / max(b.sizes)
    var_seed, df = seed_variance(groups, a_key[2], "errors")
    term = sum(var_seed / len(g.errors) for k, g in ((a_key, a), (b_key, b)) if not is_untuned(k[1])) \
        if var_seed is not None else 0.0
    lo, hi, p = st.normal_interval(pa - pb, var + term, df=st.satterthwaite_df(var, term, df))
    gate, why = combine([(a_name, check_arm(groups, a_key, primary, n_boot, count_format_errors=False)),
                         (b_name, check_arm(groups, b_key, primary, n_boot, count_format_errors=False))])
    seeds = sorted({s for s, _ in a.items} & {s for s, _ in b.items})
    interval = "two proportions" + (f" + study seed sd {var_seed ** 0.5:.3f} of the rate" if var_seed is not None
                                    else " (training noise not measured)")
    return Comparison(pa - pb, lo, hi, p, None, max(a.sizes), seeds, interval, gate, why)

