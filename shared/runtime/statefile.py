"""Small JSON documents in the state dir (options, aliases), written atomically.

A robot loses power without warning; a half-written options file must never be what the next
start reads. Writes go to a temporary file in the same directory, are flushed to disk and then
renamed over the old file, so readers see either the old document or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from runtime.exception import RuntimeBaseException


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON, atomically."""
    write_atomic(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())


def read_json(
    path: Path, error: type[RuntimeBaseException] = RuntimeBaseException
) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file does not exist.

    A file that is not a JSON object raises ``error`` naming the file, so that a hand-edited
    mistake is reported where it is rather than as a stray traceback.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            path=str(path),
        ) from exc
    if not isinstance(document, dict):
        raise error(f"{path} must hold a JSON object", path=str(path))
    return document
