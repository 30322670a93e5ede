"""The published paper results regenerate from the committed run folders alone, without training: a copy of
each study's run folder gives exactly the committed docs/results/<study>/report.md."""
import shutil
from pathlib import Path

import pytest

from sdelab.report.build import build_report

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = sorted(p.parent.name for p in (ROOT / "docs" / "results").glob("*/report.md"))


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_report_regenerates_from_the_run_folders(tmp_path, name):
    runs = ROOT / "runs" / name
    assert runs.is_dir(), f"docs/results/{name} is published but runs/{name} is not committed"
    copy = tmp_path / name
    # committed predictions are part of the record (the degenerate gate reads old cells' answer spread from them)
    shutil.copytree(runs, copy, ignore=shutil.ignore_patterns("adapter", "*.partial", "report.*", "plots"))
    md, _ = build_report(copy)
    assert md.read_text() == (ROOT / "docs" / "results" / name / "report.md").read_text(), \
        f"docs/results/{name}/report.md is stale: run make results"
