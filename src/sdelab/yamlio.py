"""YAML loading that remembers line numbers, and pydantic validation errors turned into file:line messages."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sdelab.errors import SdelabError, did_you_mean

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """The parsed document and its node tree (for line numbers)."""
    path = Path(path)
    if not path.exists():
        raise SdelabError("file not found", path=path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SdelabError("not valid UTF-8", path=path) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SdelabError(f"invalid YAML: {getattr(e, 'problem', e)}", path=path,
                          line=mark.line + 1 if mark else None) from None
    return data, node


def node_line(node: yaml.Node | None, loc: tuple) -> int | None:
    """Line (1-based) of the deepest node on `loc` that exists in the YAML tree."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(key)), None)
            keynode = next((k for k, v in node.value if k.value == str(key)), None)
            if nxt is None:
                return line
            line, node = keynode.start_mark.line + 1, nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def validate(model: type[M], data: Any, path: str | Path, node: yaml.Node | None = None) -> M:
    """Validate `data` against `model`; the first error becomes one SdelabError naming file, line and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        err = next((e for e in errs if e["type"] == "extra_forbidden"), errs[0])  # a typo explains the rest
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = list(parent.model_fields) if parent else []
            msg = f"unknown key '{loc[-1]}'" + did_you_mean(str(loc[-1]), known)
        else:
            msg = err["msg"]
            if "input" in err and not isinstance(err["input"], (dict, list)):
                msg += f" (got {err['input']!r})"
        raise SdelabError(msg, path=path, line=node_line(node, loc), field=field) from None


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """Follow `loc` through nested pydantic models (skipping list indices / dict keys)."""
    cur: Any = model
    for key in loc:
        if isinstance(key, int):
            continue
        f = getattr(cur, "model_fields", {}).get(key)
        if f is None:
            return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None
        ann = f.annotation
        for cand in (ann, *getattr(ann, "__args__", ())):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                cur = cand
                break
            for sub in getattr(cand, "__args__", ()) or ():
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    cur = sub
                    break
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None
