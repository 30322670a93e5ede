"""The package's imports flow one way down the pipeline (tasks -> design -> models -> train/infer -> metrics ->
study -> report -> cli, with the shared files at the bottom): no import from a lower stage to a higher one or
sideways between two stages of one rank, no import cycle between files, no private name imported from another
module. Read from the source (ast), so a function-local import counts like a top-level one."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "sdelab"
RANKS = [("errors",), ("__init__", "fileio", "yamlio"), ("tasks",), ("design",), ("models",), ("infer", "train"),
         ("metrics",), ("config", "results"), ("study",), ("report",), ("cli",), ("__main__",)]
RANK = {stage: i for i, stages in enumerate(RANKS) for stage in stages}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> dict[str, list[tuple[str, list[str]]]]:
    """module -> [(imported module, names taken from it)] for every sdelab import in the module."""
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    out = {}
    for name, path in modules.items():
        found = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(a.name, []) for a in node.names if a.name.startswith("sdelab")]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sdelab"):
                for a in node.names:  # 'from sdelab import fileio' imports the module sdelab.fileio
                    sub = f"{node.module}.{a.name}"
                    found.append((sub, []) if sub in modules else (node.module, [a.name]))
        out[name] = found
    return out


def test_imports_flow_down_the_pipeline():
    wrong = []
    for mod, imports in _imports().items():
        a = _stage(mod)
        for target, _ in imports:
            b = _stage(target)
            if RANK[b] > RANK[a] or (RANK[b] == RANK[a] and a != b):
                wrong.append(f"{mod} -> {target}")
    assert not wrong, "imports against the pipeline: " + ", ".join(sorted(wrong))


def test_no_import_cycle():
    graph = {m: {t for t, _ in imps if t != m} for m, imps in _imports().items()}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for t in graph.get(m, ()):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t in graph and not state.get(t):
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m, [m])


def test_no_private_name_from_another_module():
    taken = [f"{mod} takes {n} from {t}" for mod, imps in _imports().items() for t, names in imps
             for n in names if n.startswith("_") and not n.startswith("__") and t != mod]
    assert not taken, "; ".join(taken)
