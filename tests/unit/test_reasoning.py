"""Rationale sources for CoT / R-CoT: a data column, a local teacher model, an OpenAI-compatible endpoint,
cached on disk; a study that asks for CoT without any source fails before training."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from sdelab.cli import main
from sdelab.config import RationaleSource
from sdelab.study.rationales import attach_rationales
from sdelab.errors import SdelabError
from sdelab.tasks import load_task_file


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SDELAB_CACHE", str(tmp_path / "cache"))


def study(tmp_path, model_dir, task_yaml, **extra):
    s = {"name": "cot", "task": str(task_yaml), "model": str(model_dir), "designs": ["es-sde+cot"],
         "train_sizes": [6], "seeds": [0], "output_dir": str(tmp_path / "runs"),
         "train": {"epochs": 1, "batch_size": 3, "max_length": 256, "precision": "fp32"},
         "eval": {"max_new_tokens": 8, "batch_size": 4}}
    s.update(extra)
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def test_cot_without_rationale_source_fails_before_training(tmp_path, tiny_model_dir, tiny_task_yaml, capsys):
    p = study(tmp_path, tiny_model_dir, tiny_task_yaml)
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "needs a rationale for every training example" in err and "train.jsonl:1" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_rationale_column(tmp_path, tiny_model_dir, tiny_task_yaml):
    f = tiny_task_yaml.parent / "train.jsonl"
    rows = [json.loads(x) for x in f.read_text().splitlines()]
    f.write_text("".join(json.dumps({**r, "why": f"because {r['text'][:10]}"}) + "\n" for r in rows))
    p = study(tmp_path, tiny_model_dir, tiny_task_yaml, rationales={"column": "why"})
    assert main(["run", str(p)]) == 0
    d = next((tmp_path / "runs").glob("es-sde+cot*"))
    assert json.loads((d / "metrics.json").read_text())["eval"]["test_id"]["n"] == 4


def test_local_teacher_writes_once_then_cache(tmp_path, tiny_model_dir, tiny_task_yaml, monkeypatch):
    task = load_task_file(tiny_task_yaml)
    ex = task.load("train", Path("."))[:3]
    src = RationaleSource(teacher=str(tiny_model_dir), max_new_tokens=8)
    out = attach_rationales(task, ex, src, need=True)
    assert all(e.rationale for e in out)
    assert len(list((tmp_path / "cache" / "rationales").glob("*.json"))) == 3
    import sdelab.study.rationales as r
    monkeypatch.setattr(r, "_generate", lambda *a: pytest.fail("cached rationales must not be regenerated"))
    assert [e.rationale for e in attach_rationales(task, ex, src, need=True)] == [e.rationale for e in out]


def test_openai_compatible_endpoint(tmp_path, tiny_task_yaml):
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            out = json.dumps({"choices": [{"message": {"content": "Because the review says so."}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        task = load_task_file(tiny_task_yaml)
        ex = task.load("train", Path("."))[:2]
        src = RationaleSource(endpoint=f"http://127.0.0.1:{server.server_port}/v1", model="teacher-x")
        out = attach_rationales(task, ex, src, need=True)
    finally:
        server.shutdown()
    assert [e.rationale for e in out] == ["Because the review says so."] * 2
    assert seen[0][0] == "/v1/chat/completions" and seen[0][1]["model"] == "teacher-x"
    assert ex[0].fields["text"] in seen[0][1]["messages"][0]["content"]


def test_unreachable_endpoint_is_a_clear_error(tiny_task_yaml):
    task = load_task_file(tiny_task_yaml)
    src = RationaleSource(endpoint="http://127.0.0.1:9/v1", model="m")
    with pytest.raises(SdelabError, match="rationale endpoint .* failed"):
        attach_rationales(task, task.load("train", Path("."))[:1], src, need=True)
