"""`sdelab run STUDY --emit slurm`: the job array's files say what they should (array range, shard command,
#SBATCH options, the report's afterany dependency), and run the way Slurm would run them: two array tasks at the
same time on one output folder train every cell exactly once, then the report job builds report.md. submit.sh
is run against a fake `sbatch`. Flags that cannot go together, or options that would break the script, are
refused with one line and exit status 2."""
import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sdelab.cli import main
from sdelab.errors import SdelabError
from sdelab.study import slurm

from test_concurrency import CELLS, check_folder, trained

pytestmark = pytest.mark.slow  # real processes


def study(tmp_path, model_dir):
    from conftest import write_tiny_task
    s = {"name": "slurm", "task": str(write_tiny_task(tmp_path / "task")), "model": str(model_dir),
         "designs": ["es-sde", "es-sde+inst-last"], "train_sizes": [24], "seeds": [0, 1],
         "output_dir": str(tmp_path / "runs"),
         "train": {"epochs": 2, "batch_size": 4, "max_length": 128, "precision": "fp32"},
         "eval": {"batch_size": 4, "max_new_tokens": 3}}
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def emit(tmp_path, p, *extra):
    r = subprocess.run([sys.executable, "-m", "sdelab", "run", str(p), "--emit", "slurm", *extra],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_the_array_runs_every_cell_once_and_the_report_after_it(tmp_path, tiny_model_dir):
    p = study(tmp_path, tiny_model_dir)
    out = tmp_path / "runs"
    d = out / "slurm"
    log = emit(tmp_path, p, "--shards", "2", "--sbatch", "--partition=cpu")
    assert f"submit with: bash {d / 'submit.sh'}" in log and f"cells to run: {CELLS} of {CELLS} (2 each)" in log, log
    assert sorted(x.name for x in out.iterdir()) == ["slurm"]  # nothing trained or prepared
    assert (d / "logs").is_dir() and os.access(d / "submit.sh", os.X_OK)

    array = (d / "array.sbatch").read_text().splitlines()
    assert array[:5] == ["#!/bin/bash", "#SBATCH --job-name=sdelab-slurm", "#SBATCH --array=0-1",
                         f"#SBATCH --output={d}/logs/shard-%a.log", "#SBATCH --partition=cpu"]
    assert "set -euo pipefail" in array and f"cd {tmp_path}" in array
    assert array[-1] == (f'exec {shlex.quote(sys.executable)} -m sdelab run {p} --output-dir {out} '
                         f'--shard "${{SLURM_ARRAY_TASK_ID}}/2"')
    report = (d / "report.sbatch").read_text().splitlines()
    assert report[:4] == ["#!/bin/bash", "#SBATCH --job-name=sdelab-slurm-report",
                          f"#SBATCH --output={d}/logs/report.log", "#SBATCH --partition=cpu"]
    assert report[-1] == f"exec {shlex.quote(sys.executable)} -m sdelab report {out}"
    submit = (d / "submit.sh").read_text()
    assert f"array=$(sbatch --parsable {d}/array.sbatch)" in submit
    assert f'sbatch "--dependency=afterany:${{array%%;*}}" {d}/report.sbatch' in submit

    # as Slurm runs them: both array tasks at once (bash reads the #SBATCH lines as comments), from elsewhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    tasks = [subprocess.Popen(["bash", str(d / "array.sbatch")], cwd=elsewhere, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env={**env, "SLURM_ARRAY_TASK_ID": str(i)})
             for i in range(2)]
    logs = [t.communicate(timeout=600)[0] for t in tasks]
    for t, text in zip(tasks, logs):
        assert t.returncode == 0 and "Traceback" not in text, text
    both = trained(logs[0]) + trained(logs[1])
    assert len(both) == CELLS and len(set(both)) == CELLS, both  # each cell trained once, by one task
    assert trained(logs[0]) and trained(logs[1])  # and the work was split
    done = check_folder(out)  # every cell finished whole, no .partial left
    assert sorted(x.name for x in done) == sorted(both)
    r = subprocess.run(["bash", str(d / "report.sbatch")], cwd=elsewhere, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "report.md").stat().st_size > 0

    # emitted again, the finished cells are counted: one shard by default, with nothing left to run
    assert f"cells to run: 0 of {CELLS}" in emit(tmp_path, p)
    assert "--array=0-0" in (d / "array.sbatch").read_text()


def test_submit_sends_the_array_then_the_report_after_it(tmp_path, tiny_model_dir):
    p = study(tmp_path, tiny_model_dir)
    emit(tmp_path, p, "--shards", "3")
    d = tmp_path / "runs" / "slurm"
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(f'#!/bin/bash\necho "$*" >> {shlex.quote(str(calls))}\necho "4242;cluster1"\n')
    fake.chmod(0o755)
    r = subprocess.run(["bash", str(d / "submit.sh")], capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert calls.read_text().splitlines() == [f"--parsable {d}/array.sbatch",
                                              f"--dependency=afterany:4242 {d}/report.sbatch"]
    assert "job array 4242" in r.stdout, r.stdout


def test_more_shards_than_cells_is_refused(tmp_path, tiny_model_dir, capsys):
    p = study(tmp_path, tiny_model_dir)
    assert main(["run", str(p), "--emit", "slurm", "--shards", "5"]) == 2
    assert "--shards 5: the study has 4 cells, so at most 4 shards" in one_error(capsys)
    assert not (tmp_path / "runs").exists()


def test_paths_with_spaces_are_quoted(tmp_path):
    job = slurm.ArrayJob("s", tmp_path / "my study.yaml", tmp_path / "my runs", 2, tmp_path / "a b",
                         run_args=("--data-root", "/d d"))
    files = slurm.render(job)
    last = files["array.sbatch"].splitlines()[-1]
    assert shlex.split(last)[:9] == ["exec", sys.executable, "-m", "sdelab", "run", str(tmp_path / "my study.yaml"),
                                     "--output-dir", str(tmp_path / "my runs"), "--data-root"]
    assert f"cd '{tmp_path / 'a b'}'" in files["array.sbatch"]
    assert f"#SBATCH --output='{tmp_path / 'my runs' / 'slurm' / 'logs'}'/shard-%a.log" in files["array.sbatch"]


# -- refusals: one line, exit status 2, before any study is read ---------------------------------------------------
def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if "sdelab: error:" in x]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("argv, expect", [
    (["--sbatch", "--partition=cpu\n--mem=1G"], "argument --sbatch: an option is one line"),
    (["--sbatch", "partition=cpu"], "argument --sbatch: an sbatch option starts with '-'"),
    (["--sbatch"], "argument --sbatch: an sbatch option starts with '-'"),
    (["--launcher", "python -m sdelab\nrm -rf ~"], "argument --launcher"),
    (["--shards", "0"], "argument --shards"),
])
def test_flags_the_parser_refuses(tmp_path, capsys, argv, expect):
    with pytest.raises(SystemExit) as e:
        main(["run", str(tmp_path / "no_such_study.yaml"), "--emit", "slurm", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("sdelab run: error:") and "not found" not in err, err


@pytest.mark.parametrize("argv, expect", [
    (["--emit", "slurm", "--shard", "0/2"], "--shard cannot go with it"),
    (["--emit", "slurm", "--only", "es-sde__*"], "--only cannot go with it"),
    (["--emit", "slurm", "--dry-run"], "--dry-run cannot go with it"),
    (["--shards", "2"], "--shards: only with --emit slurm"),
    (["--sbatch", "--partition=cpu"], "--sbatch: only with --emit slurm"),
])
def test_flags_that_cannot_go_together(tmp_path, capsys, argv, expect):
    assert main(["run", str(tmp_path / "no_such_study.yaml"), *argv]) == 2
    err = one_error(capsys)
    assert expect in err and "not found" not in err, err


def test_render_refuses_what_would_break_the_script(tmp_path):
    job = slurm.ArrayJob("s", tmp_path / "s.yaml", tmp_path / "runs", 2, tmp_path)
    for bad, expect in [({"sbatch": ("--time=1:00:00\nrm -rf ~",)}, "one line"),
                        ({"sbatch": ("gpu",)}, "starts with '-'"),
                        ({"launcher": "python\n-m sdelab"}, "--launcher"),
                        ({"shards": 0}, "at least 1 shard"),
                        ({"out": tmp_path / "a\nb"}, "line break")]:
        with pytest.raises(SdelabError, match=expect):
            slurm.render(dataclasses.replace(job, **bad))
    assert not (tmp_path / "runs").exists()
