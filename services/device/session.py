"""``DeviceSession``: what a conversation with one Smart Device is, whatever its generation.

Hibike (``client.py``) and lowcar (``lowcar.py``) differ in their frames, how a device says who
it is, and how liveness is kept; they share everything around that, written once here:

- the byte stream: a read loop feeding the generation's stream decoder (bad frames complained
  about once per ``COMPLAINT_PERIOD`` with ``runtime.complaints``), ``_send`` that turns a
  failed write into ``DeviceGone``;
- the end of a session: one ``_gone`` future (silence, the link closed, RST, ``close``), an
  idempotent ``close`` that stops the session's tasks, releases the buffer and closes the stream
  unless the link is kept for the next conversation;
- silence judging: the watchdog's clock restarts when the whole process was paused (SIGSTOP,
  an overloaded robot), since the device talked into the kernel's buffer meanwhile;
- the buffer plumbing: a write loop woken by the buffer's desired values, and held motors.

A generation supplies ``decoder``, ``_handle(packet)``, ``_flush(buffer)`` (what to send when
the buffer wakes it), ``_write_values``, ``stop_motors`` and ``_silence_verdict`` (what to do
once a device looks silent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from runtime.buffer import WAKE_DESIRED, DeviceBuffer, Waiter
from runtime.catalog import Catalog, DeviceType, default_catalog
from runtime.complaints import Complaints
from runtime.exception import DeviceError, ProtocolError
from runtime.protocol import Packet
from runtime.tasks import TaskSet
from runtime.ticks import aligned_sleep, call_at_next_tick
from runtime.trace import hop
from runtime.transport import ReadTap

COMPLAINT_PERIOD = 5.0  #: seconds between two log lines about bad frames of one device
DRAIN_ABOVE = 4096  #: bytes queued for the device before a write waits for the stream
#: seconds between two passes of the write loop: the doorbell writes (or wakes the loop for)
#: every change at once, so the pass is a safety net; every 40 ms it was a third of the device
#: service's CPU with 32 devices (docs/performance.md)
SAFETY_PASS = 0.2


class DeviceGone(DeviceError):
    """The device stopped talking (unplugged, connection lost, or silent for a second)."""


class FrameDecoder(Protocol):
    """The part of a generation's stream decoder a session uses."""

    bad_frames: int
    last_error: str | None

    def feed(self, data: bytes) -> list[Packet]: ...


class DeviceSession:
    """The generation-independent half of a device conversation (see the module docstring)."""

    decoder: FrameDecoder
    device_type: DeviceType | None
    uid: Any

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        port: str,
        *,
        catalog: Catalog | None,
        silence_limit: float,
        motors_allowed: Callable[[], bool],
        poll_interval: float,
        logger: logging.Logger,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.port = port
        self.catalog = catalog or default_catalog()
        self.silence_limit = silence_limit
        self.motors_allowed = motors_allowed
        self.poll_interval = poll_interval
        self.log = logger
        self.buffer: DeviceBuffer | None = None
        self.last_heard = time.monotonic()  #: the last packet that proves the device alive
        self.transport_lost = False  #: the byte stream itself ended (not just silence)
        self.stalls = 0  #: times the watchdog found the event loop had been paused
        #: called after the subscription changed (the manager re-announces the device)
        self.subscription_changed: Callable[[], Awaitable[None]] | None = None
        self._gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks = TaskSet(logger)
        self._held_motors = False
        self._closed = False
        self._complaints = Complaints(logger, interval=COMPLAINT_PERIOD)

    @property
    def name(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.port}>"

    # -- the end of a session ----------------------------------------------------------------------

    @property
    def gone(self) -> bool:
        """Has the conversation ended (silence, the link closed, a reset, or ``close``)?"""
        return self._gone.done()

    async def closed(self) -> str:
        """Wait until the device is gone; why it went."""
        return await asyncio.shield(self._gone)

    async def close(self, reason: str = "closed", *, keep_transport: bool = False) -> None:
        """Stop talking to the device and release the buffer, and the stream unless
        ``keep_transport`` (the link then serves its next conversation). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._lose(reason)
        await self._tasks.cancel_all()
        self._farewell()
        if self.buffer is not None:
            self.buffer.connected = False
            self.buffer.close()
        if keep_transport and not self.transport_lost:
            return
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    def _farewell(self) -> None:
        """Last bytes to the device when the session ends (lowcar: RST); none by default."""

    def _lose(self, reason: str, *, transport: bool = False) -> None:
        self.transport_lost = self.transport_lost or transport
        if not self._gone.done():
            self._gone.set_result(reason)

    def _spawn(self, job: Awaitable[Any], what: str) -> asyncio.Task[Any]:
        """A task of this session: cancelled by ``close``."""
        return self._tasks.spawn(job, name=f"{what} {self.name}")

    # -- the byte stream ---------------------------------------------------------------------------

    async def _send(self, data: bytes) -> None:
        self._write_now(data)
        await self._drain()

    async def _drain(self) -> None:
        """Wait for a backed-up link (over ``DRAIN_ABOVE`` bytes queued) to take its bytes."""
        try:
            if self._backed_up():
                await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self._lose(f"write failed: {exc}", transport=True)
            raise DeviceGone(f"{self.name} on {self.port}: write failed ({exc})",
                             uid=str(self.uid), port=self.port) from exc

    def _write_now(self, data: bytes) -> None:
        """Hand ``data`` to the transport (which writes at once when its buffer is empty)."""
        if self._gone.done():
            raise DeviceGone(f"{self.name} on {self.port} is gone: {self._gone.result()}",
                             uid=str(self.uid), port=self.port)
        try:
            self.writer.write(data)
        except (ConnectionError, OSError) as exc:
            self._lose(f"write failed: {exc}", transport=True)
            raise DeviceGone(f"{self.name} on {self.port}: write failed ({exc})",
                             uid=str(self.uid), port=self.port) from exc

    def _backed_up(self) -> bool:
        return bool(self.writer.transport.get_write_buffer_size() > DRAIN_ABOVE)

    async def _read_loop(self) -> None:
        """Read until the stream ends. Each packet is handled in the loop turn its bytes arrive
        (``ReadTap``: no StreamReader and coroutine resume in between); when the session ends,
        the stream's reads go back to its StreamReader for the link's next conversation."""
        ended: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        tap = ReadTap(self.reader, self.writer.transport, self._on_bytes, ended)
        try:
            held = tap.start()
            if held:
                self._on_bytes(held)
            exc = await ended
        finally:
            tap.restore()
        if exc is None:
            self._lose("the connection closed", transport=True)
        else:
            self._lose(f"read failed: {exc}", transport=True)

    def _on_bytes(self, data: bytes) -> None:
        """Bytes from the device, in the loop turn they were read: never raises."""
        try:
            self._feed(data)
        except Exception:
            self.log.exception("%s on %s: reading failed", self.name, self.port)
            self._lose("internal error while reading", transport=True)

    def _feed(self, data: bytes) -> None:
        """Decode and handle every packet in ``data``; a bad packet or frame is logged, never
        fatal (noisy cables happen: the decoder resynchronises)."""
        bad_before = self.decoder.bad_frames
        for packet in self.decoder.feed(data):
            try:
                self._handle(packet)
            except (ProtocolError, DeviceError) as exc:
                self.log.warning("%s on %s: bad %s packet: %s", self.name, self.port,
                                 packet.type.name, exc.message)
        bad = self.decoder.bad_frames - bad_before
        if bad:
            self._complaints.report(
                "frames", f"{self.name} on {self.port}: {bad} bad frame(s) skipped, the last "
                f"one: {self.decoder.last_error} (it happens on noisy cables; the service "
                "resynchronised)")

    def _handle(self, packet: Packet) -> None:
        raise NotImplementedError

    # -- silence -----------------------------------------------------------------------------------

    async def _watchdog(self, period: float) -> None:
        """Every ``period`` s: a device silent for ``silence_limit`` s gets its generation's
        verdict (``_silence_verdict``). A watchdog that wakes much later than it asked was
        paused with its whole process: the device talked meanwhile into the kernel's buffer,
        unread, so the silence clock restarts instead of firing."""
        loop = asyncio.get_running_loop()
        while not self._gone.done():
            asked = loop.time()
            await aligned_sleep(period)  # every device's watchdog wakes the service together
            if loop.time() - asked - period > max(period, 0.1):
                self.stalls += 1
                self.last_heard = max(self.last_heard, time.monotonic())
                continue
            if not self._judged():
                continue
            if time.monotonic() - self.last_heard <= self.silence_limit:
                await self._talking()
                continue
            await self._silence_verdict(period)

    def _judged(self) -> bool:
        """Is the device's silence judged yet (Hibike: not before it said who it is)?"""
        return True

    async def _talking(self) -> None:
        """The device is not silent: a chance to check more (Hibike: its data stream)."""

    async def _silence_verdict(self, period: float) -> None:
        raise NotImplementedError

    # -- the buffer --------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        """Send desired values as soon as they are set. The event loop itself watches the
        buffer's doorbell: a generation that can write without waiting (``_flush_now``) writes
        the frame in the loop turn it rang; otherwise, or when the link is backed up, the
        coroutine is woken to ``_flush`` (and drain). It also passes every ``poll_interval``,
        a safety net."""
        buffer = self.buffer
        assert buffer is not None
        loop = asyncio.get_running_loop()
        rang = asyncio.Event()
        with Waiter() as waiter:
            waiter.watch(buffer, WAKE_DESIRED)
            loop.add_reader(waiter.fileno(), self._on_ring, waiter, buffer, rang)
            try:
                while not self._gone.done():
                    waiter.poll()
                    try:
                        await self._flush(buffer)
                    except DeviceError as exc:
                        if self._gone.done():
                            return
                        self.log.warning("%s: could not send desired values: %s", self.name,
                                         exc.message)
                    except Exception as exc:  # keep the device: log and go on
                        self.log.warning("%s: could not send desired values: %s", self.name,
                                         exc)
                    # the safety pass: on the service-wide tick (every device's together), and
                    # no task per wait as wait_for would make
                    timer = call_at_next_tick(loop, self.poll_interval, rang.set)
                    try:
                        await rang.wait()
                    finally:
                        timer.cancel()
                    rang.clear()
            finally:
                loop.remove_reader(waiter.fileno())

    def _on_ring(self, waiter: Waiter, buffer: DeviceBuffer, rang: asyncio.Event) -> None:
        """The buffer rang: write what changed now, or wake the write loop to do it."""
        if not waiter.poll() or self._gone.done():
            return
        hop("device: woken")
        if self._backed_up():
            rang.set()
            return
        try:
            if not self._flush_now(buffer):
                rang.set()
        except DeviceError as exc:
            if not self._gone.done():
                self.log.warning("%s: could not send desired values: %s", self.name,
                                 exc.message)
        except Exception as exc:  # keep the device: log and go on
            self.log.warning("%s: could not send desired values: %s", self.name, exc)

    def _flush_now(self, buffer: DeviceBuffer) -> bool:
        """Write what ``buffer`` has pending without waiting; False if this generation cannot
        (then its write loop's ``_flush`` does it)."""
        return False

    async def _flush(self, buffer: DeviceBuffer) -> None:
        raise NotImplementedError

    async def _write_values(self, values: dict[str, Any]) -> None:
        raise NotImplementedError

    async def stop_motors(self) -> None:
        """Send 0 to every motor param, now."""
        self.stop_motors_now()
        await self._drain()

    async def disable(self) -> None:
        """Motors to 0, then the generation's own way to switch the device off."""
        self.disable_now()
        await self._drain()

    def stop_motors_now(self) -> None:
        """Hand the zeros of every motor param to the link, in this loop turn."""
        raise NotImplementedError

    def disable_now(self) -> None:
        """Motors to 0, then the generation's switch-off, handed to the link in this loop
        turn (the stop path: ``guard.MotorGuard.apply_now``)."""
        raise NotImplementedError

    def stop_now(self, disable: bool) -> None:
        """Hold the motors at 0 (written now unless already held) and, if ``disable``, switch
        the device off, all handed to the link before this returns. ``DeviceGone`` when the
        link is gone (the device is stopped then anyway)."""
        if disable:
            self._held_motors = True
            self.disable_now()
        elif not self._held_motors:
            self._held_motors = True
            self.stop_motors_now()

    async def hold_motors(self, held: bool) -> None:
        """While held, motor params are sent as 0 whatever the executor asks; on release the
        latest desired motor values are sent again."""
        if held == self._held_motors:
            return
        self._held_motors = held
        if held:
            await self.stop_motors()
        elif self.buffer is not None and self.device_type is not None:
            buffer, device_type = self.buffer, self.device_type
            with contextlib.suppress(Exception):
                await self._write_values({p.name: buffer.desired(p.name)
                                          for p in device_type.motor_params})

    def _check_readable(self, device_type: DeviceType, bitmap: int, what: str) -> None:
        unreadable = bitmap & ~device_type.readable_bitmap
        if unreadable:
            raise DeviceError(
                f"{self.name}: cannot {what} params that are not readable: "
                + ", ".join(device_type.names(unreadable)), uid=str(self.uid),
            )
