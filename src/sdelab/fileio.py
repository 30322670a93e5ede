"""Files written atomically (a reader never sees half a file) and read back: JSON, JSON Lines, YAML, text."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import yaml

from sdelab.errors import SdelabError

UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), and put back at once
os.umask(UMASK)


def is_main_process() -> bool:
    """Not one of the other processes of a data-parallel launch (their global RANK is not 0): the run folder's
    one writer."""
    return int(os.environ.get("RANK", 0)) == 0


def only_main(path: Path) -> None:
    """Refuse a run-folder write from a process that is not the main one: a bug, never a user's error."""
    if not is_main_process():
        raise RuntimeError(f"process {os.environ.get('RANK')} of a data-parallel launch tried to write {path}: "
                           "only the main process writes the run folder")


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=False) + "\n")


def write_yaml(path: Path, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename: a reader never sees half a file."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename: a reader never sees half a file."""
    write_with(path, lambda f: f.write(data))


def write_with(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """`write(file)` into a temporary file, then rename it to `path`: a reader never sees half a file, and a failed
    write leaves the previous version in place (and no temporary file)."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
        os.fchmod(fd, 0o666 & ~UMASK)  # as open() would create it (mkstemp makes it owner-only)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if not isinstance(e, OSError):
            raise
        if is_disk_full(e):
            raise DiskFull(path) from None
        raise SdelabError(f"cannot write: {e.strerror}", path=path) from None


def read_json(path: Path) -> Any:
    """A JSON file sdelab wrote; unreadable or not JSON is an error naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SdelabError(f"not valid JSON ({e.msg} at column {e.colno}); was it cut short?", path=path,
                          line=e.lineno) from None
    except UnicodeDecodeError:
        raise SdelabError("not valid JSON (not UTF-8 text)", path=path) from None
    except OSError as e:
        raise SdelabError(f"cannot read: {e.strerror}", path=path) from None


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(SdelabError):
    """The disk (or the user's quota) filled up while writing `written`; `kept` says what survives."""

    def __init__(self, written: str | Path, kept: str | None = None):
        self.written, self.kept = written, kept
        super().__init__(f"no space left on device writing {written}; "
                         f"{kept or 'what was written before it is kept'}; free space and run again to resume")


def is_disk_full(e: BaseException) -> bool:
    """Whether an error says the disk is full: an OSError's errno, or a library's message (safetensors, torch)."""
    return isinstance(e, DiskFull) or getattr(e, "errno", None) in NO_SPACE or any(
        t in str(e) for t in ("No space left on device", "Disk quota exceeded", "StorageFull"))


@contextlib.contextmanager
def on_disk_full(where: Path, kept: Callable[[], str]):
    """Running out of disk space inside the block, in sdelab's writes or a library's, becomes one DiskFull naming
    the file written (`where` when the error does not say) and `kept()`: what survives to resume from."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e) or isinstance(e, DiskFull) and e.kept:
            raise
        written = e.written if isinstance(e, DiskFull) else getattr(e, "filename", None) or where
        raise DiskFull(written, kept()) from None
