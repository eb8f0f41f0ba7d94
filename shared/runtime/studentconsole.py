"""The student console: which log records a student needs, as readable lines, and a history.

A student reads their own output and errors (``log/student``), plus the few lines of the other
services that explain what the robot does: mode changes, a program stored, devices plugged and
unplugged, and "motors held: no driver input" (the executor says that one on ``log/student``).
Everything else the services log is for operators (``runtime monitor log/+``).

- :func:`relevant` decides, :func:`lines` renders a record as ``HH:MM:SS.mmm text`` lines
  (a record may hold several printed lines), :func:`parse_since` reads ``--since``.
- :class:`ConsoleHistory` keeps the relevant records of the last minutes in the broker
  service, which serves them to ``runtime console --since`` (RPC ``broker.console``): MQTT
  keeps no history, and a console started after an error should still show it.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Iterable
from typing import Any

from runtime.exception import MessageError
from runtime.messages import LogRecord, decode
from runtime.topics import parse_topic

HISTORY_LINES = 2000
HISTORY_SECONDS = 3600.0
#: The history keeps at most this many characters of messages in all, and of one record's
#: message: a student's ``print(big_list)`` every tick must not fill the robot's memory.
HISTORY_CHARS = 2_000_000
MAX_RECORD_CHARS = 10_000
MAX_CONTEXT_BYTES = 2_000  #: a larger ``context`` (a big ``Robot.log`` value) is not kept
#: (logger prefix, message pattern) of other services' records a student needs
OTHER_SERVICES = (
    ("runtime.service.executor", re.compile(r"^(mode \w+ \(was \w+\)|new student program)")),
    ("runtime.service.device", re.compile(r" connected on | removed: ")),
)
SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$")
LEVEL_COLOURS = {"ERROR": "red", "CRITICAL": "red", "WARNING": "yellow"}


def relevant(source: str, record: LogRecord) -> bool:
    """Does a student need this record of ``log/<source>``?"""
    if source == "student":
        return True
    return any(record.logger.startswith(prefix) and pattern.search(record.message)
               for prefix, pattern in OTHER_SERVICES)


def level_of(record: LogRecord) -> str:
    return record.level.upper()


def lines(record: LogRecord, colour: bool = False) -> list[str]:
    """The console lines of one record: its time, then the text; errors and warnings marked
    (and coloured red / yellow when ``colour``)."""
    millis = int(record.ts % 1 * 1000)
    stamp = f"{time.strftime('%H:%M:%S', time.localtime(record.ts))}.{millis:03d}"
    level = level_of(record)
    mark = f"{level} " if level in LEVEL_COLOURS else ""
    rendered = []
    for text in record.message.split("\n") or [""]:
        line = f"{mark}{text}"
        if colour and level in LEVEL_COLOURS:
            line = f"\x1b[{31 if LEVEL_COLOURS[level] == 'red' else 33}m{line}\x1b[0m"
        rendered.append(f"{stamp} {line}")
    return rendered


def parse_since(text: str) -> float:
    """``--since`` in seconds: ``30``, ``30s``, ``10m``, ``2h``; ValueError otherwise."""
    match = SINCE.match(text)
    if not match:
        raise ValueError(f"--since takes a duration like 30s, 10m or 2h, not {text!r}")
    number = float(match.group(1))
    unit = (match.group(2) or "s")[0]
    return number * {"s": 1, "m": 60, "h": 3600}[unit]


class ConsoleHistory:
    """The relevant records of the last :data:`HISTORY_SECONDS` (at most
    :data:`HISTORY_LINES` records and :data:`HISTORY_CHARS` characters of messages, each cut
    to :data:`MAX_RECORD_CHARS`), fed from ``log/+`` messages."""

    def __init__(self, max_records: int = HISTORY_LINES,
                 max_age: float = HISTORY_SECONDS, max_chars: int = HISTORY_CHARS) -> None:
        self.records: collections.deque[tuple[str, LogRecord]] = collections.deque()
        self.max_records = max_records
        self.max_age = max_age
        self.max_chars = max_chars
        self._chars = 0  #: characters of the kept messages

    def on_log(self, topic: str, payload: bytes) -> None:
        """A ``log/<source>`` message (bad payloads are skipped: a console never fails)."""
        try:
            source = parse_topic(topic).source or ""
            record = decode(LogRecord, payload)
        except MessageError:
            return
        if relevant(source, record):
            record = _bounded(record)
            self.records.append((source, record))
            self._chars += len(record.message)
            while self.records and (len(self.records) > self.max_records
                                    or self._chars > self.max_chars):
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        self._chars -= len(self.records.popleft()[1].message)

    def since(self, ts: float | None = None) -> list[dict[str, Any]]:
        """The kept records at or after ``ts`` (UNIX s; None: all), oldest first, each as
        the ``log/<source>`` payload plus ``source``."""
        oldest = time.time() - self.max_age
        while self.records and self.records[0][1].ts < oldest:
            self._drop_oldest()
        return [{**record.to_wire(), "source": source} for source, record in self.records
                if ts is None or record.ts >= ts]


def _bounded(record: LogRecord) -> LogRecord:
    """``record`` with its message cut to :data:`MAX_RECORD_CHARS` (saying how much was left
    out) and a context over :data:`MAX_CONTEXT_BYTES` left out."""
    update: dict[str, Any] = {}
    if len(record.message) > MAX_RECORD_CHARS:
        left_out = len(record.message) - MAX_RECORD_CHARS
        update["message"] = f"{record.message[:MAX_RECORD_CHARS]}... ({left_out} more characters)"
    if record.context and len(repr(record.context)) > MAX_CONTEXT_BYTES:
        update["context"] = {}
    return record.model_copy(update=update) if update else record


def from_wire(items: Iterable[dict[str, Any]]) -> list[LogRecord]:
    """Records as ``ConsoleHistory.since`` returns them (bad ones skipped)."""
    records = []
    for item in items:
        try:
            records.append(LogRecord.model_validate(
                {k: v for k, v in item.items() if k != "source"}))
        except Exception:
            continue
    return records
