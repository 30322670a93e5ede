"""Same seed, same numbers: two runs of the same cells give identical metrics, predictions and loss curves."""
import json

import pytest
import yaml

from sdelab.cli import main

pytestmark = pytest.mark.slow  # whole studies on the tiny model, twice


def test_two_runs_identical(tmp_path, tiny_model_dir, tiny_task_yaml):
    outs = []
    for name in ("one", "two"):
        s = {"name": "det", "task": str(tiny_task_yaml), "model": str(tiny_model_dir),
             "designs": ["es-sde", "es-sde+k2+random"], "train_sizes": [12], "seeds": [3],
             "output_dir": str(tmp_path / name),
             "train": {"epochs": 3, "batch_size": 4, "lr": 5e-3, "max_length": 192, "precision": "fp32",
                       "lora": {"dropout": 0.1}},
             "eval": {"batch_size": 3, "max_new_tokens": 4}}
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump(s))
        assert main(["run", str(p)]) == 0
        outs.append(tmp_path / name)
    cells = sorted(d.name for d in outs[0].glob("*__*") if d.is_dir())
    assert len(cells) == 2 and cells == sorted(d.name for d in outs[1].glob("*__*") if d.is_dir())
    for c in cells:
        for f in ("metrics.json", "predictions.jsonl", "config.yaml"):
            assert (outs[0] / c / f).read_text() == (outs[1] / c / f).read_text(), f
        curves = [[(p["step"], p["loss"]) for p in map(json.loads, (o / c / "train_log.jsonl").read_text().split(
            "\n")[:-1])] for o in outs]
        assert curves[0] == curves[1]
        m = [json.loads((o / c / "manifest.json").read_text()) for o in outs]
        assert m[0]["threads"] == m[1]["threads"] and m[0]["versions"] == m[1]["versions"]
