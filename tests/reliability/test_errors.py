"""Errors instead of tracebacks (issue 29): a folder or a link loop where a data file belongs, row slices and sweep
values that do not parse, damaged files of a finished run folder or of a resumed cell, damaged model folders and
GGUF files, a full disk, and command-line values out of range. Each stops with one line naming the file and what
to do, exit status 2, and nothing written as finished; what can be recomputed (a resumed cell's checkpoint or
scored set, a stopped diagnose) is recomputed with a log line instead."""
import errno
import json
import shutil

import pytest
import torch
import yaml

from sdelab import fileio
from sdelab.cli import main
from sdelab.results import read_cell

from test_bad_input import fails, setup


def one_error(capsys) -> str:
    """The run's error line (the progress bars may share stderr with it), checked to be the only one."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if "sdelab: error:" in x]
    assert len(lines) == 1, err
    return lines[0]


# -- 1. a data file that is not a file ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind, expect", [("folder", "is a folder, not a data file"),
                                          ("loop", "symbolic link that leads nowhere"),
                                          ("dangling", "symbolic link that leads nowhere")])
@pytest.mark.parametrize("split_file", ["train.jsonl", "test.jsonl"])
def test_a_data_path_that_is_not_a_file(tmp_path, tiny_model_dir, capsys, kind, expect, split_file):
    p = setup(tmp_path, tiny_model_dir)
    path = tmp_path / "task" / split_file
    path.unlink()
    if kind == "folder":
        path.mkdir()
    elif kind == "loop":
        path.symlink_to(split_file)  # ln -s train.jsonl train.jsonl
    else:
        path.symlink_to(tmp_path / "gone.jsonl")
    err = fails(p, capsys, split_file, expect)
    assert str(tmp_path / "task") in err


# -- 2. row slices and sweep values -------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", ["a:b", "5", "1:2:3", "0:x", "::"])
def test_a_row_slice_that_does_not_parse(tmp_path, tiny_model_dir, capsys, rows):
    p = setup(tmp_path, tiny_model_dir, fmt=f", rows: '{rows}'")
    fails(p, capsys, "task.yaml:", "field 'splits.train.rows'", "'start:end'")


@pytest.mark.parametrize("rows", ["100:", "5:2"])
def test_a_row_slice_that_selects_nothing(tmp_path, tiny_model_dir, capsys, rows):
    p = setup(tmp_path, tiny_model_dir, fmt=f", rows: '{rows}'")
    fails(p, capsys, "task.yaml", "field 'splits.train.rows'", f"rows '{rows}' selects none of the 12 rows")


def test_row_slices_that_parse_still_work(tmp_path, tiny_model_dir):
    p = setup(tmp_path, tiny_model_dir, fmt=", rows: ' 0 : 9 '")
    assert main(["run", str(p), "--dry-run"]) == 0


@pytest.mark.parametrize("sweep, expect", [
    ({"lr": ["fast", 1e-4]}, "sweep 'lr': 'fast' is not a value of lr"),
    ({"epochs": [0]}, "sweep 'epochs': 0 is not a value of epochs"),
    ({"batch_size": [2.5]}, "sweep 'batch_size': 2.5 is not a value"),
    ({"lora.r": [4, 0]}, "sweep 'lora.r': 0 is not a value of lora.r"),
    ({"precision": ["fp8"]}, "sweep 'precision': 'fp8'"),
    ({"max_length": [8]}, "sweep 'max_length': 8"),
    ({"lr": [{"a": 1}]}, "sweep 'lr': {'a': 1}"),
    ({"lr": [1e-4, 1e-4]}, "sweep 'lr' lists 0.0001 twice"),
])
def test_a_sweep_value_the_setting_cannot_take(tmp_path, tiny_model_dir, capsys, sweep, expect):
    fails(setup(tmp_path, tiny_model_dir, study_extra={"sweep": sweep}), capsys, "study.yaml:", "field 'sweep'",
          expect)


@pytest.mark.parametrize("extra, expect", [
    ({"model": []}, "field 'model': an empty list of models runs nothing"),
    ({"modeling": []}, "field 'modeling': an empty list"),
    ({"modeling": ["generative", "generative"]}, "modeling lists 'generative' twice"),
    ({"untuned": [0, -1]}, "field 'untuned'"),
])
def test_list_settings_that_run_nothing_or_make_no_sense(tmp_path, tiny_model_dir, capsys, extra, expect):
    fails(setup(tmp_path, tiny_model_dir, study_extra=extra), capsys, "study.yaml:", expect)


def test_an_empty_task_list(tmp_path, tiny_model_dir, capsys):
    p = setup(tmp_path, tiny_model_dir)
    s = yaml.safe_load(p.read_text())
    p.write_text(yaml.safe_dump({**s, "task": []}))
    fails(p, capsys, "study.yaml:", "field 'task': an empty list of tasks")


# -- 3. damaged files of a finished run folder --------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_dir):
    """A study with one finished cell: (study file, its run folder, the cell folder's name)."""
    base = tmp_path_factory.mktemp("finished")
    p = setup(base, tiny_model_dir)
    assert main(["run", str(p)]) == 0
    cells = [d for d in (base / "runs").iterdir() if (d / "metrics.json").exists()]
    assert len(cells) == 1
    return p, base / "runs", cells[0].name


def copy_runs(finished, tmp_path):
    p, runs, name = finished
    out = tmp_path / "runs"
    shutil.copytree(runs, out)
    return p, out, out / name


def _json_edit(**fields):
    def edit(text):
        return json.dumps({**json.loads(text), **fields})
    return edit


DAMAGE = [  # file, how it is damaged, what the message says
    ("metrics.json", lambda t: t[:40], "not valid JSON"),
    ("metrics.json", lambda t: "[]", "holds a list where a mapping of fields belongs"),
    ("metrics.json", lambda t: "", "not valid JSON"),
    ("metrics.json", _json_edit(eval={"test": {"primary": "accuracy", "n": 3, "accuracy": "high"}}),
     "its accuracy must be a number"),
    ("metrics.json", _json_edit(eval={"test": {"primary": "bleu", "n": 3, "bleu": 1.0}}), "unknown primary metric"),
    ("metrics.json", _json_edit(seed="zero"), "'seed' a whole number"),
    ("item_stats.json", lambda t: t[: len(t) // 2], "not valid JSON"),
    ("item_stats.json", lambda t: json.dumps({"test": {"primary": "accuracy", "ids": ["1"], "stats": "x"}}),
     "'ids' and 'stats' must be lists of the same length"),
    ("config.yaml", lambda t: "a: [1\n", "not valid YAML"),
    ("config.yaml", lambda t: "- 1\n", "holds a list"),
    ("config.yaml", lambda t: "", "holds nothing"),
    ("manifest.json", lambda t: t[:60], "not valid JSON"),
    ("manifest.json", _json_edit(finished_at="yesterday"), "'finished_at' must be an ISO 8601 time"),
    ("manifest.json", _json_edit(train="fast", timings=5), "'train' must be null or the training counts"),
    ("train_log.jsonl", lambda t: t[:30], "the file ends inside this line: cut short?"),
    ("train_log.jsonl", lambda t: '{"step": "one", "loss": 1}\n', "'step' and 'loss' must be numbers"),
]


def damage(cell, name, how):
    path = cell / name
    path.write_text(how(path.read_text()))


@pytest.mark.parametrize("name, how, expect", DAMAGE, ids=[f"{d[0]}-{i}" for i, d in enumerate(DAMAGE)])
def test_report_names_the_damaged_file_of_a_finished_cell(finished, tmp_path, capsys, name, how, expect):
    _, out, cell = copy_runs(finished, tmp_path)
    damage(cell, name, how)
    assert main(["report", str(out)]) == 2
    err = one_error(capsys)
    assert f"{cell / name}" in err and expect in err, err
    assert f"delete the cell folder {cell} to re-run it" in err, err
    assert not (out / "report.md").exists() and not (out / "report.html").exists()


def test_a_cut_predictions_file_is_named_when_it_is_read(finished, tmp_path, capsys):
    """predictions.jsonl is read when item_stats.json is absent (folders of schema 1)."""
    _, out, cell = copy_runs(finished, tmp_path)
    (cell / "item_stats.json").unlink()
    text = (cell / "predictions.jsonl").read_text()
    (cell / "predictions.jsonl").write_text(text[: len(text) - 20])
    assert main(["report", str(out)]) == 2
    err = one_error(capsys)
    assert "predictions.jsonl:3:" in err and "cut short?" in err and f"delete the cell folder {cell}" in err, err


def test_a_cut_predictions_file_is_not_needed_beside_item_stats(finished, tmp_path, capsys):
    _, out, cell = copy_runs(finished, tmp_path)
    text = (cell / "predictions.jsonl").read_text()
    (cell / "predictions.jsonl").write_text(text[:100])
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").exists()


@pytest.mark.parametrize("name, how, expect", [DAMAGE[0], DAMAGE[8], DAMAGE[11], DAMAGE[14]],
                         ids=["metrics", "config", "manifest", "train_log"])
def test_run_names_the_damaged_file_of_a_finished_cell(finished, tmp_path, capsys, name, how, expect):
    p, out, cell = copy_runs(finished, tmp_path)
    damage(cell, name, how)
    before = sorted(x.name for x in out.iterdir())
    assert main(["run", str(p), "--output-dir", str(out)]) == 2
    err = one_error(capsys)
    assert f"{cell / name}" in err and expect in err and f"delete the cell folder {cell} to re-run it" in err, err
    assert sorted(x.name for x in out.iterdir()) == before  # nothing trained or added


def test_deleting_the_damaged_cell_runs_it_again(finished, tmp_path, capsys):
    p, out, cell = copy_runs(finished, tmp_path)
    damage(cell, "metrics.json", lambda t: t[:40])
    assert main(["run", str(p), "--output-dir", str(out)]) == 2
    shutil.rmtree(cell)  # what the message says to do
    assert main(["run", str(p), "--output-dir", str(out)]) == 0
    assert read_cell(cell).design == "es-sde"


def test_every_committed_run_folder_still_reads():
    """The checks refuse damaged records, not the ones sdelab wrote (every schema version in the repository)."""
    from pathlib import Path

    from sdelab.results import read_cells
    runs = Path(__file__).resolve().parents[2] / "runs"
    folders = [d for d in sorted(runs.iterdir()) if d.is_dir()] if runs.exists() else []
    if not folders:
        pytest.skip("no committed run folders")
    assert sum(len(read_cells(d)) for d in folders) > 0


# -- 3b. damaged state of a resumed cell: recomputed, with a log line ---------------------------------------------
def interrupted(finished, tmp_path):
    """The finished cell turned back into an interrupted one: its '.partial' folder, without its results."""
    p, out, cell = copy_runs(finished, tmp_path)
    work = cell.with_name(cell.name + ".partial")
    work.mkdir()
    shutil.copy(cell / "config.yaml", work / "config.yaml")
    shutil.rmtree(cell)
    return p, out, cell, work


@pytest.mark.parametrize("content", [b"garbage\n", bytes(range(256)) * 8, b""])
def test_an_unreadable_checkpoint_trains_the_cell_from_the_start(finished, tmp_path, capsys, content):
    p, out, cell, work = interrupted(finished, tmp_path)
    (work / "checkpoint").mkdir()
    (work / "checkpoint" / "train_state.pt").write_bytes(content)
    assert main(["run", str(p), "--output-dir", str(out)]) == 0
    got = capsys.readouterr()
    assert "Traceback" not in got.err
    assert f"{work / 'checkpoint' / 'train_state.pt'}: not a readable checkpoint" in got.out + got.err
    assert "training from the start" in got.out + got.err
    assert read_cell(cell).design == "es-sde" and not work.exists()


@pytest.mark.parametrize("content", ['{"key": ', '[1, 2]', '{"key": "test", "metrics": 1, "rows": [1], "seconds": 0}'])
def test_an_unreadable_scored_set_is_scored_again(finished, tmp_path, capsys, content):
    p, out, cell, work = interrupted(finished, tmp_path)
    (work / "eval").mkdir()
    (work / "eval" / "000.json").write_text(content)
    assert main(["run", str(p), "--output-dir", str(out)]) == 0
    got = capsys.readouterr()
    assert "Traceback" not in got.err
    assert f"{work / 'eval' / '000.json'}: not a readable scored set" in got.out + got.err
    assert read_cell(cell).eval["test"].n == 3


def test_an_unreadable_diagnose_record_measures_again(tmp_path, tiny_model_dir, capsys):
    p = setup(tmp_path, tiny_model_dir)
    out = tmp_path / "diag"
    out.mkdir()
    (out / "diagnostics.partial.json").write_text('{"designs": {"es-sde": ')
    assert main(["diagnose", str(p), "--output-dir", str(out), "-n", "4", "--size", "2"]) == 0
    got = capsys.readouterr()
    assert "Traceback" not in got.err and "measuring every design again" in got.out
    assert "es-sde" in json.loads((out / "diagnostics.json").read_text())["designs"]


# -- 4. damaged model folders and GGUF files ----------------------------------------------------------------------
def broken_model(tiny_model_dir, tmp_path, how):
    d = tmp_path / "model"
    shutil.copytree(tiny_model_dir, d)
    how(d)
    return d


def _cut(name, keep):
    def how(d):
        (d / name).write_bytes((d / name).read_bytes()[:keep])
    return how


def _config(edit):
    def how(d):
        (d / "config.json").write_text(edit((d / "config.json").read_text()))
    return how


def _remove(*patterns):
    def how(d):
        for pat in patterns:
            for f in d.glob(pat):
                f.unlink()
    return how


MODEL_DAMAGE = [
    ("cut-header", _cut("model.safetensors", 1000), "model.safetensors", "not a whole safetensors file"),
    ("cut-tail", _cut("model.safetensors", -100), "model.safetensors", "not a whole safetensors file"),
    ("random-bytes", lambda d: (d / "model.safetensors").write_bytes(bytes(range(256)) * 400), "model.safetensors",
     "not a whole safetensors file"),
    ("hidden-size", _config(lambda t: json.dumps({**json.loads(t), "hidden_size": 64})), "config.json",
     "the weights do not fit config.json"),
    ("config-not-json", _config(lambda t: t[:30]), "config.json:", "not valid JSON"),
    ("config-a-list", _config(lambda t: "[1, 2]"), "config.json", "not a model config"),
    ("no-tokenizer", _remove("tokenizer*"), "model", "the model folder has no tokenizer"),
    ("no-weights", _remove("*.safetensors"), "model", "the model folder has no weights"),
]


@pytest.mark.parametrize("how, where, expect", [m[1:] for m in MODEL_DAMAGE], ids=[m[0] for m in MODEL_DAMAGE])
def test_a_damaged_model_folder(tmp_path, tiny_model_dir, capsys, how, where, expect):
    model = broken_model(tiny_model_dir, tmp_path, how)
    err = fails(setup(tmp_path, tiny_model_dir, study_extra={"model": str(model)}), capsys, where, expect)
    assert str(model) in err


def test_a_classification_head_on_mismatched_weights_is_refused(tmp_path, tiny_model_dir, capsys):
    """Loading with a new head ignores mismatched sizes (for the head); the backbone's must still match."""
    model = broken_model(tiny_model_dir, tmp_path, MODEL_DAMAGE[3][1])
    fails(setup(tmp_path, tiny_model_dir, study_extra={"model": str(model), "modeling": "discriminative"}), capsys,
          "config.json", "the weights do not fit config.json")


@pytest.mark.parametrize("content, expect", [
    (bytes(range(256)) * 4, "not a whole GGUF file"),
    (b"GGUF\x03\x00\x00\x00", "not a whole GGUF file"),
    (None, "is a folder, not a GGUF file"),
])
def test_a_damaged_gguf_file(tmp_path, tiny_model_dir, capsys, monkeypatch, content, expect):
    monkeypatch.setenv("SDELAB_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.mkdir() if content is None else gguf.write_bytes(content)
    fails(setup(tmp_path, tiny_model_dir, study_extra={"model": str(gguf)}), capsys, "model.gguf", expect)


# -- 5. a full disk -----------------------------------------------------------------------------------------------
def test_a_full_disk_while_saving_a_checkpoint_keeps_the_last_one(tmp_path, tiny_model_dir, capsys, monkeypatch):
    p = setup(tmp_path, tiny_model_dir, study_extra={"train": {"epochs": 1, "batch_size": 1, "max_length": 128,
                                                               "precision": "fp32"}})
    real, saves = torch.save, []

    def save(obj, f, *a, **kw):  # the second checkpoint finds the disk full
        saves.append(1)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    assert main(["run", str(p), "--checkpoint-every", "0"]) == 2
    err = one_error(capsys)
    work = next((tmp_path / "runs").glob("*.partial"))
    ckpt = work / "checkpoint"
    assert f"no space left on device writing {ckpt / 'train_state.pt'}; the last checkpoint in {ckpt} is kept; " \
           "free space and run again to resume" in err, err
    assert [f.name for f in ckpt.iterdir()] == ["train_state.pt"]  # the first checkpoint, no half-written file
    assert torch.load(ckpt / "train_state.pt", weights_only=True)["step"] == 1
    assert not [d for d in (tmp_path / "runs").iterdir() if (d / "metrics.json").exists()]
    monkeypatch.setattr(torch, "save", real)  # space freed: the same command resumes and finishes
    assert main(["run", str(p), "--checkpoint-every", "0"]) == 0
    assert "resuming from the interrupted run's checkpoint" in capsys.readouterr().out


def test_a_full_disk_in_a_library_write_is_named_too(tmp_path, tiny_model_dir, capsys, monkeypatch):
    """safetensors (Rust) reports a full disk in its message, not in an errno."""
    from peft import PeftModel

    def full(self, *a, **kw):
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                           'left on device" })')

    monkeypatch.setattr(PeftModel, "save_pretrained", full)
    assert main(["run", str(setup(tmp_path, tiny_model_dir))]) == 2
    err = one_error(capsys)
    assert "no space left on device writing" in err and ".partial" in err and "the last checkpoint in" in err, err


def test_a_full_disk_leaves_the_previous_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    fileio.write_json(path, {"a": 1})

    def full(fd, *a, **kw):
        import os
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fdopen", full)
    with pytest.raises(fileio.DiskFull) as e:
        fileio.write_json(path, {"a": 2})
    assert str(e.value) == (f"no space left on device writing {path}; what was written before it is kept; free space "
                            "and run again to resume")
    assert json.loads(path.read_text()) == {"a": 1} and [f.name for f in tmp_path.iterdir()] == ["x.json"]


# -- 6. command-line values out of range --------------------------------------------------------------------------
@pytest.mark.parametrize("argv, expect", [
    (["run", "S", "--shard", "3/2"], "argument --shard"),
    (["run", "S", "--shard", "0/0"], "argument --shard"),
    (["run", "S", "--shard", "x/y"], "argument --shard"),
    (["run", "S", "--shard", "1"], "argument --shard"),
    (["run", "S", "--shard", "0/2/3"], "argument --shard"),
    (["run", "S", "--checkpoint-every", "-1"], "argument --checkpoint-every"),
    (["run", "S", "--checkpoint-every", "nan"], "argument --checkpoint-every"),
    (["run", "S", "--reuse", "/no/such/folder"], "argument --reuse: no folder"),
    (["plan", "S", "--pilot", "/no/such/folder"], "argument --pilot: no folder"),
    (["render", "S", "-n", "0"], "argument -n"),
    (["render", "S", "-n", "-2"], "argument -n"),
    (["diagnose", "S", "-n", "0"], "argument -n"),
    (["diagnose", "S", "-k", "0", "-1"], "argument -k"),
    (["diagnose", "S", "--size", "0"], "argument --size"),
    (["report", "R", "--bootstrap", "0"], "argument --bootstrap"),
    (["report", "R", "--bootstrap", "-100"], "argument --bootstrap"),
    (["claims", "C", "--bootstrap", "0"], "argument --bootstrap"),
])
def test_flags_out_of_range_are_refused_by_the_parser(capsys, argv, expect):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err and err.strip().splitlines()[-1].startswith("sdelab "), err


def test_a_shard_is_checked_before_the_study_is_read(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(tmp_path / "no_such_study.yaml"), "--shard", "2/2"])
    err = capsys.readouterr().err
    assert "0 <= i < n" in err and "not found" not in err


@pytest.mark.parametrize("flag, value, expect", [
    ("--metric", "acuracy", "--metric 'acuracy': not a metric of these run folders (did you mean 'accuracy'?)"),
    ("--reference", "es-sdee", "--reference 'es-sdee': no such design in these run folders (did you mean 'es-sde'?)"),
])
def test_report_names_an_unknown_metric_or_design(finished, tmp_path, capsys, flag, value, expect):
    _, out, _ = copy_runs(finished, tmp_path)
    assert main(["report", str(out), flag, value]) == 2
    err = one_error(capsys)
    assert expect in err and str(out) in err, err
    assert not (out / "report.md").exists()
