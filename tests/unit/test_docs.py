import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_design_options_doc_is_current():
    spec = importlib.util.spec_from_file_location("design_doc", ROOT / "tools" / "design_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "docs" / "design-options.md").read_text() == mod.build(), \
        "docs/design-options.md is stale: run python tools/design_doc.py"


def test_readme_study_example_is_valid(tmp_path, capsys):
    import re

    from sdelab.cli import main
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## A study\n\n```yaml\n(.*?)```", text, re.S).group(1)
    p = tmp_path / "study.yaml"
    p.write_text(block)
    assert main(["run", str(p), "--dry-run", "--no-cost"]) == 0
    out = capsys.readouterr().out
    # 3 named designs + es-sde and its one-factor variants (es-sde repeated would be refused) ... x 2 sizes x 2 seeds
    assert "cells" in out and "untuned-k4" in out


def test_every_claim_the_docs_cite_is_checked_and_every_checked_claim_is_cited():
    import re

    from sdelab.report.claims import load_claims
    ids = {c.id for c in load_claims(ROOT / "docs" / "results" / "claims.yaml")}
    cited = set()
    for doc in ("design-options.md", "modeling.md"):
        cited |= set(re.findall(r"`((?:sde|stm|genft)-[a-z0-9-]+)`", (ROOT / "docs" / doc).read_text()))
    assert cited - ids == set(), "cited in docs but not in docs/results/claims.yaml"
    assert ids - cited == set(), "in docs/results/claims.yaml but no doc cites it"
    findings = ROOT / "docs" / "results" / "findings.md"
    if findings.exists():
        text = findings.read_text()
        assert all(f"| `{i}` |" in text for i in ids), "docs/results/findings.md is stale: run make results"
