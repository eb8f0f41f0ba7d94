"""``Complaints``: say what is wrong with incoming data at most once per interval and key.

A broken client can send a bad message every millisecond; each one is worth knowing about, but
not worth a log line. The first problem for a key (a topic, a port...) is logged at once; the
next ones within ``interval`` seconds are only counted, and the next line says how many there
were. Used by typed subscriptions (``Connection.subscribe_typed``), the broker's input bridge,
and anything else that reads data it does not control.
"""

from __future__ import annotations

import logging
import time


class Complaints:
    """``complaints.report(key, message)``: log ``message`` unless ``key`` was reported less
    than ``interval`` s ago; then it is counted and mentioned in the next line."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0,
                 level: int = logging.WARNING) -> None:
        self.logger = logger
        self.interval = interval
        self.level = level
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def report(self, key: str, message: str) -> bool:
        """Log (True) or count (False) one problem with ``key``."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        since = f" ({held} more since the last report)" if held else ""
        self.logger.log(self.level, "%s%s", message, since)
        self._last[key] = now
        return True

    def held(self, key: str) -> int:
        """Problems with ``key`` counted but not logged yet."""
        return self._held.get(key, 0)
