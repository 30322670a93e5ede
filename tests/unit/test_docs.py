import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_design_options_doc_is_current():
    spec = importlib.util.spec_from_file_location("design_doc", ROOT / "tools" / "design_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "docs" / "design-options.md").read_text() == mod.build(), \
        "docs/design-options.md is stale: run python tools/design_doc.py"
