"""The options of a sample design, as small Literal fields, and named presets.

A preset name may carry one-factor changes: 'inst-first+mi' is the 'inst-first' preset with loss on the input.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from sdelab.errors import SdelabError, did_you_mean

Instruction = Literal["first", "last", "none"]


@dataclass(frozen=True)
class Design:
    name: str = "inst-first"
    instruction: Instruction = "first"  # Inst-first | Inst-last | No-inst
    input_loss: bool = False  # MI (True): loss on the input too; No-MI (False): loss on the response only
    template: str | None = None  # which wording of the task's templates (None: the first)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Design] = {
    "inst-first": Design("inst-first", instruction="first"),
    "inst-last": Design("inst-last", instruction="last"),
    "no-inst": Design("no-inst", instruction="none"),
}

# one-factor changes that can be appended to a preset name with '+'
MODIFIERS: dict[str, dict[str, Any]] = {
    "mi": {"input_loss": True},
    "no-mi": {"input_loss": False},
    "inst-first": {"instruction": "first"},
    "inst-last": {"instruction": "last"},
    "no-inst": {"instruction": "none"},
}

_FIELDS = {"instruction": ("first", "last", "none"), "input_loss": (True, False)}


def get_design(spec: str | dict[str, Any]) -> Design:
    """A preset name ('inst-last', 'inst-first+mi') or a mapping {name?, preset?, <option>: value}."""
    if isinstance(spec, str):
        base, *mods = spec.split("+")
        if base not in PRESETS:
            raise SdelabError(f"unknown design '{base}'" + did_you_mean(base, list(PRESETS)), field="designs")
        d = PRESETS[base]
        for m in mods:
            if m not in MODIFIERS:
                raise SdelabError(f"unknown design change '+{m}' in '{spec}'" + did_you_mean(m, list(MODIFIERS)),
                                  field="designs")
            d = replace(d, **MODIFIERS[m])
        return replace(d, name=spec)
    spec = dict(spec)
    base = get_design(spec.pop("preset", "inst-first"))
    name = spec.pop("name", None)
    for k, v in spec.items():
        if k not in _FIELDS and k != "template":
            raise SdelabError(f"unknown design option '{k}'" + did_you_mean(k, [*_FIELDS, "template"]),
                              field="designs")
        if k in _FIELDS and v not in _FIELDS[k]:
            raise SdelabError(f"design option '{k}' must be one of {_FIELDS[k]}, got {v!r}", field="designs")
    d = replace(base, **spec)
    return replace(d, name=name or _auto_name(d))


def _auto_name(d: Design) -> str:
    parts = [{"first": "inst-first", "last": "inst-last", "none": "no-inst"}[d.instruction]]
    if d.input_loss:
        parts.append("mi")
    if d.template:
        parts.append(f"tpl-{d.template}")
    return "+".join(parts)
