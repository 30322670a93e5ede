"""Data-parallel training, proven on CPU: `accelerate launch` with two processes (gloo) trains a cell of the tiny
model with the same global batch as one process, and gives the same loss curve, the same adapter and the same
predictions; only the main process writes the run folder (a write from another process is an error by
construction: fileio.only_main); a run killed mid-training resumes under two processes to the same adapter."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # real processes

ACCELERATE = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
TWO = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
       "--dynamo_backend", "no", "--main_process_port", "0", "-m", "sdelab"]  # (--multi_gpu without a GPU: gloo)
ONE = [sys.executable, "-m", "sdelab"]


def study(tmp_path, model_dir, task_yaml, out, epochs=12):
    # 24 examples in batches of 6: three per process; every batch has a different length mix, so the
    # processes' shares carry different numbers of labelled tokens (the weighting must make that exact)
    s = {"name": out, "task": str(task_yaml), "model": str(model_dir), "designs": ["es-sde"], "train_sizes": [24],
         "seeds": [0], "output_dir": str(tmp_path / out),
         "train": {"epochs": epochs, "batch_size": 6, "max_length": 128, "precision": "fp32",
                   "lr": 1e-3},
         "eval": {"batch_size": 4, "max_new_tokens": 3}}
    p = tmp_path / f"{out}.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def run(cmd, *args, env=None):
    e = {**os.environ, "PYTHONUNBUFFERED": "1", "SDELAB_THREADS": "1", **(env or {})}
    r = subprocess.run([*cmd, *args], capture_output=True, text=True, env=e, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def cell(out: Path) -> Path:
    done = [p for p in out.iterdir() if (p / "metrics.json").exists()]
    assert len(done) == 1, list(out.iterdir())
    return done[0]


def curve(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "train_log.jsonl").read_text().splitlines()]


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter" / "adapter_model.safetensors")


def same_training(a: Path, b: Path, tol=2e-4):
    ca, cb = curve(a), curve(b)
    assert len(ca) == len(cb) and len(ca) > 4, (ca, cb)
    assert max(abs(x - y) for x, y in zip(ca, cb)) < tol, list(zip(ca, cb))
    assert ca[-1] < ca[0]  # it learned
    wa, wb = adapter(a), adapter(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=tol, rtol=1e-3), (k, (wa[k] - wb[k]).abs().max())
    assert any(float(w.abs().max()) > 0 for k, w in wa.items() if "lora_B" in k)  # trained, not the init


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    from conftest import write_tiny_task
    base = tmp_path_factory.mktemp("ddp")
    task = write_tiny_task(base / "task")
    one = run(ONE, "run", str(study(base, tiny_model_dir, task, "one")))
    two = run(TWO, "run", str(study(base, tiny_model_dir, task, "two")))
    return base, task, one, two


def test_two_processes_train_as_one(runs):
    base, _, _, log = runs
    a, b = cell(base / "one"), cell(base / "two")
    assert a.name.rsplit("__", 1)[1] == b.name.rsplit("__", 1)[1]  # the same cell: processes are not in its id
    same_training(a, b)
    ma, mb = json.loads((a / "manifest.json").read_text()), json.loads((b / "manifest.json").read_text())
    assert (ma["processes"], mb["processes"]) == (1, 2) and mb["device"] == "cpu"
    for k in ("steps", "examples", "tokens", "trained_tokens"):  # counted over both processes' shares
        assert ma["train"][k] == mb["train"][k], k
    pa = [json.loads(x)["raw"] for x in (a / "predictions.jsonl").read_text().splitlines()]
    pb = [json.loads(x)["raw"] for x in (b / "predictions.jsonl").read_text().splitlines()]
    assert pa == pb


def test_only_the_main_process_writes(runs):
    base, _, _, log = runs
    out = base / "two"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [cell(out).name, "study.yaml", "table.md"])
    assert not list(out.glob("*.partial"))
    assert log.count("training on 24 examples") == 1, log  # the other process logs nothing of its own
    assert "only the main process writes" not in log


def test_resume_under_two_processes(runs, tiny_model_dir):
    base, task, _, _ = runs
    p = study(base, tiny_model_dir, task, "killed")
    out = base / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SDELAB_THREADS": "1"}
    proc = subprocess.Popen([*TWO, "run", str(p), "--checkpoint-every", "0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    t0 = time.time()
    while not list(out.glob("*.partial/checkpoint/train_state.pt")):
        assert proc.poll() is None and time.time() - t0 < 600, "no checkpoint before the run ended"
        time.sleep(0.01)
    everyone = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    for pid in everyone:  # the launcher and both workers (torchrun gives its workers sessions of their own)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in everyone):
        time.sleep(0.01)
    assert not [p for p in out.glob("*/metrics.json") if ".partial" not in p.parent.name], "killed too late"
    log = run(TWO, "run", str(p), "--checkpoint-every", "0")
    assert "resuming from the interrupted run's checkpoint" in log, log
    same_training(cell(base / "one"), cell(out))

