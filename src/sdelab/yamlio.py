"""YAML loading that remembers line numbers, and pydantic validation errors turned into file:line messages."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sdelab.errors import SdelabError, did_you_mean

M = TypeVar("M", bound=BaseModel)

# a study or task file is a few hundred nodes; YAML aliases can make a few hundred bytes stand for billions
# (an "alias bomb"), which validation would then expand
MAX_NODES = 100_000


def expanded_size(node: yaml.Node | None) -> int:
    """How many nodes the document holds once every alias is expanded (counted without expanding them)."""
    memo: dict[int, int] = {}
    open_: set[int] = set()

    def size(n) -> int:
        if id(n) in open_:  # reached again while being counted: an alias inside its own anchor
            raise SdelabError("a YAML alias refers to the value it is part of (a cycle)")
        if id(n) in memo:
            return memo[id(n)]
        open_.add(id(n))
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        open_.discard(id(n))
        memo[id(n)] = total
        return total

    return size(node) if node is not None else 0


def load_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """The parsed document and its node tree (for line numbers)."""
    path = Path(path)
    if not path.exists():
        raise SdelabError("file not found", path=path)
    if not path.is_file():
        raise SdelabError("is a directory, not a YAML file" if path.is_dir() else "not a regular file", path=path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SdelabError("not valid UTF-8", path=path) from None
    except OSError as e:
        raise SdelabError(f"cannot read: {e.strerror}", path=path) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        try:
            n_values = expanded_size(node)
        except SdelabError as e:
            raise SdelabError(e.message, path=path) from None
        if n_values > MAX_NODES:
            raise SdelabError(f"the YAML expands to more than {MAX_NODES:,} values (nested aliases?); sdelab "
                              "refuses to expand it", path=path)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SdelabError(f"invalid YAML: {getattr(e, 'problem', e)}", path=path,
                          line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise SdelabError("the YAML is nested too deeply", path=path) from None
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
            msg = err["msg"].removeprefix("Value error, ")  # a validator's own message says what is wrong
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
