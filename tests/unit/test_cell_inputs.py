"""A cell's id holds what it reads besides its settings (study/grid.py `inputs`): the content hash of every data
file it reads, and the model weights' fingerprint from their contents, not their names or sizes."""
import shutil

import yaml

from sdelab.config import load_study
from sdelab.models.catalog import CATALOG, model_fingerprint
from sdelab.study.grid import changed, expand_all


def study(tmp_path, model, task_yaml, **extra):
    s = {"name": "ids", "task": str(task_yaml), "model": str(model), "designs": ["es-sde"], "train_sizes": [6],
         "output_dir": str(tmp_path / "runs"), **extra}
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(s))
    return expand_all(load_study(p)[0], tmp_path)[0]


def test_every_file_a_cell_reads_is_hashed(tmp_path, tiny_model_dir, tiny_task_yaml):
    cell = study(tmp_path, tiny_model_dir, tiny_task_yaml).cells[0]
    assert set(cell.config["inputs"]["data"]) == {"tiny-reviews:task.yaml", "tiny-reviews:train",
                                                  "tiny-reviews:test_id", "tiny-reviews:test_ood"}
    assert all(len(h) == 64 for h in cell.config["inputs"]["data"].values())
    only = study(tmp_path, tiny_model_dir, tiny_task_yaml, eval={"sets": ["test_id"]}).cells[0]
    assert set(only.config["inputs"]["data"]) == {"tiny-reviews:task.yaml", "tiny-reviews:train",
                                                  "tiny-reviews:test_id"}


def test_an_edited_task_file_changes_the_id(tmp_path, tiny_model_dir, tiny_task_yaml):
    before = study(tmp_path, tiny_model_dir, tiny_task_yaml).cells[0]
    tiny_task_yaml.write_text(tiny_task_yaml.read_text().replace("train: {path: train.jsonl}",
                                                                 "train: {path: train.jsonl, rows: '0:20'}"))
    after = study(tmp_path, tiny_model_dir, tiny_task_yaml).cells[0]
    assert changed(before.config, after.config) == ["inputs.data.tiny-reviews:task.yaml"]


def test_an_edited_data_file_changes_the_id_and_says_where(tmp_path, tiny_model_dir, tiny_task_yaml):
    before = study(tmp_path, tiny_model_dir, tiny_task_yaml).cells[0]
    test = tiny_task_yaml.parent / "test_ood.jsonl"
    test.write_text(test.read_text().replace("positive", "negative", 1))
    after = study(tmp_path, tiny_model_dir, tiny_task_yaml).cells[0]
    assert after.id != before.id
    assert changed(before.config, after.config) == ["inputs.data.tiny-reviews:test_ood"]


def test_weights_are_fingerprinted_by_content(tmp_path, tiny_model_dir):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_model_dir, a)
    shutil.copytree(tiny_model_dir, b)
    assert model_fingerprint(str(a)) == model_fingerprint(str(b))  # where a folder is does not matter
    w = next(b.glob("*.safetensors"))
    data = bytearray(w.read_bytes())
    data[-1] ^= 1  # one bit of one weight: same name, same size
    w.write_bytes(bytes(data))
    assert model_fingerprint(str(a)) != model_fingerprint(str(b))
    assert model_fingerprint("smollm2-135m") == CATALOG["smollm2-135m"].sha256  # verified at install, not re-read
    assert model_fingerprint(str(tmp_path / "nowhere.gguf")) == "missing"
