"""The executor's liveness counter: a heartbeat in shared memory that a frozen process cannot fake.

Why: a last will fires only when the broker notices a dead TCP connection (never, for a frozen
client on amqtt; seconds on Mosquitto), and a retained ``match`` outlives the executor. So the
executor's control process advances a counter in a shared-memory segment from its own asyncio
loop (:func:`start_liveness`), every ``LIVENESS_PERIOD`` (20 ms). Only a running loop advances
it: a SIGSTOPped, deadlocked or killed executor, or a loop blocked by a long call, stops it. The
device service reads it (:class:`LivenessMonitor`) and stops the motors and sends Disable when the
counter has not moved for ``LIVENESS_TIMEOUT`` (200 ms), so motors stop within 300 ms.

A killed executor is seen at once: the segment's owner lock (``runtime.buffer.segment``) is
released by the kernel when its process dies, so the monitor reports "no counter" immediately.

Segment ``runtime.<robot>@liveness.executor`` (kind 4), body (offsets from ``BODY``)::

    0   counter u64 | period f64 | last beat f64 (UNIX seconds, for humans and tools)
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable

from runtime.buffer.base import BODY, Buffer
from runtime.buffer.segment import Segment, segment_name
from runtime.constants import LIVENESS_PERIOD
from runtime.exception import BufferStoreError

KIND_LIVENESS = 4
BEAT = struct.Struct("<Qdd")
SIZE = BODY + BEAT.size
NAME = "executor"


class LivenessBuffer(Buffer):
    """The mapped liveness segment (owner: the executor's control process)."""

    KIND = KIND_LIVENESS

    def __init__(self, segment: Segment, period: float = LIVENESS_PERIOD) -> None:
        super().__init__(segment, "executor liveness")
        if segment.owner:
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

    def beat(self) -> int:
        """Advance the counter (the owner only); its new value."""
        counter, period, _ = BEAT.unpack_from(self.view, BODY)
        BEAT.pack_into(self.view, BODY, counter + 1, period, time.time())
        return int(counter + 1)


def liveness_name(robot: str) -> str:
    return segment_name(robot, "liveness", NAME)


class LivenessBeat:
    """Advances the counter every ``period`` seconds from one asyncio loop (see the module)."""

    def __init__(self, robot: str, loop: asyncio.AbstractEventLoop,
                 period: float = LIVENESS_PERIOD) -> None:
        self.buffer = LivenessBuffer(Segment.create(liveness_name(robot), SIZE), period)
        self.loop = loop
        self.period = period
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None

    def start(self) -> LivenessBeat:
        if self._handle is None:
            self._handle = self.loop.call_soon(self._tick)
        return self

    def _tick(self) -> None:
        if self.buffer.closed:
            return
        self.buffer.beat()
        self._handle = self.loop.call_later(self.period, self._tick)

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
    """The reader's side: how long since the executor's counter last moved?

    ``silent_for()`` attaches (and re-attaches after an executor restart) by itself; it answers
    None while there is no live counter (no executor, or its owner died). The first sight of a
    counter counts as movement (we cannot know how old it is).
    """

    def __init__(self, robot: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.robot = robot
        self.clock = clock
        self._buffer: LivenessBuffer | None = None
        self._counter = -1
        self._moved = 0.0

    def silent_for(self) -> float | None:
        buffer = self._attach()
        if buffer is None:
            return None
        now = self.clock()
        try:
            counter = buffer.counter
        except BufferStoreError:
            return None
        if counter != self._counter:
            self._counter, self._moved = counter, now
        return now - self._moved

    def forgive(self) -> None:
        """The reader itself was paused (its loop woke late): what it missed is no evidence
        against the executor, so the silence clock restarts now."""
        self._moved = self.clock()

    def _attach(self) -> LivenessBuffer | None:
        buffer = self._buffer
        if buffer is not None and buffer.is_live():
            return buffer
        self.close()
        try:
            segment = Segment.attach(liveness_name(self.robot), "executor liveness")
            self._buffer = LivenessBuffer(segment)
        except BufferStoreError:
            return None
        self._counter = -1
        return self._buffer

    def close(self) -> None:
        if self._buffer is not None:
            with contextlib.suppress(Exception):
                self._buffer.close()
            self._buffer = None
