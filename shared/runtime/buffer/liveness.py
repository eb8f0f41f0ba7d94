"""The executor's liveness counter: a heartbeat in shared memory that a frozen process cannot fake.

Why: a last will fires only when the broker notices a dead TCP connection (never, for a frozen
client on amqtt; seconds on Mosquitto), and a retained ``match`` outlives the executor. So the
executor's control process advances a counter in a shared-memory segment from its own asyncio
loop (:func:`start_liveness`), every ``LIVENESS_PERIOD`` (20 ms; ``LIVENESS_HELD_PERIOD``, 0.5 s,
while it has stated idle or estop: the mode holds the motors then, and stating auto or teleop
beats at once and brings the short period back). Only a running loop advances
it: a SIGSTOPped, deadlocked or killed executor, or a loop blocked by a long call, stops it. The
device service reads it (:class:`LivenessMonitor`) and stops the motors and sends Disable when the
last beat is older than ``LIVENESS_TIMEOUT`` (200 ms), so motors stop within 300 ms.

Each beat also writes its time on the monotonic clock (``CLOCK_MONOTONIC``, one clock for every
process of the machine), so the reader knows how old a beat is however seldom it looks: the
device service looks only twice a second while the match mode holds the motors, and a counter
that merely *moved* since its last look could be 0.5 s old. Without the stamp, an executor that
froze just before a teleop ``match`` reached the device service was taken for alive when that
match arrived, and the motors were released for up to ``LIVENESS_TIMEOUT`` (and the same for the
first look of a restarted device service).

A killed executor is seen at once: the segment's owner lock (``runtime.buffer.segment``) is
released by the kernel when its process dies, so the monitor reports "no counter" immediately.

The segment also carries the executor's **stated mode**: the control process writes the mode it
has just switched to (:meth:`LivenessBeat.state_mode`) before it zeroes the motors and publishes
``match``, and rings the segment's waiters (``WAKE_MODE``). The device service watches it
(:meth:`LivenessMonitor.watch_mode`) and stops the motors and sends Disable the moment the
executor states idle or estop: a stop costs one wake-up between two processes instead of two
broker hops (issue 10: stop -> Disable p99 <= 5 ms). It only ever *stops* earlier: motors are
released by the retained ``match`` alone (``services/device/safety.py``, rule ``mode``).

Segment ``runtime.<robot>@liveness.executor`` (kind 4), body (offsets from ``BODY``)::

    0   counter u64 | period f64 | last beat f64 (UNIX seconds, for humans and tools)
    24  stated mode u8 (0 none yet, then ``MODE_CODES``)
    32  last beat f64 (seconds on the monotonic clock; the segment's creation until the first)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import time
from collections.abc import Callable

from runtime.buffer.base import BODY, Buffer
from runtime.buffer.segment import Segment, segment_name
from runtime.buffer.wake import WAKE_MODE, Waiter
from runtime.constants import LIVENESS_HELD_PERIOD, LIVENESS_PERIOD, RUNNING_MODES
from runtime.exception import BufferStoreError

KIND_LIVENESS = 4
BEAT = struct.Struct("<Qdd")
MODE_OFFSET = BODY + BEAT.size
STAMP = struct.Struct("<d")
STAMP_OFFSET = BODY + 32  # 8-byte aligned: one store writes it, one load reads it
SIZE = STAMP_OFFSET + STAMP.size
NAME = "executor"
#: the stated mode's code is its index here plus one (0: the executor has stated none yet)
MODE_CODES = ("idle", "auto", "teleop", "estop")
STOP_CODES = frozenset({MODE_CODES.index("idle") + 1, MODE_CODES.index("estop") + 1})


class LivenessBuffer(Buffer):
    """The mapped liveness segment (owner: the executor's control process)."""

    KIND = KIND_LIVENESS

    def __init__(self, segment: Segment, period: float = LIVENESS_PERIOD,
                 now: float | None = None) -> None:
        super().__init__(segment, "executor liveness")
        if segment.owner:
            STAMP.pack_into(self.view, STAMP_OFFSET, time.monotonic() if now is None else now)
            BEAT.pack_into(self.view, BODY, 0, period, time.time())
            self._ready()

    @property
    def counter(self) -> int:
        self._check_open()
        return int(BEAT.unpack_from(self.view, BODY)[0])

    @property
    def period(self) -> float:
        self._check_open()
        return float(BEAT.unpack_from(self.view, BODY)[1])

    @property
    def stamp(self) -> float:
        """When the last beat was, in seconds on the monotonic clock (``time.monotonic()``)."""
        self._check_open()
        return float(STAMP.unpack_from(self.view, STAMP_OFFSET)[0])

    def beat(self, now: float | None = None) -> int:
        """Advance the counter (the owner only), stamped ``now`` (default: the monotonic
        clock); its new value. The stamp is written first: a reader that sees the new counter
        sees its stamp or a newer one (a stamp read older than it is only makes the executor
        look silent longer, the safe side)."""
        STAMP.pack_into(self.view, STAMP_OFFSET, time.monotonic() if now is None else now)
        counter, period, _ = BEAT.unpack_from(self.view, BODY)
        BEAT.pack_into(self.view, BODY, counter + 1, period, time.time())
        return int(counter + 1)

    @property
    def mode(self) -> str | None:
        """The mode the executor last stated (one of ``MODE_CODES``), None if none yet."""
        self._check_open()
        code = self.view[MODE_OFFSET]
        return MODE_CODES[code - 1] if 0 < code <= len(MODE_CODES) else None

    def state_mode(self, mode: str) -> None:
        """Write the executor's new mode (the owner only) and ring the watchers at once.
        ``ValueError`` for a mode not in ``MODE_CODES``."""
        self._check_open()
        code = MODE_CODES.index(mode) + 1
        if self.view[MODE_OFFSET] != code:
            self.view[MODE_OFFSET] = code
            self.waiters.notify(WAKE_MODE)


def liveness_name(robot: str) -> str:
    return segment_name(robot, "liveness", NAME)


class LivenessBeat:
    """Advances the counter every ``period`` seconds from one asyncio loop, every
    ``held_period`` while the stated mode is idle or estop (see the module)."""

    def __init__(self, robot: str, loop: asyncio.AbstractEventLoop,
                 period: float = LIVENESS_PERIOD, now: float | None = None,
                 held_period: float = LIVENESS_HELD_PERIOD) -> None:
        self.buffer = LivenessBuffer(Segment.create(liveness_name(robot), SIZE), period, now)
        self.loop = loop
        self.period = period
        self.held_period = held_period
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None

    def start(self) -> LivenessBeat:
        if self._handle is None:
            self._handle = self.loop.call_soon(self._tick)
        return self

    @property
    def next_period(self) -> float:
        """Seconds to the beat after the next: ``held_period`` while the stated mode is idle
        or estop, else ``period``."""
        held = not self.buffer.closed and self.buffer.view[MODE_OFFSET] in STOP_CODES
        return self.held_period if held else self.period

    def _tick(self) -> None:
        if self.buffer.closed:
            return
        self.buffer.beat()
        self._handle = self.loop.call_later(self.next_period, self._tick)

    def state_mode(self, mode: str) -> None:
        """Tell the device service the executor's new mode now (see the module docstring).
        A running mode is stated with a beat first, and the short period from there on: the
        beat the device service dates the executor by when that mode's ``match`` arrives is
        this one, not one up to ``held_period`` old."""
        if self.buffer.closed:
            return
        if mode in RUNNING_MODES and self._handle is not None:
            self._handle.cancel()
            self.buffer.beat()
            self.buffer.state_mode(mode)
            self._handle = self.loop.call_later(self.period, self._tick)
        else:
            self.buffer.state_mode(mode)

    def stop(self) -> None:
        """Stop beating and remove the segment (the device service then stops the motors)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.buffer.close()


def start_liveness(store: object, loop: asyncio.AbstractEventLoop | None = None,
                   period: float = LIVENESS_PERIOD) -> LivenessBeat:
    """Start beating for ``store``'s robot on ``loop`` (default: the running loop). Call it in
    the executor's control process, on the loop that serves its RPC and mode changes."""
    robot = getattr(store, "robot", store)
    assert isinstance(robot, str)
    return LivenessBeat(robot, loop or asyncio.get_running_loop(), period).start()


class LivenessMonitor:
    """The reader's side: how long since the executor last beat?

    ``silent_for()`` attaches (and re-attaches after an executor restart) by itself; it answers
    None while there is no live counter (no executor, or its owner died). A counter that moved
    since the last look (or is seen for the first time) is as old as its beat's stamp, not as
    old as the look; a stamp ahead of ``clock`` (another clock) counts as now. ``forgive``
    restarts the silence at its call whatever the stamp says (the reader itself was paused).
    """

    def __init__(self, robot: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.robot = robot
        self.clock = clock
        self._buffer: LivenessBuffer | None = None
        self._counter = -1
        self._moved = 0.0
        self._forgiven = -math.inf
        self._waiter: Waiter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def mode(self) -> str | None:
        """The mode the executor states in the segment; None without a live segment or before
        the executor stated one."""
        return self.read()[1]

    def read(self) -> tuple[float | None, str | None]:
        """``(silent_for(), mode())`` from one look at the segment (one liveness check of
        the mapping: the device service asks 50 times a second)."""
        silent = self.silent_for()
        buffer = self._buffer
        if silent is None or buffer is None:
            return silent, None
        try:
            return silent, buffer.mode
        except BufferStoreError:
            return silent, None

    def stated_stop(self) -> bool:
        """Does the segment attached now say the executor stated idle or estop? One byte read
        and no system call (the device service asks before every write); False without a
        segment. A segment replaced meanwhile can only add a stop, never remove one (the
        rules re-attach on their next check)."""
        buffer = self._buffer
        if buffer is None or buffer.closed:
            return False
        return buffer.view[MODE_OFFSET] in STOP_CODES

    def watch_mode(self, loop: asyncio.AbstractEventLoop, on_change: Callable[[], None]) -> None:
        """Call ``on_change()`` on ``loop`` in the loop turn the executor states a new mode
        (the segment is watched from the next attach on, and again after an executor
        restart; an attach happens on every ``silent_for``/``mode`` call). A second call
        replaces the first."""
        self._unwatch()
        self._waiter = waiter = Waiter()
        self._loop = loop

        def rang() -> None:
            if waiter.poll():
                on_change()

        loop.add_reader(waiter.fileno(), rang)
        if self._buffer is not None:
            waiter.watch(self._buffer, WAKE_MODE)

    def silent_for(self) -> float | None:
        buffer = self._attach()
        if buffer is None:
            return None
        now = self.clock()
        try:
            counter = buffer.counter
            stamp = buffer.stamp  # read after the counter: as new as the counter's beat or newer
        except BufferStoreError:
            return None
        if counter != self._counter:
            self._counter = counter
            self._moved = max(self._forgiven, stamp if stamp <= now else now)
        return now - self._moved

    def forgive(self) -> None:
        """The reader itself was paused (its loop woke late): what it missed is no evidence
        against the executor (a whole process group stopped and continued: its last beat is as
        old as the pause), so the silence clock restarts now."""
        self._moved = self._forgiven = self.clock()

    def _attach(self) -> LivenessBuffer | None:
        buffer = self._buffer
        if buffer is not None and buffer.is_live():
            return buffer
        self._detach()
        try:
            segment = Segment.attach(liveness_name(self.robot), "executor liveness")
            self._buffer = LivenessBuffer(segment)
        except BufferStoreError:
            return None
        self._counter = -1
        if self._waiter is not None:
            self._waiter.watch(self._buffer, WAKE_MODE)
        return self._buffer

    def _detach(self) -> None:
        buffer, self._buffer = self._buffer, None
        if buffer is not None:
            if self._waiter is not None:
                with contextlib.suppress(Exception):
                    self._waiter.unwatch(buffer)
            with contextlib.suppress(Exception):
                buffer.close()

    def close(self) -> None:
        self._detach()
        self._unwatch()

    def _unwatch(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(waiter.fileno())
            waiter.close()
