"""`sdelab run STUDY --emit slurm`: the Slurm files that run a study's shards as one job array and build its
report after them. Each array task runs `sdelab run STUDY --shard i/n` into the study's own output folder (the
per-cell locks of study/store.py let the shards share it); the report job depends on the array with `afterany`,
so it is built from whatever finished even when a shard failed. The files go to `<output dir>/slurm/`, never
outside the output folder, with every path absolute and shell-quoted: they run the same from any folder. The
report job takes the same #SBATCH options as the array (a cluster may require its partition or account)."""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sdelab import fileio
from sdelab.errors import SdelabError

FOLDER = "slurm"  # <output dir>/slurm: the files, and logs/ for the jobs' output
FILES = ("array.sbatch", "report.sbatch", "submit.sh")


def default_launcher() -> str:
    """This Python running sdelab: the environment the files were written from."""
    return f"{shlex.quote(sys.executable)} -m sdelab"


@dataclass(frozen=True)
class ArrayJob:
    """What the files say. `launcher` is the user's own command line that runs sdelab (e.g. `accelerate launch
    --multi_gpu --num_processes 4 -m sdelab`), inserted as given; `run_args` are further arguments of `sdelab run`,
    one word each (quoted here)."""
    name: str  # the study's name (a plain word, config.Study checks it)
    study: Path  # the study file
    out: Path  # its output folder
    shards: int
    workdir: Path  # the working folder at emit time: the study's relative paths resolve against it
    launcher: str = field(default_factory=default_launcher)
    sbatch: tuple[str, ...] = ()  # '#SBATCH <opt>' lines, e.g. --partition=gpu
    run_args: tuple[str, ...] = ()

    @property
    def folder(self) -> Path:
        return self.out / FOLDER


def check_option(opt: str) -> str:
    """An `--sbatch` option: one line that starts with '-' (sbatch reads the rest of the file as the script)."""
    if "\n" in opt or "\r" in opt:
        raise SdelabError(f"--sbatch {opt!r}: an option is one line; give each option its own --sbatch")
    if not opt.startswith("-"):
        raise SdelabError(f"--sbatch '{opt}': an sbatch option starts with '-', e.g. --partition=gpu or "
                          "--time=24:00:00")
    return opt


def check_launcher(cmd: str) -> str:
    """A `--launcher` command line: one line (it goes into the script as given)."""
    if "\n" in cmd or "\r" in cmd:
        raise SdelabError(f"--launcher {cmd!r}: the command that runs sdelab is one line")
    if not cmd.strip():
        raise SdelabError("--launcher: an empty command; give the command that runs sdelab, e.g. "
                          "'accelerate launch -m sdelab'")
    return cmd


def _path(p: Path) -> str:
    """An absolute path, shell-quoted (sbatch's own option parser reads the same quotes)."""
    text = str(Path(p).absolute())
    if "\n" in text or "\r" in text:
        raise SdelabError("a path holding a line break cannot go into a Slurm script", path=text.splitlines()[0])
    return shlex.quote(text)


def _header(job_name: str, log: Path, options: tuple[str, ...], array: int | None = None) -> list[str]:
    """The script's first lines: sbatch reads the '#SBATCH' lines up to the first command."""
    # '%' in a folder name would be one of sbatch's file-name patterns ('%a': the array index); '%%' is a '%'
    return ["#!/bin/bash", f"#SBATCH --job-name={job_name}", *([f"#SBATCH --array=0-{array - 1}"] if array else []),
            f"#SBATCH --output={_path(log.parent).replace('%', '%%')}/{log.name}",
            *[f"#SBATCH {check_option(o)}" for o in options]]


def render(job: ArrayJob) -> dict[str, str]:
    """The files' names and texts: array.sbatch (one task per shard), report.sbatch, submit.sh."""
    if job.shards < 1:
        raise SdelabError(f"--shards {job.shards}: at least 1 shard")
    launcher, logs = check_launcher(job.launcher), job.folder / "logs"
    run = " ".join([launcher, "run", _path(job.study), "--output-dir", _path(job.out),
                    *map(shlex.quote, job.run_args), f'--shard "${{SLURM_ARRAY_TASK_ID}}/{job.shards}"'])
    array = [*_header(f"sdelab-{job.name}", logs / "shard-%a.log", job.sbatch, array=job.shards),
             f"# one task per shard of study '{job.name}' (written by sdelab run --emit slurm)",
             "set -euo pipefail", f"cd {_path(job.workdir)}", f"exec {run}"]
    report = [*_header(f"sdelab-{job.name}-report", logs / "report.log", job.sbatch),
              f"# the report of study '{job.name}', built from the cells its shards finished",
              "set -euo pipefail", f"exec {shlex.quote(sys.executable)} -m sdelab report {_path(job.out)}"]
    d = _path(job.folder)
    submit = ["#!/bin/bash", f"# submits the {job.shards} shards of study '{job.name}' as one job array, then its "
              "report (afterany: built from whatever finished, even if a shard failed)", "set -euo pipefail",
              f"array=$(sbatch --parsable {d}/array.sbatch)",
              f'echo "submitted the {job.shards} shards of study \'{job.name}\': job array ${{array%%;*}}"',
              f'sbatch "--dependency=afterany:${{array%%;*}}" {d}/report.sbatch',
              f"echo 'the report is built when the array ends, in' {_path(job.out)}",
              f"echo 'the jobs log to' {_path(job.folder / 'logs')}"]
    return {name: "\n".join(lines) + "\n" for name, lines in zip(FILES, (array, report, submit))}


def write(job: ArrayJob) -> Path:
    """Write the files into `<output dir>/slurm/` (and create its logs/ folder, which sbatch opens before the job
    starts); returns that folder."""
    files = render(job)
    d = job.folder
    if not d.resolve().is_relative_to(job.out.resolve()):
        raise SdelabError("a link out of the output folder; remove it (the Slurm files go inside the output "
                          "folder)", path=d)
    try:
        (d / "logs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SdelabError(f"cannot create the Slurm folder: {e.strerror}", path=d) from None
    for name, text in files.items():
        fileio.write_text(d / name, text)
    os.chmod(d / "submit.sh", 0o777 & ~fileio.UMASK)
    return d
