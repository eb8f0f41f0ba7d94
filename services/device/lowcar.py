"""``LowcarSession``: the host side of the lowcar protocol for one identified device.

It starts after ``identify`` has seen the device's ACK and speaks lowcar for the life of the
session (lowcar-protocol.md):

- PING every 250 ms (the device resets itself after 1 s without PING or DEVICE_WRITE);
- the device is dead after 1 s without DATA, LOG, PING or ACK, checked every 200 ms and judged
  only after the event loop has read what already arrived (a busy loop cannot kill a live device);
- every DEVICE_DATA goes into the parameter buffer; LOG lines go to the device service's log
  (at most ``LOG_LINES`` a second, the rest counted) and to ``on_log`` (the manager hands them
  to ``studentlog.DeviceConsole``, which shows the student those that concern them);
- desired values go out as DEVICE_WRITE of the params whose value changed since the last write
  (the device keeps what it was sent, so resending equal values is noise on a slow link);
- stop: motor params (``velocity_a/b``, ``duty_cycle``) written as 0 and held there; disable
  (idle, estop, the ``disable`` RPC) also sends RST, which resets the firmware; the next PING then
  gets a fresh ACK, and the session sends back the non-motor values it had written;
- an RST from the device ends the session (the device reset itself: it is re-identified), and
  every teardown sends RST so motors stop even if the device missed the rest.

The method names match ``SmartDeviceClient``'s, so the manager drives both generations alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from runtime.buffer import BufferStore, DeviceBuffer
from runtime.catalog import Catalog, DeviceType
from runtime.constants import motor_stop_values
from runtime.exception import DeviceError, ProtocolError
from runtime.flood import LineBudget
from runtime.protocol import Packet, lowcar
from runtime.protocol.lowcar import LowcarMessage
from runtime.protocol.uid import Uid
from runtime.service.device.identify import Identity
from runtime.service.device.session import SAFETY_PASS, DeviceSession
from runtime.service.device.studentlog import render
from runtime.ticks import aligned_sleep

log = logging.getLogger(__name__)

PING_PERIOD = 0.25  #: seconds between two PINGs
SILENCE_LIMIT = 1.0  #: a device silent this long is dead
CHECK_PERIOD = 0.2  #: how often silence is checked
LOG_LINES = 20  #: LOG lines a second of one device written to the service log at most


class LowcarSession(DeviceSession):
    """One lowcar device (see the module docstring). Lifecycle: ``discover(buffers)`` creates
    the buffer and starts talking; ``await closed()`` returns when the session ends;
    ``close(reason, keep_stream=...)`` ends it (sending RST)."""

    generation = "lowcar"

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        port: str,
        identity: Identity,
        *,
        catalog: Catalog | None = None,
        silence_limit: float = SILENCE_LIMIT,
        ping_period: float = PING_PERIOD,
        motors_allowed: Callable[[], bool] = lambda: True,
        poll_interval: float = SAFETY_PASS,
        on_log: Callable[[LowcarSession, str], None] | None = None,
    ) -> None:
        super().__init__(reader, writer, port, catalog=catalog, silence_limit=silence_limit,
                         motors_allowed=motors_allowed, poll_interval=poll_interval, logger=log)
        self.ping_period = ping_period
        self.on_log = on_log  #: every LOG line of the device, as text (``parse_log``)
        self._log_budget = LineBudget(LOG_LINES)
        self.identity = identity
        self.uid: Uid = identity.uid
        self.device_type: DeviceType = self._type_of(identity.uid)
        self.decoder = lowcar.decoder()
        self.acks = 1
        self.resets_sent = 0
        self.device_resets = 0
        self.logs: list[str] = []  #: the device's last LOG lines
        self.written: dict[str, Any] = {}  #: what the device holds (what we last wrote)
        self.reset_by_device = False
        self._reads: list[asyncio.Future[dict[str, Any]]] = []

    @property
    def name(self) -> str:
        return f"lowcar {self.device_type.name} {self.uid.short}"

    @property
    def subscription(self) -> tuple[int, int]:
        """Every readable param streams (no subscriptions in lowcar); interval 1 ms nominal."""
        return self.device_type.readable_bitmap, 1

    def _type_of(self, uid: Uid) -> DeviceType:
        try:
            return self.catalog.for_uid(uid)
        except Exception as exc:
            raise DeviceError(f"{self.port}: lowcar device {uid.short} has unknown device type "
                              f"{uid.type_id}", port=self.port, uid=str(uid)) from exc

    # -- lifecycle -----------------------------------------------------------------------------

    async def discover(self, buffers: BufferStore, **_: Any) -> DeviceBuffer:
        """``attach`` (the ACK has been seen: nothing to ask the device)."""
        return self.attach(buffers)

    def attach(self, buffers: BufferStore) -> DeviceBuffer:
        """Create the device's buffer and start the session (the ACK has been seen)."""
        self.buffer = buffers.create_device(str(self.uid), self.device_type)
        self.buffer.subscription = self.subscription
        self.buffer.connected = True
        self.last_heard = time.monotonic()
        for packet in self.identity.packets:
            self._handle(packet)
        if self.identity.pending:
            self._feed(self.identity.pending)
        self._spawn(self._read_loop(), "read")
        self._spawn(self._ping_loop(), "ping")
        self._spawn(self._watchdog(CHECK_PERIOD), "watch")
        self._spawn(self._write_loop(), "write")
        return self.buffer

    @property
    def stream_open(self) -> bool:
        """Can the port be probed again after this session (the stream is still there)?"""
        return not (self.transport_lost or self.writer.is_closing() or self.reader.at_eof())

    def _farewell(self) -> None:
        """Every teardown sends RST, so motors stop even if the device missed the rest."""
        with contextlib.suppress(Exception):
            self.writer.write(lowcar.rst())
            self.resets_sent += 1

    # -- requests (the manager's RPC methods) ----------------------------------------------------

    async def subscribe(self, params: Iterable[str] | None = None,
                        interval: float | None = None, timeout: float = 1.0) -> tuple[int, int]:
        """Lowcar devices stream every readable param: only that "subscription" is accepted."""
        readable = self.device_type.readable_bitmap
        if params is not None and self.device_type.bitmap(params) != readable:
            raise DeviceError(
                f"{self.name} streams every readable param; a lowcar device takes no "
                "subscription (read the params you need from its stream)", uid=str(self.uid))
        return self.subscription

    async def ping(self) -> None:
        await self._send(lowcar.ping())

    async def read(self, params: Iterable[str] | None = None,
                   timeout: float | None = None) -> dict[str, Any] | None:
        """The values of the device's next DEVICE_DATA (lowcar has no read request)."""
        wanted = (self.device_type.readable_bitmap if params is None
                  else self.device_type.bitmap(params))
        self._check_readable(self.device_type, wanted, "read")
        if timeout is None:
            return None
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reads.append(answer)
        try:
            values = await asyncio.wait_for(asyncio.shield(answer), timeout)
        except TimeoutError:
            raise DeviceError(f"{self.name} sent no DEVICE_DATA within {timeout:g} s",
                              uid=str(self.uid)) from None
        finally:
            self._reads.remove(answer)
        return {name: values[name] for name in self.device_type.names(wanted) if name in values}

    async def heartbeat(self, heartbeat_id: int | None = None, timeout: float = 1.0) -> float:
        raise DeviceError(f"{self.name} speaks lowcar, which has no heartbeats: its liveness is "
                          "its DEVICE_DATA stream", uid=str(self.uid))

    def disable_now(self) -> None:
        """Motors to 0, then RST (the firmware resets: motors off, PID defaults)."""
        self.stop_motors_now()
        self._write_now(lowcar.rst())
        self.resets_sent += 1
        for param in self.device_type.params:  # what a reset restores is no longer "held"
            if param.motor or param.name.startswith("pid_"):
                self.written.pop(param.name, None)

    def stop_motors_now(self) -> None:
        motors = motor_stop_values(self.device_type)
        if motors:
            self._write_now(lowcar.device_write(self.device_type, motors))
            self.written.update(motors)

    # -- internals -------------------------------------------------------------------------------

    def _handle(self, packet: Packet) -> None:
        kind = packet.type
        if kind == LowcarMessage.DEVICE_DATA:
            self.last_heard = time.monotonic()
            values = lowcar.parse_values(self.device_type, packet.payload)
            if self.buffer is not None:
                self.buffer.update(values)
            for answer in self._reads:
                if not answer.done():
                    answer.set_result(values)
        elif kind == LowcarMessage.LOG:
            self.last_heard = time.monotonic()
            text = lowcar.parse_log(packet.payload)
            self.logs = [*self.logs[-49:], text]
            self._log_line(text)
        elif kind == LowcarMessage.PING:
            self.last_heard = time.monotonic()  # devices may send PING: a keepalive
        elif kind == LowcarMessage.ACK:
            ack = lowcar.parse_ack(packet.payload)
            if ack.uid != self.uid:
                raise ProtocolError(f"uid changed from {self.uid} to {ack.uid}")
            self.last_heard = time.monotonic()
            self.acks += 1  # it reset (our RST) and our PING re-enabled it
            self._restore()
        elif kind == LowcarMessage.RST:
            self.device_resets += 1
            self.reset_by_device = True
            self._lose("the device reset itself (RST)")
        else:
            log.warning("%s on %s sent a %s, which devices do not send", self.name, self.port,
                        kind.name)

    def _log_line(self, text: str) -> None:
        """To the service log (within its budget: a firmware printing in a loop must not
        flood ``log/device``), then to ``on_log``."""
        now = time.monotonic()
        dropped = self._log_budget.roll(now)
        if dropped:
            log.warning("%s sent %d more LOG lines than the %d a second logged here",
                        self.name, dropped, LOG_LINES)
        if self._log_budget.admit(now):
            log.info("%s says: %s", self.name, render(text, 1000))
        if self.on_log is not None:
            try:
                self.on_log(self, text)
            except Exception:  # the student console never breaks a device's session
                log.exception("%s: the student console refused a LOG line", self.name)

    def _restore(self) -> None:
        """After a reset: write back the non-motor values the device held (not its PID
        defaults, which the reset restored on purpose)."""
        keep = {name: value for name, value in self.written.items()
                if not self.device_type.by_name[name].motor}
        self.written.clear()
        if keep:
            self._spawn(self._write_back(keep), "restore")

    async def _write_back(self, values: dict[str, Any]) -> None:
        with contextlib.suppress(DeviceError):  # gone meanwhile: the next session starts over
            await self._write_values(values)

    async def _ping_loop(self) -> None:
        while not self._gone.done():
            with contextlib.suppress(DeviceError):
                await self._send(lowcar.ping())
            await aligned_sleep(self.ping_period)  # every device's PING in one wake-up

    async def _silence_verdict(self, period: float) -> None:
        """Before a verdict the loop turns a few times, so bytes already received are decoded
        (a busy loop cannot kill a live device)."""
        for _ in range(3):
            await asyncio.sleep(0)
        silent = time.monotonic() - self.last_heard
        if silent > self.silence_limit:
            self._lose(f"no packet for {silent:.1f} s")

    async def _flush(self, buffer: DeviceBuffer) -> None:
        buffer.take_reads()  # every readable param streams: nothing to ask for
        values = buffer.take_writes()
        if values:
            await self._write_values(values)

    async def _write_values(self, values: dict[str, Any]) -> None:
        """DEVICE_WRITE of the values that differ from what the device holds; motor params
        as 0 while motors are not allowed."""
        allowed = self.motors_allowed() and not self._held_motors
        changed: dict[str, Any] = {}
        for name, value in values.items():
            param = self.device_type.param(name)
            if param.motor and not allowed:
                value = param.python_type(0)
            if name not in self.written or self.written[name] != value:
                changed[name] = value
        if changed:
            await self._send(lowcar.device_write(self.device_type, changed))
            self.written.update(changed)
