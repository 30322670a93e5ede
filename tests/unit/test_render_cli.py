"""`sdelab render` shows every preset's samples, with trained tokens and token counts."""
import pytest
import yaml

from sdelab.cli import main

from conftest import DATA_ROOT, needs_data

PRESET_DESIGNS = ["es-sde", "heuristic", "inst-first", "inst-last", "no-inst", "es-sde+mi", "es-sde+num",
                  "es-sde+complex", "es-sde+k2", "es-sde+k2+similar", "es-sde+k2+random+bm25"]


def render_study(tmp_path, model_dir, task, designs, **extra):
    s = {"name": "r", "task": task, "model": str(model_dir), "designs": designs, "train_sizes": [50],
         "train": {"max_length": 512}}
    s.update(extra)
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(s, allow_unicode=True))
    return p


def test_render_every_preset_on_the_demo_task(tmp_path, tiny_model_dir, capsys):
    p = render_study(tmp_path, tiny_model_dir, "demo-reviews", PRESET_DESIGNS)
    assert main(["render", str(p), "-n", "2"]) == 0
    out = capsys.readouterr().out
    for d in PRESET_DESIGNS:
        assert f"design {d}" in out
    assert out.count("trained (green)") == 2 * len(PRESET_DESIGNS)


@needs_data("lcqmc")
def test_render_every_preset_on_lcqmc(tmp_path, tiny_model_dir, capsys):
    p = render_study(tmp_path, tiny_model_dir, "lcqmc", PRESET_DESIGNS, data_root=str(DATA_ROOT))
    assert main(["render", str(p), "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "句子1" in out and "标签定义" in out and out.count("trained (green)") == len(PRESET_DESIGNS)


def test_render_shows_truncation(tmp_path, tiny_model_dir, capsys):
    p = render_study(tmp_path, tiny_model_dir, "demo-reviews", ["es-sde"], train={"max_length": 40})
    assert main(["render", str(p), "-n", "3"]) == 0
    import re
    assert re.search(r"[1-9]\d* input tokens truncated \(max_length 40\)", capsys.readouterr().out)
