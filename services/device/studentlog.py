"""``DeviceConsole``: the LOG lines of lowcar devices that concern the student, on ``log/student``.

PiE's lowcar firmware sends free text (``LOG``, NUL-terminated, at most 131 bytes): its own
"ready" line after each ACK, and whatever a team's or PiE's firmware prints. Every line goes to
the device service's log (``log/device``, for operators). A student sees, on the student console:

- **during a run** (match mode ``auto`` or ``teleop``): every line of every device, because
  that is when what a device says explains what the robot does (PiE's C runtime shows device
  lines in Dawn's console);
- **at any time**: lines the firmware marks as a problem, by starting with ``error``, ``err``,
  ``fatal``, ``fault``, ``warning`` or ``warn`` (any case, brackets or punctuation around
  allowed: ``[ERROR] encoder``, ``warn: hot``). They go out as level ``error`` / ``warning``;
  unmarked lines as ``info``.

Idle or estop, an unmarked line (a reset's "ready", chatter) stays in the device log only.

A line reads ``KoalaBear koala says: ...`` with the device's alias (``runtime.aliases``; the
first one in name order when it has several), else ``KoalaBear 6_4660 says: ...``
(type and ``<type>_<id>``). The record's logger is ``device.<alias or type_id>`` and its
context holds ``uid``, ``type`` and ``alias``.

Flood control (``runtime.flood``, the policies of the executor's console): the same line again
within ``repeat_window`` s of the device's last reported line is counted, and the count
reported as one line ("... repeated that N more times: ...") before the device's next
different line or when the window ends; at most ``per_device`` lines a second per device and
``overall`` lines a second for all devices get through, and one line says how many were
dropped. Text is shown safely: bytes that are not UTF-8 are ``\\xNN`` escapes (the codec's
``parse_log``), control characters are escaped too (a firmware cannot clear a terminal), and a
line is cut at ``MAX_CHARS`` characters. Publishing is one task, in order, QoS 0 like every
log line, from a bounded queue: a stalled broker costs lines, never memory or the device loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.constants import RUNNING_MODES
from runtime.flood import LineBudget, RepeatCounter
from runtime.messages import LogRecord, encode
from runtime.protocol.uid import Uid
from runtime.remote import Connection

log = logging.getLogger(__name__)

MAX_CHARS = 200  #: characters of one device line shown (after escaping)
PER_DEVICE = 5  #: lines a second of one device
OVERALL = 20  #: lines a second of all devices
REPEAT_WINDOW = 10.0
BACKLOG = 100  #: records waiting for the broker at most
TICK = 0.5  #: seconds between two checks for counts to report

_MARK = re.compile(r"^\W*(?P<mark>error|err|fatal|fault|warning|warn)\b", re.IGNORECASE)
_LEVELS = {"error": "error", "err": "error", "fatal": "error", "fault": "error",
           "warning": "warning", "warn": "warning"}

#: the robot's aliases, ``{name: uid}`` (``runtime.aliases.AliasFile.get``)
Aliases = Callable[[], Mapping[str, str]]


def marked_level(text: str) -> str | None:
    """``error`` / ``warning`` if the firmware marked the line so, else None."""
    found = _MARK.match(text)
    return _LEVELS[found["mark"].lower()] if found else None


def concern(mode: str, text: str) -> str | None:
    """The level at which a device line reaches the student in match mode ``mode``, or None
    when it does not concern the student (module docstring)."""
    marked = marked_level(text)
    if mode in RUNNING_MODES:
        return marked or "info"
    return marked


def render(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` safe to show: trailing line ends dropped, control characters escaped
    (``\\t``, ``\\x1b``), cut at ``limit`` characters with a note of what was cut."""
    text = text.rstrip("\r\n")
    shown = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                    for ch in text)
    if len(shown) > limit:
        shown = f"{shown[:limit]}... ({len(shown) - limit} more characters)"
    return shown


@dataclass
class _Device:
    """The flood state of one device's lines."""

    budget: LineBudget
    repeats: RepeatCounter[str]
    name: str = ""
    logger: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    level: str = "info"  #: the level of the last reported line (its repeat count's level)


class DeviceConsole:
    """Device LOG lines to the student console (see the module docstring)."""

    def __init__(self, aliases: Aliases = dict, *, per_device: int = PER_DEVICE,
                 overall: int = OVERALL, repeat_window: float = REPEAT_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.aliases = aliases
        self.per_device = per_device
        self.repeat_window = repeat_window
        self.clock = clock
        self.overall = LineBudget(overall)
        self.outbox: collections.deque[LogRecord] = collections.deque()
        self.lost = 0  #: records dropped because the broker did not keep up
        self.sent = 0
        self._devices: dict[Uid, _Device] = {}
        self._wake = asyncio.Event()

    # -- lines in --------------------------------------------------------------------------------
    def line(self, uid: Uid, type_name: str, text: str, mode: str) -> None:
        """A LOG line of device ``uid`` (of type ``type_name``) arrived in match mode ``mode``."""
        level = concern(mode, text)
        if level is None:
            return
        shown = render(text)
        if not shown:
            return
        now = self.clock()
        device = self._device(uid, type_name)
        if device.repeats.repeat(shown, now):
            return
        self._report_repeats(device)
        self._report_drops(device, now)
        if not device.budget.admit(now) or not self.overall.admit(now):
            return  # an identical next line is dropped too, never counted as its repeat
        device.repeats.start(shown, now)
        device.level = level
        self._emit(level, f"{device.name} says: {shown}", device)

    def tick(self) -> None:
        """Report repeat counts whose window ended and drop counts of ended seconds."""
        now = self.clock()
        for device in self._devices.values():
            if device.repeats.expired(now):
                self._report_repeats(device)
            if device.budget.due(now):
                self._report_drops(device, now)
        if self.overall.due(now):
            dropped = self.overall.roll(now)
            self._emit("warning", f"... {dropped} more device lines dropped: the console shows "
                       f"at most {self.overall.limit} device lines a second", None)

    def _device(self, uid: Uid, type_name: str) -> _Device:
        device = self._devices.get(uid)
        if device is None:
            device = self._devices[uid] = _Device(LineBudget(self.per_device),
                                                  RepeatCounter(self.repeat_window))
        alias = self._alias_of(uid)  # may change while the device is plugged: asked each time
        device.name = f"{type_name} {alias or uid.short}"
        device.logger = f"device.{alias or uid.short}"
        device.context = {"uid": str(uid), "type": type_name, "alias": alias}
        return device

    def _alias_of(self, uid: Uid) -> str | None:
        try:
            aliases = self.aliases()
        except Exception as exc:  # a broken aliases file: the device is still named
            log.debug("aliases unavailable: %s", exc)
            return None
        names = sorted(name for name, target in aliases.items() if target == str(uid))
        return names[0] if names else None

    def _report_repeats(self, device: _Device) -> None:
        taken = device.repeats.take()
        if taken is not None:
            text, count = taken
            self._emit(device.level, f"{device.name} repeated that {count} more "
                       f"time{'' if count == 1 else 's'}: {text}", device, repeats=count)

    def _report_drops(self, device: _Device, now: float) -> None:
        dropped = device.budget.roll(now)
        if dropped:
            self._emit("warning", f"... {dropped} more lines of {device.name} dropped: the "
                       f"console shows at most {self.per_device} lines a second of one device",
                       device, dropped=dropped)

    def _emit(self, level: str, message: str, device: _Device | None, **extra: Any) -> None:
        if len(self.outbox) >= BACKLOG:
            self.lost += 1
            return
        logger = device.logger if device is not None else "device"
        context = {**(device.context if device is not None else {}), **extra}
        self.outbox.append(LogRecord(ts=time.time(), level=level, logger=logger,
                                     message=message, context=context))
        self._wake.set()

    # -- records out -----------------------------------------------------------------------------
    async def run(self, connection: Connection) -> None:
        """Publish the records on ``log/student``, in order, until cancelled."""
        topic = connection.topics.log("student")
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK)
            self._wake.clear()
            self.tick()
            while self.outbox:
                record = self.outbox.popleft()
                try:
                    await connection.publish(topic, encode(record), qos=0)
                    self.sent += 1
                except Exception as exc:  # a log line is never worth an error
                    self.lost += 1
                    log.debug("publish on %s failed: %s", topic, exc)
