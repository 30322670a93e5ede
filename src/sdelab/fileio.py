"""Files written atomically (a reader never sees half a file) and read back: JSON, JSON Lines, YAML, text."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sdelab.errors import SdelabError

UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), and put back at once
os.umask(UMASK)


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
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
        os.fchmod(fd, 0o666 & ~UMASK)  # as open() would create it (mkstemp makes it owner-only)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise SdelabError(f"cannot write: {e.strerror}", path=path) from None


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
