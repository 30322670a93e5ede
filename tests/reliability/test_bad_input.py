"""Every bad input stops with one message naming the file, the line (or row) and the field, exit status 2, no
traceback, and nothing written as if it had succeeded."""
import json

import pytest
import yaml

from sdelab.cli import main

GOOD = [{"id": str(i), "text": t, "label": lab} for i, (t, lab) in enumerate(
    [("great battery", "positive"), ("broke in a day", "negative"), ("it is fine", "neutral")] * 4)]


def setup(tmp_path, model_dir, *, train_text=None, train_name="train.jsonl", fmt="", task_extra="",
          study_extra=None, family="single_classification", raw_bytes=None):
    d = tmp_path / "task"
    d.mkdir(exist_ok=True)
    path = d / train_name
    if raw_bytes is not None:
        path.write_bytes(raw_bytes)
    else:
        path.write_text(train_text if train_text is not None else "".join(json.dumps(r) + "\n" for r in GOOD))
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOOD[:3]))
    (d / "task.yaml").write_text(f"""name: bad
family: {family}
language: en
inputs: [text]
labels: {{positive: positive, negative: negative, neutral: neutral}}
{task_extra}
templates: [{{name: t, instruction: "Classify.", input: "{{text}}"}}]
splits:
  train: {{path: {train_name}{fmt}}}
  test: {{path: test.jsonl}}
""")
    s = {"name": "bad", "task": str(d / "task.yaml"), "model": str(model_dir), "designs": ["es-sde"],
         "train_sizes": [6], "output_dir": str(tmp_path / "runs"),
         "train": {"epochs": 1, "batch_size": 3, "max_length": 128, "precision": "fp32"}}
    s.update(study_extra or {})
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def fails(p, capsys, *expected):
    code = main(["run", str(p)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") <= 2, err
    for e in expected:
        assert e in err, (e, err)
    runs = p.parent / "runs"
    assert not list(runs.glob("*/metrics.json")) if runs.exists() else True
    return err


def test_malformed_jsonl_line(tmp_path, tiny_model_dir, capsys):
    text = "".join(json.dumps(r) + "\n" for r in GOOD[:3]) + '{"text": "oops", "label": \n'
    fails(setup(tmp_path, tiny_model_dir, train_text=text), capsys, "train.jsonl:4", "malformed JSON")


def test_csv_wrong_column_count(tmp_path, tiny_model_dir, capsys):
    text = "text,label\ngreat,positive\nbad,negative,extra\n"
    fails(setup(tmp_path, tiny_model_dir, train_text=text, train_name="train.csv"), capsys, "train.csv:3",
          "expected 2 columns")


def test_missing_mapped_column(tmp_path, tiny_model_dir, capsys):
    fails(setup(tmp_path, tiny_model_dir, task_extra="columns: {text: review}"), capsys, "train.jsonl:1",
          "field 'text'", "column 'review'")


def test_empty_text(tmp_path, tiny_model_dir, capsys):
    text = "".join(json.dumps(r) + "\n" for r in GOOD[:5]) + json.dumps({"text": " ", "label": "positive"}) + "\n"
    fails(setup(tmp_path, tiny_model_dir, train_text=text), capsys, "train.jsonl:6", "field 'text'", "empty text")


def test_label_outside_label_set(tmp_path, tiny_model_dir, capsys):
    text = "".join(json.dumps(r) + "\n" for r in GOOD[:2]) + json.dumps({"text": "x", "label": "mixed"}) + "\n"
    fails(setup(tmp_path, tiny_model_dir, train_text=text), capsys, "train.jsonl:3", "field 'label'",
          "label 'mixed' is not in the task's label set")


def test_entity_type_not_in_schema(tmp_path, tiny_model_dir, capsys):
    rows = [{"text": "IL-2 binds", "spans": json.dumps([["protein", "IL-2"]])},
            {"text": "T cells", "spans": json.dumps([["cell", "T cells"]])}]
    p = setup(tmp_path, tiny_model_dir, train_text="".join(json.dumps(r) + "\n" for r in rows),
              family="span_extraction", task_extra="targets: {protein: protein}")
    (tmp_path / "task" / "task.yaml").write_text((tmp_path / "task" / "task.yaml").read_text().replace(
        "labels: {positive: positive, negative: negative, neutral: neutral}\n", ""))
    fails(p, capsys, "train.jsonl:2", "field 'spans'", "type 'cell' is not in the task's schema")


def test_aspect_missing_from_the_data(tmp_path, tiny_model_dir, capsys):
    rows = [{"text": "tasty", "food": "1"}]
    p = setup(tmp_path, tiny_model_dir, train_text="".join(json.dumps(r) + "\n" for r in rows), family="multi_aspect",
              task_extra='targets: {food: food, price: price}\nlabel_map: {"1": positive, "-2": unmentioned}')
    fails(p, capsys, "train.jsonl:1", "field 'price'", "missing column")


def test_wrong_encoding(tmp_path, tiny_model_dir, capsys):
    raw = "text\tlabel\n".encode() + "很好\tpositive\n".encode("gbk")
    fails(setup(tmp_path, tiny_model_dir, raw_bytes=raw, train_name="train.tsv"), capsys, "train.tsv:2",
          "not valid UTF-8")


def test_utf8_bom_is_fine(tmp_path, tiny_model_dir, capsys):
    raw = "\ufefftext,label\n".encode() + "".join(f"{r['text']},{r['label']}\n" for r in GOOD).encode()
    p = setup(tmp_path, tiny_model_dir, raw_bytes=raw, train_name="train.csv")
    assert main(["run", str(p), "--dry-run"]) == 0


def test_empty_data_file(tmp_path, tiny_model_dir, capsys):
    fails(setup(tmp_path, tiny_model_dir, train_text=""), capsys, "train.jsonl", "empty")


def test_training_size_larger_than_data(tmp_path, tiny_model_dir, capsys):
    fails(setup(tmp_path, tiny_model_dir, study_extra={"train_sizes": [500]}), capsys, "study.yaml",
          "train size 500 is larger than the training data (12")


def test_unknown_study_key(tmp_path, tiny_model_dir, capsys):
    fails(setup(tmp_path, tiny_model_dir, study_extra={"seed": [0]}), capsys, "study.yaml", "unknown key 'seed'",
          "did you mean 'seeds'")


@pytest.mark.parametrize("key,value,expect", [
    ("task", "lcqmcc", "did you mean 'lcqmc'"), ("designs", ["es-sdee"], "did you mean 'es-sde'"),
    ("model", "smollm-135m", "did you mean 'smollm2-135m'")])
def test_unknown_names_list_the_known_ones(tmp_path, tiny_model_dir, capsys, key, value, expect):
    err = fails(setup(tmp_path, tiny_model_dir, study_extra={key: value}), capsys, expect)
    assert "known:" in err


def test_design_option_the_family_cannot_use(tmp_path, tiny_model_dir, capsys):
    fails(setup(tmp_path, tiny_model_dir, study_extra={"designs": ["es-sde+json"]}), capsys, "designs",
          "single_classification family cannot use", "output_format")


def test_sample_that_cannot_fit(tmp_path, tiny_model_dir, capsys):
    fails(setup(tmp_path, tiny_model_dir, study_extra={"train": {"max_length": 16, "precision": "fp32"}}), capsys,
          "does not fit max_length=16")


def test_unwritable_output_folder(tmp_path, tiny_model_dir, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os
        if os.access(locked, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: permissions are not enforced")
        fails(setup(tmp_path, tiny_model_dir, study_extra={"output_dir": str(locked / "runs")}), capsys,
              str(locked))
    finally:
        locked.chmod(0o700)


def test_output_folder_that_cannot_be_created(tmp_path, tiny_model_dir, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    fails(setup(tmp_path, tiny_model_dir, study_extra={"output_dir": str(blocker / "runs")}), capsys,
          str(blocker / "runs"), "cannot create the output folder")


def test_full_disk_names_the_path_and_leaves_no_finished_cell(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import errno
    import os

    from sdelab.study import store
    real = os.fdopen

    def full(fd, *a, **kw):  # the disk fills up when predictions are written
        f = real(fd, *a, **kw)
        if "predictions.jsonl" in os.readlink(f"/proc/self/fd/{fd}"):
            f.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return f

    monkeypatch.setattr(store.os, "fdopen", full)
    assert main(["run", str(setup(tmp_path, tiny_model_dir))]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars: one message
    assert "Traceback" not in err and "predictions.jsonl" in err and "no space left on device" in err.lower()
    assert ".partial" in err  # the half-built cell is named, and was never published as finished
    assert not [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.name.endswith(".partial")
                and not p.name.startswith(".")]


@pytest.mark.parametrize("train_name, text, expect", [
    ("train.jsonl", '{"text": "a", "label": "positive", "text": "b"}\n', "train.jsonl:1"),
    ("train.json", '[\n{"text": "a", "label": "positive"},\n{"text": "a", "label": "x", "label": "positive"}\n]\n',
     "train.json:3"),
    ("train.tsv", "text\tlabel\ttext\nbad\tpositive\tgood\n", "train.tsv:1"),
])
def test_ambiguous_data_is_refused(tmp_path, tiny_model_dir, capsys, train_name, text, expect):
    """A key or column named twice: sdelab does not pick one of them silently."""
    err = fails(setup(tmp_path, tiny_model_dir, train_text=text, train_name=train_name), capsys, expect)
    assert "twice" in err
