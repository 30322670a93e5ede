"""The options of a sample design — one frozen dataclass of small Literal fields — and named presets.

Names follow the papers: Inst-first / Inst-last / No-inst, MI / No-MI, Natural / Lines / JSON, PU / OU,
TxtLabel / NumLabel, No-CoT / CoT / R-CoT (Sample Design Engineering); concise / complex prompts (short text
matching); k in-context demonstrations in every sample (FTICL, generalization paper); template wording.

A design is written as a preset name with one-factor changes, 'es-sde+json+ou', or as a mapping
{preset: es-sde, output_format: json, ...}; a study may also sweep options as a grid.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from sdelab.errors import SdelabError, did_you_mean


@dataclass(frozen=True)
class Design:
    name: str = "es-sde"
    instruction: Literal["first", "last", "none"] = "first"
    """Inst-first: the instruction before the input; Inst-last: after it; No-inst: no instruction at all."""
    input_loss: bool = False
    """MI (True): the loss covers the instruction and input too; No-MI (False): only the response."""
    output_format: Literal["natural", "lines", "json", "json_object", "pairs"] = "lines"
    """Several predictions per example: one sentence (Natural), one 'target: value' per line (Lines), one JSON
    object per aspect or type per line (JSON, as the SDE code), one JSON object for the whole answer
    (json_object), or one ["type", "text"] per line (pairs: spans only, the SDE code's heuristic format)."""
    unmentioned: Literal["placeholder", "omit"] = "placeholder"
    """PU: every target is written, unmentioned ones with a placeholder; OU: only mentioned targets."""
    labels: Literal["text", "number"] = "text"
    """TxtLabel: labels as words; NumLabel: labels as numbers (e.g. 1 / 0 / -1 / -2)."""
    reasoning: Literal["none", "cot", "reverse_cot"] = "none"
    """No-CoT; CoT: a rationale, then the answer; R-CoT: the answer, then the rationale."""
    prompt_style: Literal["concise", "complex"] = "concise"
    """concise: a one-line instruction; complex: task and label definitions, what counts as a match."""
    demos: int = 0
    """k in-context demonstrations inside every training and test sample (FTICL); 0 = none."""
    demo_selection: Literal["fixed", "random", "similar"] = "fixed"
    """fixed: the same k for every sample; random: k per sample (seeded); similar: nearest neighbours."""
    demo_similarity: Literal["tfidf", "bm25"] = "tfidf"
    """How 'similar' demonstrations are found."""
    demo_pool: str | None = None
    """The split demonstrations come from (default: the cell's training subset)."""
    template: str | None = None
    """Which wording of the task's templates (default: the first); evaluate on another to test unseen ones."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


OPTIONS: dict[str, tuple] = {
    "instruction": ("first", "last", "none"),
    "input_loss": (False, True),
    "output_format": ("natural", "lines", "json", "json_object", "pairs"),
    "unmentioned": ("placeholder", "omit"),
    "labels": ("text", "number"),
    "reasoning": ("none", "cot", "reverse_cot"),
    "prompt_style": ("concise", "complex"),
    "demo_selection": ("fixed", "random", "similar"),
    "demo_similarity": ("tfidf", "bm25"),
}
FREE = ("demos", "demo_pool", "template")  # options without a fixed set of values

ES_SDE = Design("es-sde")  # Inst-first, No-MI, Lines, PU, TxtLabel, No-CoT: the paper's empirically strong design
# The Sample Design Engineering paper's baseline: Inst-last, No-MI, Natural, PU, TxtLabel, No-CoT (its MASA code's
# `instruction-last`); a task may declare its own (GENIA and MAVEN: Inst-first, one ["type", "text"] per line).
SDE_BASELINE = Design("heuristic", instruction="last", output_format="natural")
# EW-SDE, the SDE code's weak combination (GENIA's weak1): the input first, Natural, only what is mentioned (OU).
SDE_WEAK = Design("weak", instruction="last", output_format="natural", unmentioned="omit")

PRESETS: dict[str, Design] = {
    "es-sde": ES_SDE,
    "heuristic": SDE_BASELINE,  # a task may declare its own `heuristic:` and `weak:` designs
    "weak": SDE_WEAK,
    "inst-first": replace(ES_SDE, name="inst-first"),
    "inst-last": replace(ES_SDE, name="inst-last", instruction="last"),
    "no-inst": replace(ES_SDE, name="no-inst", instruction="none"),
}

# one-factor changes appended to a preset name with '+', e.g. 'es-sde+json'
MODIFIERS: dict[str, dict[str, Any]] = {
    "inst-first": {"instruction": "first"}, "inst-last": {"instruction": "last"}, "no-inst": {"instruction": "none"},
    "mi": {"input_loss": True}, "no-mi": {"input_loss": False},
    "natural": {"output_format": "natural"}, "lines": {"output_format": "lines"}, "json": {"output_format": "json"},
    "json-object": {"output_format": "json_object"}, "pairs": {"output_format": "pairs"},
    "pu": {"unmentioned": "placeholder"}, "ou": {"unmentioned": "omit"},
    "txt": {"labels": "text"}, "num": {"labels": "number"},
    "no-cot": {"reasoning": "none"}, "cot": {"reasoning": "cot"}, "rcot": {"reasoning": "reverse_cot"},
    "r-cot": {"reasoning": "reverse_cot"},
    "concise": {"prompt_style": "concise"}, "complex": {"prompt_style": "complex"},
    "fixed": {"demo_selection": "fixed"}, "random": {"demo_selection": "random"},
    "similar": {"demo_selection": "similar"}, "tfidf": {"demo_similarity": "tfidf"},
    "bm25": {"demo_similarity": "bm25"},
}
# parameterised modifiers: 'k4' (4 demonstrations), 'tpl=NAME', 'pool=SPLIT'
_SHORT = {"first": "inst-first", "last": "inst-last", "none": "no-inst"}

# which options make sense for which task family (an explicit change to any other is an error)
APPLIES: dict[str, set[str]] = {
    "single_classification": {"instruction", "input_loss", "labels", "reasoning", "prompt_style", *FREE,
                              "demo_selection", "demo_similarity"},
    "multi_aspect": set(OPTIONS) | set(FREE),
    "span_extraction": set(OPTIONS) - {"labels"} | set(FREE),
    "text_generation": {"instruction", "input_loss", "prompt_style", *FREE, "demo_selection", "demo_similarity"},
}
APPLIES["pair_classification"] = APPLIES["single_classification"]
ONLY = {("output_format", "pairs"): "span_extraction"}  # option values only one family can use


def _modifier(mod: str, spec: str) -> dict[str, Any]:
    if mod in MODIFIERS:
        return MODIFIERS[mod]
    if mod[:1] == "k" and mod[1:].isdigit():
        return {"demos": int(mod[1:])}
    if mod.startswith("tpl="):
        return {"template": mod[4:]}
    if mod.startswith("pool="):
        return {"demo_pool": mod[5:]}
    raise SdelabError(f"unknown design change '+{mod}' in '{spec}'" +
                      did_you_mean(mod, [*MODIFIERS, "k<N>", "tpl=<name>", "pool=<split>"]), field="designs")


def _check(key: str, value: Any) -> None:
    if key in OPTIONS and value not in OPTIONS[key]:
        raise SdelabError(f"design option '{key}' must be one of {', '.join(map(str, OPTIONS[key]))}, got "
                          f"{value!r}", field="designs")
    if key == "demos" and (not isinstance(value, int) or value < 0):
        raise SdelabError(f"design option 'demos' must be a whole number >= 0, got {value!r}", field="designs")
    if key not in OPTIONS and key not in FREE:
        raise SdelabError(f"unknown design option '{key}'" + did_you_mean(key, [*OPTIONS, *FREE]),
                          field="designs")


def get_design(spec: str | dict[str, Any], family: str | None = None, own: dict | None = None) -> Design:
    """A design from a name ('es-sde+json') or a mapping. With `family`, options the family cannot use are
    refused when asked for explicitly; `own`: the task's own presets ({'heuristic': {...}, 'weak': {...}})."""
    changed: dict[str, Any] = {}
    if isinstance(spec, str):
        base_name, *mods = spec.split("+")
        base = _preset(base_name, own)
        for m in mods:
            changed.update(_modifier(m, spec))
        name = spec
    elif isinstance(spec, dict):
        spec = dict(spec)
        base = _preset(str(spec.pop("preset", "es-sde")), own)
        name = spec.pop("name", None)
        changed = spec
    else:
        raise SdelabError(f"a design is a name or a mapping, got {spec!r}", field="designs")
    for k, v in changed.items():
        _check(k, v)
    if family is not None:
        bad = sorted(k for k, v in changed.items() if k not in APPLIES[family] and v != getattr(base, k))
        if bad:
            raise SdelabError(f"design '{name or spec}' sets {', '.join(bad)}, which the {family} family cannot "
                              f"use (it applies to: {', '.join(sorted(APPLIES[family]))})", field="designs")
    d = replace(base, **changed)
    for (k, v), fam in ONLY.items():
        if family is not None and getattr(d, k) == v and family != fam:
            raise SdelabError(f"design '{name or spec}': {k} '{v}' is for {fam} tasks only", field="designs")
    return replace(d, name=name or auto_name(d))


def _preset(name: str, own: dict | None) -> Design:
    if (own or {}).get(name):
        for k, v in own[name].items():
            _check(k, v)
        return replace(PRESETS[name], **own[name])
    if name not in PRESETS:
        raise SdelabError(f"unknown design '{name}'" + did_you_mean(name, list(PRESETS)), field="designs")
    return PRESETS[name]


def auto_name(d: Design, base: Design = ES_SDE) -> str:
    """'es-sde' plus the one-factor changes that turn es-sde into `d`, e.g. 'es-sde+json+ou'."""
    parts = ["es-sde"]
    inverse = {tuple(v.items())[0]: k for k, v in MODIFIERS.items() if k not in ("r-cot",)}
    for f in fields(Design):
        if f.name == "name":
            continue
        v = getattr(d, f.name)
        if v == getattr(base, f.name):
            continue
        if (f.name, v) in inverse:
            parts.append(inverse[(f.name, v)])
        elif f.name == "demos":
            parts.append(f"k{v}")
        elif f.name == "template":
            parts.append(f"tpl={v}")
        elif f.name == "demo_pool":
            parts.append(f"pool={v}")
    return "+".join(parts)


def one_factor_variants(base: str | Design, family: str, own: dict | None = None) -> list[Design]:
    """Every design one option away from `base` that the family can use (the papers' one-factor studies): the
    paper's options, not sdelab's extra output formats (json_object; pairs, which is the heuristic's)."""
    b = base if isinstance(base, Design) else get_design(base, own=own)
    out = []
    for key, values in OPTIONS.items():
        if key not in APPLIES[family] or key.startswith("demo_"):
            continue
        for v in values:
            if v != getattr(b, key) and v not in ("json_object", "pairs"):
                d = replace(b, **{key: v})
                out.append(replace(d, name=f"{b.name}+{auto_name(d, b).split('+', 1)[1]}"))
    return out


def grid(base: str, options: dict[str, list], family: str | None = None, own: dict | None = None) -> list[Design]:
    """The full factorial of `options` around `base`."""
    keys = list(options)
    out = []
    for combo in itertools.product(*(options[k] for k in keys)):
        out.append(get_design({"preset": base, **dict(zip(keys, combo))}, family, own))
    return out


def expand_designs(specs: list[str | dict], family: str | None = None, own: dict | None = None) -> list[Design]:
    """A study's `designs:` list: names, mappings, {grid: {...}, preset: X} and {one_factor_from: X}."""
    out: list[Design] = []
    for spec in specs:
        if isinstance(spec, dict) and "grid" in spec:
            extra = set(spec) - {"grid", "preset"}
            if extra:
                raise SdelabError(f"a grid entry takes 'grid' and 'preset', not {', '.join(sorted(extra))}",
                                  field="designs")
            out += grid(spec.get("preset", "es-sde"), spec["grid"], family, own)
        elif isinstance(spec, dict) and "one_factor_from" in spec:
            base = get_design(spec["one_factor_from"], family, own)
            out += [base] + one_factor_variants(base, family or "multi_aspect", own)
        else:
            out.append(get_design(spec, family, own))
    return out
