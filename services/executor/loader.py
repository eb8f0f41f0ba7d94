"""The student program: check it, store it, load it as a fresh module.

- :func:`check_source` compiles an uploaded program (a syntax error is refused with its line)
  and returns warnings about its shape (no code for a mode, ``async def teleop_main``...).
- :func:`store_source` writes it atomically (temporary file, fsync, rename), so a robot that
  loses power mid-upload keeps the old program, never half of the new one.
- :func:`load_module` builds a new module from the file each time a mode starts: the student
  API names go in first, then the module body runs in the main thread under the import time
  limit. Its source is put in ``linecache`` so tracebacks show the lines that ran even if the
  file changes afterwards.
"""

from __future__ import annotations

import ast
import hashlib
import linecache
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.exception import ExecutionError
from runtime.service.executor.request import Outcome
from runtime.service.executor.sync import SyncExecutor
from runtime.statefile import write_atomic

MODES = {"auto": "autonomous", "teleop": "teleop"}  # mode -> function name prefix
MAX_SOURCE = 1_000_000  # bytes


def read_source(path: Path) -> str:
    """The student program's text; ``ExecutionError`` saying what to do when there is none."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExecutionError(
            f"there is no student program at {path}: upload one with `runtime upload FILE`",
            path=str(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ExecutionError(f"cannot read the student program {path}: {reason}",
                             path=str(path)) from None


def compile_source(source: str, filename: str) -> types.CodeType:
    """Compile (``SyntaxError`` as is: the error reporter shows its line and caret)."""
    return compile(source, filename, "exec", dont_inherit=True)


def check_source(source: object, filename: str = "studentcode.py",
                 aliases: Mapping[str, str] | None = None) -> list[str]:
    """Warnings about ``source``; ``ExecutionError`` if it is not a program Python can run."""
    if not isinstance(source, str):
        raise ExecutionError(
            f"the program must be text (a str), not {type(source).__name__}",
            type=type(source).__name__,
        )
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE:
        raise ExecutionError(f"the program is larger than {MAX_SOURCE} bytes", limit=MAX_SOURCE)
    try:
        tree = ast.parse(source, filename)
        compile_source(source, filename)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        code = (exc.text or "").strip()
        raise ExecutionError(
            f"{filename} has a syntax error at {where}: {exc.msg}"
            + (f" (in `{code}`)" if code else ""),
            line=exc.lineno, column=exc.offset, text=code,
        ) from None
    except ValueError as exc:  # e.g. null bytes
        raise ExecutionError(f"{filename} cannot be compiled: {exc}") from None
    return shape_warnings(tree) + robot_warnings(source, aliases)


def robot_warnings(source: str, aliases: Mapping[str, str] | None = None) -> list[str]:
    """The robot checks of ``runtime lint`` (the shape ones are said above, in these words).
    Imported here: astroid is only needed at upload, not when the executor starts."""
    from runtime.lint import SHAPE_SYMBOLS
    from runtime.lint import check_source as check_robot

    return [f"line {finding.line}: {finding.message}"
            for finding in check_robot(source, aliases) if finding.symbol not in SHAPE_SYMBOLS]


def shape_warnings(tree: ast.Module) -> list[str]:
    """What will not run as the student probably expects (top-level functions only)."""
    functions = {node.name: node for node in tree.body
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    warnings = []
    for prefix in MODES.values():
        for suffix in ("_setup", "_main"):
            node = functions.get(prefix + suffix)
            if isinstance(node, ast.AsyncFunctionDef):
                warnings.append(
                    f"{node.name} (line {node.lineno}) is an async def: Runtime calls it as a "
                    "plain function, so make it a plain def and start async actions from it "
                    "with Robot.run(...)")
        has_pair = f"{prefix}_setup" in functions or f"{prefix}_main" in functions
        if not has_pair and prefix not in functions:
            warnings.append(
                f"no {prefix}_setup/{prefix}_main and no {prefix}(): nothing will run in "
                f"{'autonomous' if prefix == 'autonomous' else 'teleop'}")
        elif has_pair and prefix in functions:
            warnings.append(
                f"both {prefix}() and {prefix}_setup/{prefix}_main are defined: only "
                f"{prefix}_setup/{prefix}_main will run")
    return warnings


def store_source(path: Path, source: object,
                 aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check ``source`` and store it as the student program: ``{sha256, warnings}``."""
    warnings = check_source(source, Path(path).name, aliases)
    assert isinstance(source, str)
    data = source.encode("utf-8", "surrogatepass")
    write_atomic(Path(path), data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "warnings": warnings}


def load_module(
    path: Path,
    name: str,
    namespace: Mapping[str, Any],
    executor: SyncExecutor,
    timeout: float,
) -> tuple[types.ModuleType | None, Outcome]:
    """Load the student program as module ``name`` under ``timeout`` (main thread).

    Returns the module (None if loading failed) and the outcome of running its body; a
    missing file or a syntax error is an ``error`` outcome like an exception in the body.
    """
    label = f"loading {Path(path).name}"
    try:
        source = read_source(path)
        filename = str(path)
        code = compile_source(source, filename)
    except (ExecutionError, SyntaxError, ValueError) as exc:
        outcome = Outcome(label, "error", error=exc)
        executor.report_outcome(outcome)
        return None, outcome
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    module.__dict__.update(namespace)
    sys.modules[name] = module  # dataclasses and pickle look classes' modules up there
    outcome = executor.call(exec, (code, module.__dict__), timeout, label)
    if not outcome.ok:
        if sys.modules.get(name) is module:
            del sys.modules[name]
        return None, outcome
    return module, outcome
