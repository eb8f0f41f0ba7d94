"""Student errors as students can read them: their own frames, then one plain sentence.

A traceback through Runtime's internals means nothing to a student, so only frames of the
student's program are kept (``Traceback (your code, most recent call last)``), long runs of
frames (a ``RecursionError``) are shortened, and the last line says in words what happened and,
where we know, what to do. :class:`ErrorReporter` also stops one error repeated every period
from flooding the console: the same error within ``window`` s is counted, not repeated.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from runtime.exception import ExecutionTimeout, RuntimeBaseException
from runtime.flood import RepeatCounter

MAX_FRAMES = 12  # formatted frame lines kept (first 3 and the last ones)
REPEAT_WINDOW = 5.0

#: level, message, context -> the student log (``log/student``)
StudentLog = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class StudentError:
    """One formatted student error: ``message`` (traceback + sentence) and its ``context``."""

    sentence: str
    message: str
    context: dict[str, Any] = field(default_factory=dict)


MEMORY_LIMIT: int | None = None  #: the student process's address-space cap (child.py)


def describe(name: str, exc: BaseException) -> str:
    """The plain sentence for ``exc`` raised by student function ``name``."""
    if isinstance(exc, ExecutionTimeout | RuntimeBaseException):
        text = exc.message
        return text if text.startswith(name) else f"{name}: {text}"
    if isinstance(exc, SystemExit):
        return (f"{name} called sys.exit() or exit(): Runtime does not stop for that; "
                f"{name} just ended early")
    if isinstance(exc, KeyboardInterrupt):
        return f"{name} raised KeyboardInterrupt: Runtime ignores it and keeps running"
    if isinstance(exc, MemoryError):
        limit = f"at most {MEMORY_LIMIT // 2**20} MB" if MEMORY_LIMIT else "no more"
        return (f"{name} ran out of memory (MemoryError): your program may use {limit}; "
                "keep fewer or smaller lists, strings and copies")
    if isinstance(exc, RecursionError):
        return (f"{name} raised RecursionError: a function kept calling itself without end "
                "(is a base case missing?)")
    if isinstance(exc, SyntaxError):
        where = f"{os.path.basename(exc.filename or 'your code')}, line {exc.lineno}"
        return f"{where} has a syntax error: {exc.msg}"
    detail = str(exc)
    kind = type(exc).__name__
    return f"{name} raised {kind}: {detail}" if detail else f"{name} raised {kind}"


def student_frames(exc: BaseException, files: Collection[str]) -> traceback.StackSummary:
    """The frames of ``exc``'s traceback that are in one of the student's ``files``."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if frame.filename in files]
    return traceback.StackSummary.from_list(frames)


def format_error(name: str, exc: BaseException, files: Collection[str]) -> StudentError:
    """``exc`` raised by student function ``name`` as a :class:`StudentError`."""
    sentence = describe(name, exc)
    lines: list[str] = []
    if isinstance(exc, SyntaxError):
        if exc.text:
            lines.append(f"    {exc.text.rstrip()}")
            if exc.offset:
                indent = len(exc.text) - len(exc.text.lstrip())
                lines.append("    " + " " * max(exc.offset - 1 - indent, 0) + "^")
        line = exc.lineno
    else:
        frames = student_frames(exc, files)
        formatted = [_short_path(text) for text in frames.format()]
        if len(formatted) > MAX_FRAMES:
            hidden = len(formatted) - MAX_FRAMES
            formatted = [*formatted[:3], f"  ... {hidden} more ...\n",
                         *formatted[-(MAX_FRAMES - 3):]]
        if formatted:
            lines.append("Traceback (your code, most recent call last):")
            lines.extend(text.rstrip("\n") for text in formatted)
        line = frames[-1].lineno if frames else None
        if not isinstance(exc, ExecutionTimeout | SystemExit | KeyboardInterrupt):
            lines.append(_exception_line(exc))
    lines.append(sentence)
    context: dict[str, Any] = {"function": name, "error": type(exc).__name__}
    if line is not None:
        context["line"] = line
    return StudentError(sentence, "\n".join(lines), context)


def _exception_line(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short_path(text: str) -> str:
    """``File "/robot/state/studentcode.py"`` -> ``File "studentcode.py"`` in frame lines."""
    start = text.find('File "')
    if start < 0:
        return text
    end = text.find('"', start + 6)
    path = text[start + 6:end]
    return text[:start + 6] + os.path.basename(path) + text[end:]


class ErrorReporter:
    """Formats student errors and sends them to the student log, without repeating itself.

    ``files()`` gives the student's source files (frames kept in tracebacks). The same error
    (function, type, line) again within ``window`` s is only counted; the count is reported
    as a line of its own, naming that error, before the next different report or when the run
    ends (:meth:`close`). One reporter lives for one run: a new run never inherits a count.
    """

    def __init__(self, log: StudentLog, files: Callable[[], Collection[str]],
                 window: float = REPEAT_WINDOW, clock: Callable[[], float] = time.monotonic):
        self.log = log
        self.files = files
        self.window = window
        self.clock = clock
        self.reported = 0
        self._repeats: RepeatCounter[tuple[Any, ...]] = RepeatCounter(window)
        self._last_context: dict[str, Any] = {}

    def report(self, name: str, exc: BaseException, **context: Any) -> StudentError | None:
        """Report ``exc`` raised by ``name``; None if it was only counted as a repeat."""
        error = format_error(name, exc, self.files())
        key = (name, type(exc).__name__, error.context.get("line"), str(exc)[:200])
        now = self.clock()
        if self._repeats.repeat(key, now):
            return None
        self.close()
        self._repeats.start(key, now)
        self._last_context = {**error.context, **context}
        self.reported += 1
        self.log("error", error.message, self._last_context)
        return error

    def close(self) -> None:
        """Report the repeats of the last error, if any (before another error, at run end)."""
        taken = self._repeats.take()
        if taken is not None:
            (name, kind, line, _), repeats = taken
            where = f", line {line}" if line is not None else ""
            self.log("error", f"the {kind} in {name}{where} happened {repeats} more "
                     f"time{'' if repeats == 1 else 's'}",
                     {**self._last_context, "repeats": repeats})

    def warn(self, message: str, **context: Any) -> None:
        """A problem that is not an exception (no code to run in a mode...)."""
        self.log("warning", message, context)
