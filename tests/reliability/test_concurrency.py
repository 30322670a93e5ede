"""Two real processes on one output folder (the same study started twice, or two shards): every cell is trained
exactly once and finished whole, neither process crashes, and a killed process leaves no cell stuck. Changing a
data file or the model's weights gives new cells (never "finished earlier, skipped"), and the log says why."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_kill_resume import kill_when, sdelab

pytestmark = pytest.mark.slow  # real processes

CELLS = 4


def study(tmp_path, model_dir, task_yaml, epochs=6):
    s = {"name": "conc", "task": str(task_yaml), "model": str(model_dir), "designs": ["es-sde", "es-sde+inst-last"],
         "train_sizes": [24], "seeds": [0, 1], "output_dir": str(tmp_path / "runs"),
         "train": {"epochs": epochs, "batch_size": 4, "max_length": 128, "precision": "fp32"},
         "eval": {"batch_size": 4, "max_new_tokens": 3}}
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def trained(log: str) -> list[str]:
    """The cell folders a process trained, from its log lines '[i/n] <folder>: training on ...'."""
    return [line.split("] ", 1)[1].split(":", 1)[0] for line in log.splitlines()
            if line.startswith("[") and ": training on " in line]


def check_folder(out: Path):
    done = sorted(p for p in out.iterdir() if (p / "metrics.json").exists())
    assert len(done) == CELLS, [p.name for p in out.iterdir()]
    assert not list(out.glob("*.partial")), "a cell was left half-written"
    for p in done:
        for f in ("config.yaml", "manifest.json", "train_log.jsonl", "predictions.jsonl", "item_stats.json"):
            assert (p / f).stat().st_size > 0, (p.name, f)
        json.loads((p / "metrics.json").read_text())
    return done


@pytest.mark.parametrize("how", ["same-study-twice", "two-shards"])
def test_two_processes_share_one_folder(tmp_path, tiny_model_dir, how):
    from conftest import write_tiny_task
    p = study(tmp_path, tiny_model_dir, write_tiny_task(tmp_path / "task"))
    extra = [["--shard", "0/2"], ["--shard", "1/2"]] if how == "two-shards" else [[], []]
    procs = [sdelab("run", str(p), *e) for e in extra]
    logs = [proc.communicate(timeout=600)[0] for proc in procs]
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log
        assert "Traceback" not in log, log
    check_folder(tmp_path / "runs")
    both = trained(logs[0]) + trained(logs[1])
    assert len(both) == CELLS and len(set(both)) == CELLS, both  # each cell trained once, by one process
    if how == "same-study-twice":  # the second process skipped what the first held or had finished
        skipped = sum(log.count("another process is running it") + log.count("finished by another process")
                      + log.count("finished earlier, skipped") for log in logs)
        assert skipped == CELLS, logs
    # running again afterwards redoes nothing
    r = subprocess.run([sys.executable, "-m", "sdelab", "run", str(p)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("finished earlier, skipped") == CELLS, r.stdout + r.stderr


def test_a_killed_process_leaves_no_cell_stuck(tmp_path, tiny_model_dir):
    from conftest import write_tiny_task
    p = study(tmp_path, tiny_model_dir, write_tiny_task(tmp_path / "task"), epochs=15)
    out = tmp_path / "runs"
    proc = sdelab("run", str(p), "--checkpoint-every", "0")
    assert kill_when(proc, lambda: any(out.glob("*.partial/checkpoint/train_state.pt")))
    r = subprocess.run([sys.executable, "-m", "sdelab", "run", str(p), "--checkpoint-every", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "another process is running it" not in r.stdout  # the dead process's claim went with it
    assert "resuming from the interrupted run's checkpoint" in r.stdout
    check_folder(out)


def test_changed_data_or_weights_give_new_cells_and_say_why(tmp_path, tiny_model_dir):
    import shutil

    from conftest import write_tiny_task
    task_yaml = write_tiny_task(tmp_path / "task")
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    s = yaml.safe_load(study(tmp_path, model, task_yaml, epochs=1).read_text())
    s.update(designs=["es-sde"], seeds=[0])
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(s))

    def run():
        r = subprocess.run([sys.executable, "-m", "sdelab", "run", str(p)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    run()
    assert "finished earlier, skipped" in run()
    # the same training file, one example's label changed
    train = next(f for f in task_yaml.parent.iterdir() if f.name.startswith("train"))
    lines = train.read_text().splitlines()
    row = json.loads(lines[0])
    row["label"] = next(r["label"] for r in map(json.loads, lines) if r["label"] != row["label"])
    train.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    log = run()
    assert "finished earlier" not in log and "runs again because inputs.data." in log, log
    # the same weights' shapes, one value changed (same file size: only the contents tell)
    from safetensors.torch import load_file, save_file
    w = next(model.glob("*.safetensors"))
    tensors = load_file(w)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1e-3
    save_file(tensors, w, metadata={"format": "pt"})
    log = run()
    assert "finished earlier" not in log and "runs again because inputs.model changed" in log, log
    cells = [c for c in (tmp_path / "runs").iterdir() if (c / "metrics.json").exists()]
    assert len(cells) == 3  # the two older ones stay, superseded in the report
    r = subprocess.run([sys.executable, "-m", "sdelab", "report", str(tmp_path / "runs")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
