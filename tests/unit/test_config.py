import pytest

from sdelab.config import load_study
from sdelab.errors import SdelabError


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: s\ntask: demo-reviews\ntrain:\n  epochs: 1\n  lerning_rate: 0.1\n")
    with pytest.raises(SdelabError) as e:
        load_study(p)
    msg = str(e.value)
    assert "s.yaml:5" in msg and "train.lerning_rate" in msg and "unknown key" in msg


def test_wrong_type_is_named(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: s\ntask: demo-reviews\nseeds: [0, one]\n")
    with pytest.raises(SdelabError, match=r"s.yaml:3: field 'seeds.1'"):
        load_study(p)


def test_top_level_did_you_mean(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: s\ntask: demo-reviews\ndesign: [inst-first]\n")
    with pytest.raises(SdelabError, match=r"did you mean 'designs'"):
        load_study(p)


def test_quickstart_study_is_valid():
    from pathlib import Path
    study, _ = load_study(Path(__file__).resolve().parents[2] / "studies" / "quickstart.yaml")
    assert len(study.designs) >= 2 and study.model == "smollm2-135m"


def test_a_lora_sweep_without_lora_is_refused(tmp_path, capsys):
    from sdelab.cli import main
    for extra in ("train: {lora: null}", "modeling: encoder"):
        p = tmp_path / "s.yaml"
        p.write_text(f"name: x\ntask: demo-reviews\nsweep: {{lora.r: [4, 8]}}\n{extra}\n")
        assert main(["run", str(p), "--dry-run", "--no-cost"]) == 2
        assert "cannot sweep lora.r" in capsys.readouterr().err


def test_freeze_embeddings_only_with_full_fine_tuning(tmp_path, capsys):
    from sdelab.cli import main
    p = tmp_path / "s.yaml"
    for extra, ok in (("", False), ("modeling: [encoder, generative]", False), ("modeling: encoder", True),
                      ("train: {lora: null, freeze_embeddings: true}", True)):
        train = "" if "train:" in extra else "train: {freeze_embeddings: true}\n"
        p.write_text(f"name: x\ntask: demo-reviews\n{train}{extra}\n")
        if ok:
            load_study(p)
        else:
            assert main(["run", str(p), "--dry-run", "--no-cost"]) == 2
            assert "freeze_embeddings applies to full fine-tuning" in capsys.readouterr().err
