"""``lint()``: pylint on the student program, with the student API names known and the
robot's own checks (``runtime.lint``: misspelled API names, mode functions, devices, params).

pylint runs as a subprocess (``python -m pylint --output-format=json``) so a crash or a slow run
never touches the broker service's event loop. It gets a generated rc file instead of whatever
configuration it would find around the student code, so the result does not depend on where
the state dir is. Docstring conventions are turned off: a beginner's program needs to hear
about undefined names and unused variables, not missing docstrings.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.exception import ExecutionError, RuntimeBaseException

#: Names Runtime injects into the student module (design.md, "Student API").
STUDENT_NAMES = ("Robot", "Gamepad", "Keyboard", "Actions", "Mode", "Alliance", "Match", "Field",
                 "print")
DISABLED = ("missing-module-docstring", "missing-class-docstring", "missing-function-docstring")
RCFILE = f"""\
[MAIN]
persistent=no
load-plugins=runtime.lint.plugin

[MESSAGES CONTROL]
disable={",".join(DISABLED)}

[VARIABLES]
additional-builtins={",".join(STUDENT_NAMES)}

[REPORTS]
score=no
"""


async def lint(student_code: Path, timeout: float = 60.0,
               aliases: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """pylint's messages for ``student_code`` (its JSON form: type, line, symbol, message...),
    the robot checks' among them (symbols ``robot-*``). ``aliases`` (name -> uid): the robot's
    device aliases, to check the names the program uses; None: not checked."""
    path = Path(student_code).resolve()
    if not path.is_file():
        raise ExecutionError(
            f"there is no student program to lint at {path}: upload one with `runtime upload`",
            path=str(path),
        )
    with tempfile.TemporaryDirectory(prefix="runtime-lint-") as home:
        rcfile = Path(home) / "pylintrc"
        rcfile.write_text(RCFILE + ("" if aliases is None else "\n[ROBOT]\nrobot-aliases="
                                    + ",".join(f"{k}={v}" for k, v in sorted(aliases.items()))
                                    + "\n"))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pylint",
            f"--rcfile={rcfile}",
            "--output-format=json",
            path.name,
            cwd=path.parent,
            env={**os.environ, "PYLINTHOME": home},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeBaseException(
                f"pylint did not finish within {timeout:g} s", path=str(path), timeout=timeout
            ) from None
    try:
        messages = json.loads(stdout)
    except json.JSONDecodeError:
        detail = (stderr or stdout).decode(errors="replace").strip().splitlines()
        raise RuntimeBaseException(
            f"pylint failed on {path} (exit code {process.returncode}): "
            f"{detail[-1] if detail else 'no output'}",
            path=str(path),
        ) from None
    if not isinstance(messages, list):
        raise RuntimeBaseException("pylint returned something other than a list", path=str(path))
    return messages


class LintRuns:
    """At most one pylint at a time, however many ``lint`` requests come at once.

    pylint takes seconds of CPU and ~100 MB: one per request let a client (or a few editors
    re-linting on every keystroke) start dozens at once and starve the broker service, whose
    event loop carries the gamepad. A request that arrives while a run is going waits for the
    *next* run (which starts after it arrived, so it sees the program as it is now); all the
    requests that arrive meanwhile share that one next run.
    """

    def __init__(self) -> None:
        self._running: asyncio.Task[list[dict[str, Any]]] | None = None
        self._next: asyncio.Task[list[dict[str, Any]]] | None = None

    async def lint(self, student_code: Path,
                   aliases: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        if self._next is not None and not self._next.done():
            return await asyncio.shield(self._next)
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(lint(student_code, aliases=aliases))
            return await asyncio.shield(self._running)
        self._next = asyncio.ensure_future(self._after(self._running, student_code, aliases))
        return await asyncio.shield(self._next)

    async def _after(self, running: asyncio.Task[Any], student_code: Path,
                     aliases: Mapping[str, str] | None) -> list[dict[str, Any]]:
        await asyncio.gather(running, return_exceptions=True)
        # this run starts now: later requests wait for the one after it
        this = asyncio.current_task()
        if self._next is this:
            self._next = None
        self._running = this
        return await lint(student_code, aliases=aliases)
