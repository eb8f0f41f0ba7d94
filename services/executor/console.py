"""The student's ``print``: builtin-compatible, to ``log/student``, with flood control.

Students print in ``teleop_main``, 50 times a second, and sometimes in a loop with no sleep at
all. Every line cannot be an MQTT message, so:

- lines printed within ``coalesce`` s of each other travel as one record (lines joined by
  newlines), at most ``MAX_RECORD_LINES`` lines per record;
- at most ``max_lines`` lines a second get through; the rest are counted and one line says how
  many were dropped;
- ``print`` itself only appends to a list under a lock (microseconds, never blocks on MQTT):
  a flusher thread builds and sends the records; ``print(..., flush=True)`` sends what is
  pending from the calling thread at once;
- records leave in the order the lines were written, whichever thread sends them (one send
  lock from taking lines to having sent them), so an error report that flushes the console
  first comes after the prints made before it.

``print(..., file=f)`` with a real file writes to that file like the builtin; ``sys.stderr``
lines go out with level ``warning``. A partial line (``end=""``) waits for its newline, for
``flush=True``, or at most ``PARTIAL_WAIT`` s.
"""

from __future__ import annotations

import builtins
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from runtime.flood import LineBudget
from runtime.service.executor.errors import StudentLog
from runtime.service.executor.sync import start_thread

COALESCE = 0.05
MAX_LINES = 100  # per second
MAX_RECORD_LINES = 50
PARTIAL_WAIT = 1.0


class Console:
    """Student output into ``log(level, message, context)`` records (module docstring)."""

    def __init__(self, log: StudentLog, *, max_lines: int = MAX_LINES,
                 coalesce: float = COALESCE, clock: Callable[[], float] = time.monotonic):
        self.log = log
        self.max_lines = max_lines
        self.coalesce = coalesce
        self.clock = clock
        self._budget = LineBudget(max_lines)
        self._lock = threading.Condition(threading.Lock())
        # held from taking lines to having sent them: records leave in the order written,
        # whichever thread (flusher, flush()) sends them
        self._send_lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []  # (level, line)
        self._partial: dict[str, tuple[str, float]] = {}  # level -> (text, since)
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the student's print ------------------------------------------------------------------
    def print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n",
              file: Any = None, flush: bool = False) -> None:
        """``print`` as in Python, to the student log unless ``file`` is a real file."""
        if sep is not None and not isinstance(sep, str):
            raise TypeError(f"sep must be None or a string, not {type(sep).__name__}")
        if end is not None and not isinstance(end, str):
            raise TypeError(f"end must be None or a string, not {type(end).__name__}")
        if file is not None and file is not sys.stdout and file is not sys.stderr:
            builtins.print(*objects, sep=sep, end=end, file=file, flush=flush)
            return
        text = (" " if sep is None else sep).join(map(str, objects))
        text += "\n" if end is None else end
        self.write(text, "warning" if file is sys.stderr else "info", flush)

    def write(self, text: str, level: str = "info", flush: bool = False) -> None:
        """Add ``text`` (may hold several lines, or part of one) to the output."""
        now = self.clock()
        with self._lock:
            partial, since = self._partial.pop(level, ("", now))
            lines = (partial + text).split("\n")
            rest = lines.pop()
            if rest:
                self._partial[level] = (rest, since)
            for line in lines:
                self._add(level, line, now)
            if flush and rest:
                self._add(level, self._partial.pop(level)[0], now)
            if not flush and (self._pending or self._partial or self._dropped):
                self._ensure_thread()
                self._lock.notify()
        if flush:  # sent now, from this thread: nothing the program does next can hold it up
            self.flush()

    @property
    def dropped_total(self) -> int:
        """Printed lines dropped so far (over the line budget)."""
        return self._budget.dropped_total

    @property
    def _dropped(self) -> int:
        return self._budget.dropped

    def _add(self, level: str, line: str, now: float) -> None:
        self._roll_window(now)
        if self._budget.admit(now):
            self._pending.append((level, line))

    def _roll_window(self, now: float, force: bool = False) -> None:
        """Start a new one-second window if it is time (or ``force``); the drop count of the
        last one becomes a line."""
        dropped = self._budget.roll(now, force)
        if dropped:
            self._pending.append(("warning", (
                f"... {dropped} printed lines dropped: the console shows at most "
                f"{self.max_lines} lines a second (print less often, e.g. only when a value "
                "changes)")))

    # -- sending ------------------------------------------------------------------------------
    def flush(self) -> None:
        """Send everything pending now (partial lines too), in the calling thread."""
        with self._send_lock:
            with self._lock:
                for level in list(self._partial):
                    self._pending.append((level, self._partial.pop(level)[0]))
                if self._dropped:
                    self._roll_window(self.clock(), force=True)
                records = self._take()
            self._send(records)

    def _take(self) -> list[tuple[str, str]]:
        """Group pending lines into records: same level, at most MAX_RECORD_LINES each."""
        records: list[tuple[str, list[str]]] = []
        for level, line in self._pending:
            if records and records[-1][0] == level and len(records[-1][1]) < MAX_RECORD_LINES:
                records[-1][1].append(line)
            else:
                records.append((level, [line]))
        self._pending = []
        return [(level, "\n".join(lines)) for level, lines in records]

    def _send(self, records: list[tuple[str, str]]) -> None:
        for level, message in records:
            try:
                self.log(level, message, {})
            except Exception:  # the console never breaks the student's program
                pass

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._flusher, name="student console",
                                            daemon=True)
            start_thread(self._thread)

    def _flusher(self) -> None:
        """Wait for output, let more arrive for ``coalesce`` s, send; partial lines later."""
        while True:
            with self._lock:
                while not (self._pending or self._partial or self._dropped or self._closed):
                    self._lock.wait()
                if self._closed:
                    break
                if self._pending:
                    deadline = self.clock() + self.coalesce
                    while not self._closed:
                        remaining = deadline - self.clock()
                        if remaining <= 0:
                            break
                        self._lock.wait(remaining)
                now = self.clock()
                for level, (text, since) in list(self._partial.items()):
                    if now - since >= PARTIAL_WAIT:
                        self._pending.append((level, text))
                        del self._partial[level]
                if self._budget.due(now):
                    self._roll_window(now)
                if not self._pending:  # only a partial line or a drop count: wait their time
                    waits = [PARTIAL_WAIT - (now - since) for _, since in self._partial.values()]
                    if self._dropped:
                        waits.append(self._budget.remaining(now))
                    self._lock.wait(max(min(waits, default=self.coalesce), 0.001))
                    continue
            with self._send_lock:
                with self._lock:
                    records = self._take()
                self._send(records)

    def close(self) -> None:
        """Send what is left and stop the flusher."""
        self.flush()
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)
