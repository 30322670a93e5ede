"""Find tasks by name: the built-in YAML files of the package, or a path to a user's YAML file."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sdelab.errors import SdelabError, did_you_mean
from sdelab.tasks.task import Task, TaskSpec
from sdelab.yamlio import load_yaml, validate

BUILTIN_DIR = Path(__file__).parent / "builtin"


@lru_cache(maxsize=None)
def builtin_tasks() -> dict[str, Path]:
    out = {}
    for p in sorted(BUILTIN_DIR.glob("*.yaml")):
        data, _ = load_yaml(p)
        out[data["name"]] = p
    return out


def load_task_file(path: str | Path) -> Task:
    path = Path(path)
    data, node = load_yaml(path)
    if not isinstance(data, dict):
        raise SdelabError("a task file must be a mapping", path=path)
    return Task(validate(TaskSpec, data, path, node), yaml_path=path.resolve())


def get_task(name: str, base_dir: Path | None = None) -> Task:
    """A built-in task name, or a path to a task YAML (relative to `base_dir`, then the working folder)."""
    if name.endswith((".yaml", ".yml")):
        for cand in ([base_dir / name] if base_dir else []) + [Path(name)]:
            if cand.exists():
                return load_task_file(cand)
        raise SdelabError(f"task file '{name}' not found")
    known = builtin_tasks()
    if name not in known:
        raise SdelabError(f"unknown task '{name}'" + did_you_mean(name, list(known)))
    return load_task_file(known[name])
