"""`sdelab claims`: paired effects with intervals and verdicts, read from committed run folders."""
from pathlib import Path

import pytest
import yaml

from sdelab import fileio
from sdelab.cli import main
from sdelab.report.claims import verdict

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "runs" / "demo-grid"  # committed: es-sde beats es-sde+inst-last by ~0.28, but inst-last sits at the
# majority class (0.35): its rows are 'not learned', whatever the difference


def write(tmp_path, claims):
    p = tmp_path / "claims.yaml"
    p.write_text(yaml.safe_dump({"claims": claims}, sort_keys=False))
    return p


def test_verdicts():
    assert verdict("a > b", 0.01, 0.2, 0.02) == "holds"
    assert verdict("a > b", -0.2, -0.01, 0.02) == "fails"
    assert verdict("a > b", -0.1, 0.1, 0.02) == "inconclusive"
    assert verdict("a < b", -0.2, -0.01, 0.02) == "holds"
    assert verdict("a = b", -0.01, 0.015, 0.02) == "holds"
    assert verdict("a = b", 0.01, 0.3, 0.02) == "fails"
    assert verdict("a = b", -0.05, 0.1, 0.02) == "inconclusive"


@pytest.mark.skipif(not GRID.exists(), reason="the committed demo-grid run folder is absent")
def test_claims_from_a_committed_study(tmp_path, capsys):
    p = write(tmp_path, [
        {"id": "first", "paper": "SDE", "claim": "Inst-first beats Inst-last", "runs": str(GRID),
         "a": "es-sde", "b": "es-sde+inst-last", "expect": "a > b"},
        {"id": "reversed", "paper": "SDE", "claim": "the opposite", "runs": str(GRID),
         "a": {"design": "es-sde", "size": "80"}, "b": {"design": "es-sde+inst-last"}, "expect": "a < b",
         "sets": ["test_id"]},
        {"id": "missing", "paper": "SDE", "claim": "a study not run", "runs": str(tmp_path / "nothing"),
         "a": "es-sde", "b": "es-sde+num"},
        {"id": "half", "paper": "SDE", "claim": "an arm missing", "runs": str(GRID),
         "a": "es-sde", "b": "es-sde+ou"},
    ])
    out = tmp_path / "findings.md"
    assert main(["claims", str(p), "--out", str(out), "--bootstrap", "200"]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| SDE |")]
    first = [r for r in rows if "Inst-first beats" in r]
    assert len(first) == 4 and all(r.endswith("| not learned |") for r in first)  # 2 sizes x 2 sets
    assert all("b: 0.3" in r and "not above majority class 0.350" in r for r in first)
    assert "| test_id (ID) | 80 | -0.287 [" not in out.read_text() and "| test_id (ID) | 80 | +0.287 [" in first[2]
    assert "seeds x items (2 seeds" in first[2]  # two seeds: the interval carries the study's seed spread
    assert [r.split(" | ")[-1] for r in rows if "the opposite" in r] == ["not learned |"]
    assert [r.split(" | ")[-1] for r in rows if "a study not run" in r] == ["not run |"]
    half = [r for r in rows if "an arm missing" in r]  # every set and size of the arm that ran, none scored
    assert len(half) == 4 and all("no es-sde+ou yet" in r and r.endswith("| not run |") for r in half)
    assert "0 holds, 0 fails, 0 inconclusive, 5 not learned, 0 degenerate, 0 no floor, 5 not run" in out.read_text()


def test_a_bad_claims_file_names_the_line(tmp_path, capsys):
    p = write(tmp_path, [{"id": "x", "paper": "SDE", "claim": "c", "runs": "r", "a": "d1", "b": "d2",
                          "expect": "a >> b"}])
    assert main(["claims", str(p)]) == 2
    err = capsys.readouterr().err
    assert "claims.yaml:" in err and "expect" in err


FAMILY = ROOT / "runs" / "family-sentiment"  # committed: es-sde at n=80 and the untuned model (k=0)


@pytest.mark.skipif(not FAMILY.exists(), reason="the committed family-sentiment run folder is absent")
def test_a_trained_arm_against_the_untuned_model(tmp_path):
    p = write(tmp_path, [{"id": "ft", "paper": "GenFT", "claim": "fine-tuning beats the untuned model",
                          "runs": str(FAMILY), "a": "es-sde", "b": {"design": "es-sde", "size": "untuned k=0"},
                          "sets": ["amazon", "sst2"]}])
    out = tmp_path / "findings.md"
    assert main(["claims", str(p), "--out", str(out), "--bootstrap", "200"]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| GenFT |")]
    assert len(rows) == 2 and all("| 80 vs untuned k=0 |" in r for r in rows)


def test_a_correlation_with_a_constant_signal_is_degenerate_not_unrun(tmp_path):
    """A base model that scores 0 in context with every design (one stray -0.0002 is 0 too) has been measured: the
    claim cannot be decided from it (degenerate, with the reason), which differs from a study with no diagnostics at
    all (not run). 'Does not predict' holds only when rho's whole interval lies below the bound."""
    from types import SimpleNamespace

    import numpy as np

    from sdelab.report.claims import Claim, _correlation
    from sdelab.report.records import Group
    designs = [f"d{i}" for i in range(12)]
    cells = [SimpleNamespace(size="100", untuned=None, eval={"val": SimpleNamespace(primary="accuracy")})
             for _ in designs]
    groups = {}
    for i, d in enumerate(designs):
        score = 0.6 + 0.02 * i
        groups[(d, "100", "val")] = Group(values=[score], errors=[0.0], majority=[0.3], primary="accuracy",
                                          items={(0, str(j)): np.array([float(j < 100 * score)]) for j in range(100)})
    claim = Claim(id="c", paper="SDE", claim="k=0 does not predict", runs=".", kind="correlation")
    assert _correlation(claim, tmp_path, cells, groups, {"val": "in_domain"}, "m")[0]["verdict"] == "not run"
    fileio.write_json(tmp_path / "diagnostics.json", {"ks": [0], "designs": {
        d: {"prompt_ppl": 7.0 + i, "output_ppl": 2.0 - 0.1 * i + 0.3 * (i % 3), "icl": {"0": {"val": -0.0002 if i == 1
                                                                                              else 0.0}}}
        for i, d in enumerate(designs)}})
    row = _correlation(claim, tmp_path, cells, groups, {"val": "in_domain"}, "m")[0]
    assert row["verdict"] == "degenerate" and "is 0.000 for all 12 designs" in row["result"]
    ppl = claim.model_copy(update={"signal": "-prompt PPL"})  # higher PPL, higher score here: rho = -1 -> holds
    row = _correlation(ppl, tmp_path, cells, groups, {"val": "in_domain"}, "m")[0]
    assert row["verdict"] == "holds" and "rho(-prompt PPL, fine-tuned) = -1.000" in row["result"]
    out = claim.model_copy(update={"signal": "-output PPL"})  # lower output PPL, higher score: it does predict
    row = _correlation(out, tmp_path, cells, groups, {"val": "in_domain"}, "m")[0]
    assert row["verdict"] == "fails", row
