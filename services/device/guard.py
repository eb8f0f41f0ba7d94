"""``MotorGuard``: the stop rules applied to the devices of the device service.

The policy is ``safety.StopRules`` (pure); this is the mechanism around it: it follows the
retained ``match`` and ``service/executor/status`` topics, reads the driver-input buffers and the
executor's liveness segment (its counter and its stated mode), asks the rules every ``period``
(20 ms; ``HELD_PERIOD``, 0.5 s, while the match mode holds the motors), on every message and
the moment the executor states a new mode in shared memory (a stop then reaches the devices
without waiting for ``match`` to cross the broker), and on a new verdict holds or releases the
motors of every device, sends Disable when the holding rule asks for one, and then says so in
one log line naming the rule and the devices.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from runtime.buffer import BufferStore, GamepadBuffer, KeyboardBuffer
from runtime.buffer.liveness import LivenessMonitor
from runtime.constants import RUNNING_MODES
from runtime.exception import BufferStoreError, DeviceError
from runtime.messages import Match, ServiceStatus
from runtime.remote import Connection
from runtime.service.device.safety import InputState, SafetyState, StopRules, Verdict
from runtime.service.device.session import DeviceSession
from runtime.trace import hop

log = logging.getLogger(__name__)

INPUT_KEYS = ("0", "1", "2", "3", "keyboard")
PERIOD = 0.02  #: seconds between two checks of the stop rules
STALL = 0.1  #: a check this late means this process was paused (see ``run``)
#: seconds between two checks that the input buffers are still their owner's (a few syscalls
#: each): a restarted broker service is followed this much later, well within the 500 ms after
#: which the old buffers' input counts as stale anyway
INPUT_RECHECK = 0.1
#: seconds between two checks while the match mode holds the motors (idle, estop): only a
#: message (``match``, the executor's status) or the executor's ring can change that verdict,
#: and each applies the rules at once; the checks then only keep the liveness bookkeeping, so
#: an idle robot wakes this loop 2 times a second instead of 50 (docs/performance.md, idle CPU)
HELD_PERIOD = 0.5


class MotorGuard:
    """Applies the stop rules (see the module docstring) to ``devices()``."""

    def __init__(self, buffers: BufferStore, devices: Callable[[], Iterable[DeviceSession]],
                 rules: StopRules | None = None, liveness: LivenessMonitor | None = None,
                 period: float = PERIOD) -> None:
        self.buffers = buffers
        self.devices = devices
        self.rules = rules or StopRules()
        self.liveness = liveness or LivenessMonitor(buffers.robot)
        self.period = period
        self.mode = "idle"
        self.mode_since = 0.0  #: when the current mode began (``match.since``)
        self.executor_online = False  #: from its retained status
        self.executor_started = 0.0  #: when the running executor started (its status)
        self.verdict: Verdict = self.rules.check(SafetyState())
        self._inputs: dict[str, GamepadBuffer | KeyboardBuffer] = {}
        self._inputs_found: list[GamepadBuffer | KeyboardBuffer] = []
        self._inputs_checked = -INPUT_RECHECK  #: monotonic time of the last full check
        self._applying: set[asyncio.Task[None]] = set()
        self._tick: asyncio.Future[None] | None = None  #: what ``run`` sleeps on
        #: (mode, since) of a running ``match`` a stated stop overtook, and that stop: until a
        #: different ``match`` arrives, that one is older than the stop and releases nothing
        self._overtaken: tuple[str, float, str] | None = None

    @property
    def allowed(self) -> bool:
        """May motors move? (What the write path asks before every write.) The last check's
        verdict, unless the executor has stated a stop since: then the stop is applied here,
        first, so no nonzero value leaves after a stated stop even when a student's write
        wakes this loop before the executor's ring does (or the ring never comes)."""
        if self.verdict.allowed and self.liveness.stated_stop():
            self._on_stated_mode(asyncio.get_running_loop())
        return self.verdict.allowed

    async def follow(self, connection: Connection) -> None:
        """Follow the match and the executor's status on ``connection``, and the mode the
        executor states in shared memory."""
        loop = asyncio.get_running_loop()
        self.liveness.watch_mode(loop, lambda: self._on_stated_mode(loop))
        # The executor's retained status before the retained match: a device service started
        # during a match would otherwise judge that match with no executor known yet and log
        # a stop by rule executor-gone that never was (the status follows a moment later).
        await connection.subscribe_typed(connection.topics.status("executor"), ServiceStatus,
                                         self._on_executor, qos=1)
        await connection.subscribe_typed(connection.topics.match, Match, self._on_match, qos=1)

    def close(self) -> None:
        for task in self._applying:
            task.cancel()
        for buffer in self._inputs.values():
            self.buffers.forget(buffer)
        self._inputs.clear()
        self.liveness.close()

    def _on_stated_mode(self, loop: asyncio.AbstractEventLoop) -> None:
        """The executor stated a mode: a stop is written to the devices in this loop turn;
        the log line (and a release) follow in a task."""
        hop("device: stated mode rang")
        try:
            verdict = self.apply_now()
        except Exception:
            log.exception("applying the stop rules failed")
            return
        if verdict is not None:
            task = loop.create_task(self._finish(verdict), name="stop rules: stated mode")
            self._applying.add(task)
            task.add_done_callback(self._applied)

    def _applied(self, task: asyncio.Task[None]) -> None:
        self._applying.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("applying the stop rules failed", exc_info=task.exception())

    async def _on_match(self, topic: str, match: Match | None) -> None:
        if match is None:
            return
        self.mode, self.mode_since = match.mode, match.since
        await self.apply()

    async def _on_executor(self, topic: str, status: ServiceStatus | None) -> None:
        """A dead executor cannot stop what it started: its motors stop here."""
        online = status is not None and status.state == "online"
        if status is not None and online:
            self.executor_started = status.started
        self.executor_online = online
        await self.apply()

    def safety_state(self) -> SafetyState:
        """What the stop rules look at, read now from the match, statuses and buffers."""
        silent_for, stated_mode = self.liveness.read()
        stated_mode = self._stated(stated_mode)
        return SafetyState(
            mode=self.mode, mode_since=self.mode_since, executor_online=self.executor_online,
            executor_started=self.executor_started,
            executor_silent_for=silent_for,
            executor_mode=stated_mode,
            inputs=tuple(InputState(b.connected, b.ts) for b in self._input_buffers()
                         if not b.closed),
            now=time.time(),
        )

    def _stated(self, stated: str | None) -> str | None:
        """The stated mode the rules should see. A stated stop seen while ``match`` still says
        auto or teleop overtook that match: the executor may state a new start before the
        stop's own ``match`` arrives, and the old running match must not release the motors
        then. The stop stands until a ``match`` other than the overtaken one arrives."""
        if stated is not None and stated not in RUNNING_MODES:
            if self.mode in RUNNING_MODES and self._overtaken is None:
                self._overtaken = (self.mode, self.mode_since, stated)
            return stated
        if self._overtaken is not None:
            mode, since, stop = self._overtaken
            if (self.mode, self.mode_since) == (mode, since):
                return stop
            self._overtaken = None
        return stated

    def _input_buffers(self) -> list[GamepadBuffer | KeyboardBuffer]:
        """The input buffers, (re)attached when missing or replaced by a restarted broker
        (looked at every ``INPUT_RECHECK`` s: the check runs 50 times a second and on every
        message, and an idle robot should cost next to nothing; a broker service that starts
        late is seen at most that much later: until then its input counts as absent, which
        holds motors in teleop, the safe side)."""
        now = time.monotonic()
        if now - self._inputs_checked < INPUT_RECHECK:
            return self._inputs_found
        self._inputs_checked = now
        found = []
        for key in INPUT_KEYS:
            buffer = self._inputs.get(key)
            if buffer is None or not buffer.is_live():
                if buffer is not None:
                    self.buffers.forget(self._inputs.pop(key))
                try:
                    buffer = (self.buffers.keyboard() if key == "keyboard"
                              else self.buffers.gamepad(int(key)))
                except BufferStoreError:
                    continue
                self._inputs[key] = buffer
            found.append(buffer)
        self._inputs_found = found
        return found

    async def apply(self) -> None:
        """Check the rules; on a new verdict, motors held or released, a Disable when the
        holding rule asks for one, and one log line naming the rule and the devices."""
        verdict = self.apply_now()
        if verdict is not None:
            await self._finish(verdict)

    def apply_now(self) -> Verdict | None:
        """Check the rules; the new verdict, or None if it did not change. A verdict that
        holds the motors is written to every device (zeros, and Disable if the rule asks)
        before this returns: stops never wait for a later loop turn."""
        verdict = self.rules.check(self.safety_state())
        if verdict == self.verdict:
            return None
        self.verdict = verdict
        tick = self._tick
        if tick is not None and not tick.done() and self.next_period() < HELD_PERIOD:
            tick.set_result(None)  # out of a long sleep: this verdict needs the short period
        if not verdict.allowed:
            for client in list(self.devices()):
                try:
                    client.stop_now(verdict.disable)
                except DeviceError as exc:
                    log.warning("%s", exc.message)
        return verdict

    async def _finish(self, verdict: Verdict) -> None:
        """After ``apply_now``: the release of the motors (it may wait for a link), then the
        log line (it costs a publish, so it comes after the devices)."""
        clients = list(self.devices())
        if verdict.allowed:
            for client in clients:
                if verdict != self.verdict:
                    break  # held again meanwhile: that verdict wrote its zeros already
                try:
                    await client.hold_motors(False)
                except DeviceError as exc:
                    log.warning("%s", exc.message)
        names = ", ".join(c.name for c in clients) or "no device connected"
        if verdict.allowed:
            log.info("motors released (%s): every stop rule passes", names)
        else:
            (log.warning if verdict.rule in ("executor-gone", "executor-stuck") else log.info)(
                "motors held at 0%s (%s) by %s", " and disabled" if verdict.disable else "",
                names, verdict)

    def next_period(self) -> float:
        """Seconds until the next periodic check: ``period`` (20 ms), or ``HELD_PERIOD`` while
        the match mode holds the motors (a verdict only messages and the ring change)."""
        return max(self.period, HELD_PERIOD) if self.verdict.rule == "mode" else self.period

    async def run(self) -> None:
        """Check the rules every ``next_period()`` for ever (a task)."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            period = self.next_period()
            self._tick = tick = loop.create_future()
            timer = loop.call_later(period, _resolve, tick)
            try:
                await tick
            finally:
                timer.cancel()
                self._tick = None
            if (loop.time() - asked - period > STALL
                    and self.verdict.rule != "executor-stuck"):
                # This process was paused: the executor's counter may have moved unseen.
                self.liveness.forgive()
            try:
                await self.apply()
            except Exception:
                log.exception("applying the stop rules failed")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
