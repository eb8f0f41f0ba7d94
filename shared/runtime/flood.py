"""Flood control for console lines: a per-second line budget and a repeat counter.

Two sources flood the student console: a student's ``print`` in a loop (the executor's
``Console``), the same error every period (``ErrorReporter``) and a device whose firmware prints
in a loop (the device service's ``DeviceConsole``). They share these two policies, pure and
clocked by their caller (so they are tested without sleeping), while each keeps its own words:

- :class:`LineBudget`: at most ``limit`` lines per ``period`` s get through; the rest are
  counted, and the count of a window is handed back once when the next window starts, so the
  owner says "N lines dropped" in one line of its own;
- :class:`RepeatCounter`: the same key again within ``window`` s of its report is only
  counted; the owner reports the count ("... N more times") before the next different report
  or when it closes.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")


class LineBudget:
    """At most ``limit`` lines per ``period`` seconds (see the module docstring)."""

    def __init__(self, limit: int, period: float = 1.0) -> None:
        self.limit = limit
        self.period = period
        self.dropped = 0  #: lines refused in the current window (not yet reported)
        self.dropped_total = 0
        self._window = float("-inf")
        self._used = 0

    def roll(self, now: float, force: bool = False) -> int:
        """Start a new window if the current one is over (or ``force``); returns the number
        of lines the ended window dropped (0 if the window goes on), which the caller
        reports."""
        if not force and now - self._window < self.period:
            return 0
        dropped, self.dropped = self.dropped, 0
        self._window, self._used = now, 0
        return dropped

    def admit(self, now: float) -> bool:
        """May one more line through now? Refused lines are counted. Call :meth:`roll` first
        to collect the count of a window that ended (if not, the new window starts here and
        the count carries over into the next report: merged, never lost)."""
        if now - self._window >= self.period:
            self._window, self._used = now, 0
        if self._used >= self.limit:
            self.dropped += 1
            self.dropped_total += 1
            return False
        self._used += 1
        return True

    def due(self, now: float) -> bool:
        """Is a drop count waiting for its window to end, and has it ended?"""
        return bool(self.dropped) and now - self._window >= self.period

    def remaining(self, now: float) -> float:
        """Seconds until the current window ends (0 if it has)."""
        return max(self.period - (now - self._window), 0.0)


class RepeatCounter(Generic[K]):
    """The same key again within ``window`` s of its report is counted, not reported."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.key: K | None = None
        self.count = 0  #: repeats of ``key`` not yet reported
        self._since = 0.0

    def repeat(self, key: K, now: float) -> bool:
        """Is ``key`` a repeat of the last reported key within the window? (Then counted.)"""
        if self.key is not None and key == self.key and now - self._since < self.window:
            self.count += 1
            return True
        return False

    def start(self, key: K, now: float) -> None:
        """``key`` is reported now: later repeats count against it (take the old count
        first)."""
        self.key, self._since, self.count = key, now, 0

    def take(self) -> tuple[K, int] | None:
        """The last key and its unreported repeats (if any), which are then reported."""
        if not self.count or self.key is None:
            return None
        count, self.count = self.count, 0
        return self.key, count

    def expired(self, now: float) -> bool:
        """Has the window of the last key ended with repeats still unreported?"""
        return bool(self.count) and now - self._since >= self.window
