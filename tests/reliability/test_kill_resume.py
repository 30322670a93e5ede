"""kill -9 at several moments of a study, then run it again: finished cells are kept (not redone), the
interrupted one resumes from its last training checkpoint and its evaluation sets already scored, nothing is
recorded twice, and the report equals that of an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import without_cost

pytestmark = pytest.mark.slow  # real processes killed mid-study


def study(tmp_path, model_dir, task_yaml, out):
    s = {"name": "kill", "task": str(task_yaml), "model": str(model_dir), "designs": ["es-sde", "es-sde+inst-last"],
         "train_sizes": [24], "seeds": [0, 1], "output_dir": str(tmp_path / out),
         "train": {"epochs": 15, "batch_size": 4, "max_length": 128, "precision": "fp32"},
         "eval": {"batch_size": 2, "max_new_tokens": 3}}
    p = tmp_path / f"{out}.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def sdelab(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "sdelab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, **kw)


def kill_when(proc, condition, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("condition never met")


def finished(out: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/metrics.json") if ".partial" not in str(p)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir):
    """The report of the same study run without interruption."""
    from conftest import write_tiny_task
    base = tmp_path_factory.mktemp("uninterrupted")
    task_yaml = write_tiny_task(base / "task")
    p = study(base, tiny_model_dir, task_yaml, "aaa")
    assert subprocess.run([sys.executable, "-m", "sdelab", "run", str(p)], capture_output=True).returncode == 0
    assert subprocess.run([sys.executable, "-m", "sdelab", "report", str(base / "aaa")],
                          capture_output=True).returncode == 0
    return without_cost((base / "aaa" / "report.md").read_text().replace(str(base / "aaa"), "X"))


@pytest.mark.parametrize("moment", ["startup", "training", "checkpoint", "evaluation", "evaluation_set",
                                    "between_cells"])
def test_kill_9_then_resume(tmp_path, tiny_model_dir, uninterrupted, moment):
    from conftest import write_tiny_task
    tiny_task_yaml = write_tiny_task(tmp_path / "task")
    p = study(tmp_path, tiny_model_dir, tiny_task_yaml, "bbb")
    out = tmp_path / "bbb"
    conditions = {
        # reading and tokenizing: the run has started (study.yaml copied) but no cell folder exists yet
        "startup": lambda: (out / "study.yaml").exists(),
        # the second cell is mid-training: its loss log exists inside the .partial folder
        "training": lambda: len(finished(out)) == 1 and any(out.glob("*.partial/train_log.jsonl")),
        # a cell's adapter is saved (training done) but its predictions are not
        # the second cell has saved a training checkpoint (after every optimizer step here)
        "checkpoint": lambda: len(finished(out)) == 1 and any(out.glob("*.partial/checkpoint/train_state.pt")),
        "evaluation": lambda: any(out.glob("*.partial/adapter/adapter_config.json")),
        # one of the two evaluation sets is scored and kept
        "evaluation_set": lambda: any(out.glob("*.partial/eval/000.json")),
        "between_cells": lambda: len(finished(out)) == 2,
    }
    proc = sdelab("run", str(p), "--checkpoint-every", "0")
    assert kill_when(proc, conditions[moment]), "the study ended before the kill"
    before = finished(out)
    assert len(before) < 4
    kept = moment in ("checkpoint", "evaluation_set")
    r = subprocess.run([sys.executable, "-m", "sdelab", "run", str(p), "--checkpoint-every", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("resuming from the interrupted run's" in r.stdout) >= kept
    after = finished(out)
    assert len(after) == 4 and not list(out.glob("*.partial"))
    assert all(after[k] == v for k, v in before.items()), "a finished cell was redone"
    assert r.stdout.count("finished earlier, skipped") == len(before)
    # no cell recorded twice, and the results equal an uninterrupted run's
    assert subprocess.run([sys.executable, "-m", "sdelab", "report", str(out)], capture_output=True).returncode == 0
    assert without_cost((out / "report.md").read_text().replace(str(out), "X")) == uninterrupted


def test_kill_9_during_report(tmp_path, tiny_model_dir, uninterrupted):
    from conftest import write_tiny_task
    p = study(tmp_path, tiny_model_dir, write_tiny_task(tmp_path / "task"), "bbb")
    out = tmp_path / "bbb"
    assert subprocess.run([sys.executable, "-m", "sdelab", "run", str(p)], capture_output=True).returncode == 0
    proc = sdelab("report", str(out))
    kill_when(proc, lambda: (out / "plots").exists())
    assert subprocess.run([sys.executable, "-m", "sdelab", "report", str(out)], capture_output=True).returncode == 0
    assert without_cost((out / "report.md").read_text().replace(str(out), "X")) == uninterrupted
