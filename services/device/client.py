"""``SmartDeviceClient``: one conversation with one Smart Device, over any byte stream.

A serial port (pyserial's asyncio support) and a virtual device's socket look the same here: an
``asyncio.StreamReader`` and ``StreamWriter``. The client reads frames as they arrive, answers the
device's heartbeats at once (whatever else is happening: the firmware stops its motors after a
second without an answer), turns DeviceData into buffer updates, and sends desired values the
moment the executor sets them (woken by the buffer, coalesced, checked by the catalog).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from runtime import protocol
from runtime.buffer import WAKE_DESIRED, BufferStore, DeviceBuffer, Waiter
from runtime.catalog import Catalog, DeviceType, default_catalog
from runtime.constants import MAX_WRITE_PAYLOAD, motor_stop_values
from runtime.exception import DeviceError, ParameterError, ProtocolError
from runtime.protocol import MessageType, Packet
from runtime.trace import hop

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.04  #: seconds between DeviceData of the default subscription
SILENCE_LIMIT = 1.0  #: a device silent this long is gone (after a last Ping, see _watchdog)
SILENCE_PROBE = 0.2  #: seconds a suspected-silent device has to answer a last Ping
SUBSCRIBE_ATTEMPTS = 3
COMPLAINT_PERIOD = 5.0  #: seconds between two log lines about bad frames of one device
READ_CHUNK = 4096
WRITE_BACKLOG = 4096  #: bytes queued for a link before writes wait for it to drain
#: seconds between two passes of the write loop: the doorbell writes every change at once, so
#: the pass is a safety net (and drains a backed-up link); every 40 ms it was a third of the
#: device service's CPU with 32 devices
SAFETY_PASS = 0.2


class DeviceGone(DeviceError):
    """The device stopped talking (unplugged, connection lost, or silent for a second)."""


class DuplicateUid(DeviceError):
    """Another link already serves a device with this uid."""


class SmartDeviceClient:
    """The host side of the protocol for one device (see the module docstring).

    Lifecycle: ``start()`` begins reading; ``await identify()`` pings until the device says
    who it is, ``attach(buffers)`` creates its buffer (``discover`` does both); then
    ``subscribe``, ``read``, ``heartbeat``, ``disable``; ``await closed()`` returns when the
    device is gone; ``close()`` ends it, and ``close(keep_transport=True)`` leaves the byte
    stream open for the next conversation on the same link (``transport_lost`` says whether
    there can be one).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        port: str | None = None,
        *,
        catalog: Catalog | None = None,
        silence_limit: float = SILENCE_LIMIT,
        motors_allowed: Callable[[], bool] = lambda: True,
        poll_interval: float = SAFETY_PASS,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.port = port or _peer_name(writer)
        self.catalog = catalog or default_catalog()
        self.silence_limit = silence_limit
        self.motors_allowed = motors_allowed
        self.poll_interval = poll_interval
        self.decoder = protocol.StreamDecoder()
        self.uid: int | None = None
        self.device_type: DeviceType | None = None
        self.buffer: DeviceBuffer | None = None
        self.subscription: tuple[int, int] = (0, 0)
        self.last_packet = time.monotonic()
        self.last_data = time.monotonic()  #: last DeviceData (a reset device stops streaming)
        self.resubscribed = 0  #: subscriptions sent again because the data stopped
        self.wanted: tuple[int, int] = (0, 0)  #: the subscription we asked for (and got)
        self.transport_lost = False  #: the byte stream itself ended (not just silence)
        self.stalls = 0  #: times the watchdog found the event loop had been paused
        self.heartbeats_answered = 0
        self.errors_reported = 0
        self._identified: asyncio.Future[protocol.SubscriptionResponse] | None = None
        self._subscribed: asyncio.Future[protocol.SubscriptionResponse] | None = None
        self._heartbeat: asyncio.Future[float] | None = None
        self._reads: list[tuple[int, asyncio.Future[dict[str, Any]]]] = []  # (bitmap, answer)
        self._gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[Any]] = []
        self._write_lock = asyncio.Lock()
        self._closed = False
        self._held_motors = False
        self._last_complaint = -COMPLAINT_PERIOD
        self._complained_frames = 0
        self._widening: asyncio.Task[Any] | None = None
        #: called after the subscription grew for student reads (the manager re-announces)
        self.subscription_changed: Callable[[], Awaitable[None]] | None = None

    def __repr__(self) -> str:
        return f"<SmartDeviceClient {self.name} on {self.port}>"

    @property
    def name(self) -> str:
        if self.uid is None or self.device_type is None:
            return "unidentified device"
        return f"{self.device_type.name} {self.uid}"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start reading frames and watching for silence."""
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._read_loop(), name=f"read {self.port}"))
            self._tasks.append(asyncio.create_task(self._watchdog(), name=f"watch {self.port}"))

    async def discover(self, buffers: BufferStore, interval: float = 1.0,
                       timeout: float = 10.0) -> DeviceBuffer:
        """``identify`` then ``attach``: ping until the device says who it is; its buffer."""
        await self.identify(interval, timeout)
        return self.attach(buffers)

    async def identify(self, interval: float = 1.0, timeout: float | None = 10.0,
                       backoff: float = 1.0,
                       identified: protocol.SubscriptionResponse | None = None) -> int:
        """Ping until a SubscriptionResponse gives the uid; the uid. ``identified``: the answer
        the port's identification (both generations, ``identify.py``) already got: no Ping.

        The first Ping goes at once, the next after ``interval`` s, each later wait multiplied
        by ``backoff`` (capped at 1 s when backing off). ``DeviceError`` if nothing answers
        within ``timeout`` seconds (None: keep pinging while the link lasts); ``DeviceGone`` if
        the link closes meanwhile.
        """
        self.start()
        loop = asyncio.get_running_loop()
        self._identified = loop.create_future()
        if identified is not None:
            self._identified.set_result(identified)
        deadline = None if timeout is None else loop.time() + timeout
        wait = interval
        while not self._identified.done():
            await self._send(protocol.ping())
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._identified),
                                       wait if remaining is None else min(wait, remaining))
            if self._gone.done():
                raise DeviceGone(f"{self.port} closed during discovery: {self._gone.result()}",
                                 port=self.port)
            if backoff > 1.0:
                wait = min(wait * backoff, max(interval, 1.0))
        if not self._identified.done():
            raise DeviceError(
                f"{self.port} is not a Smart Device: no answer to pings within {timeout:g} s",
                port=self.port,
            )
        response = self._identified.result()
        device_type_id = response.uid >> 72
        try:
            device_type = self.catalog.get(device_type_id)
        except Exception as exc:
            raise DeviceError(
                f"{self.port}: device uid {response.uid} has unknown device type "
                f"{device_type_id}", port=self.port, uid=str(response.uid),
            ) from exc
        self.uid, self.device_type = response.uid, device_type
        self.subscription = (response.params, response.delay_ms)
        self.last_packet = time.monotonic()
        return response.uid

    def attach(self, buffers: BufferStore) -> DeviceBuffer:
        """Create the identified device's buffer and start sending its desired values."""
        device_type = self._identified_type()
        assert self.uid is not None
        self.buffer = buffers.create_device(self.uid, device_type)
        self.buffer.subscription = self.subscription
        self.buffer.connected = True
        self._tasks.append(asyncio.create_task(self._write_loop(), name=f"write {self.name}"))
        return self.buffer

    @property
    def gone(self) -> bool:
        """Has the conversation ended (silence, the link closed, or ``close``)?"""
        return self._gone.done()

    async def closed(self) -> str:
        """Wait until the device is gone; why it went."""
        return await asyncio.shield(self._gone)

    async def close(self, reason: str = "closed", *, keep_transport: bool = False) -> None:
        """Stop talking to the device and release the buffer, and the port unless
        ``keep_transport`` (the link then serves its next conversation). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._lose(reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not current),
                             return_exceptions=True)
        if self.buffer is not None:
            self.buffer.connected = False
            self.buffer.close()
        if keep_transport and not self.transport_lost:
            return
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    # -- requests --------------------------------------------------------------------------------

    async def subscribe(self, params: Iterable[str] | None = None,
                        interval: float | None = None, timeout: float = 1.0) -> tuple[int, int]:
        """Subscribe (default: the type's default params every 40 ms); the confirmed
        ``(bitmap, interval_ms)``. ``ParameterError`` if the interval is not a number of
        seconds that fits the protocol's u16 milliseconds (NaN, infinite, negative, too long)."""
        device_type = self._identified_type()
        bitmap = (device_type.subscribed_bitmap if params is None
                  else device_type.bitmap(params))
        self._check_readable(device_type, bitmap, "subscribe to")
        seconds = DEFAULT_INTERVAL if interval is None else interval
        delay_ms = _interval_ms(seconds)
        if delay_ms is None:
            raise ParameterError(
                f"subscription interval {seconds!r} s does not fit the protocol: it takes 0 to "
                f"65.535 s in milliseconds", interval=repr(seconds), uid=str(self.uid),
            )
        # A lost or corrupted confirmation is retried: the request is idempotent.
        for _ in range(SUBSCRIBE_ATTEMPTS):
            self._subscribed = asyncio.get_running_loop().create_future()
            await self._send(protocol.subscription_request(bitmap, delay_ms))
            try:
                response = await asyncio.wait_for(asyncio.shield(self._subscribed),
                                                  timeout / SUBSCRIBE_ATTEMPTS)
            except TimeoutError:
                continue
            if (response.params, response.delay_ms) == (bitmap, delay_ms):
                self.wanted = (bitmap, delay_ms)
                return response.params, response.delay_ms
        raise DeviceError(f"{self.name} did not confirm the subscription within {timeout:g} s",
                          uid=str(self.uid))

    async def ping(self) -> None:
        """Ping the device (it answers with a SubscriptionResponse)."""
        await self._send(protocol.ping())

    async def read(self, params: Iterable[str] | None = None,
                   timeout: float | None = None) -> dict[str, Any] | None:
        """Ask for one DeviceData of ``params`` (default: every readable param). With a
        ``timeout``, wait for the device's answer and return those values (DeviceError if it
        does not come); without, just ask (the answer lands in the buffer)."""
        device_type = self._identified_type()
        bitmap = device_type.readable_bitmap if params is None else device_type.bitmap(params)
        self._check_readable(device_type, bitmap, "read")
        if not bitmap:
            return {}
        if timeout is None:
            await self._send(protocol.device_read(bitmap))
            return None
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reads.append((bitmap, answer))
        try:
            await self._send(protocol.device_read(bitmap))
            return await asyncio.wait_for(asyncio.shield(answer), timeout)
        except TimeoutError:
            raise DeviceError(f"{self.name} did not answer a read within {timeout:g} s",
                              uid=str(self.uid)) from None
        finally:
            self._reads.remove((bitmap, answer))

    def _check_readable(self, device_type: DeviceType, bitmap: int, what: str) -> None:
        unreadable = bitmap & ~device_type.readable_bitmap
        if unreadable:
            raise DeviceError(
                f"{self.name}: cannot {what} params that are not readable: "
                + ", ".join(device_type.names(unreadable)), uid=str(self.uid),
            )

    async def heartbeat(self, heartbeat_id: int | None = None, timeout: float = 1.0) -> float:
        """Send a HeartBeatRequest; the round trip in seconds (DeviceError on timeout)."""
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.create_future()
        start = loop.time()
        await self._send(protocol.heartbeat_request(heartbeat_id or 0))
        try:
            await asyncio.wait_for(asyncio.shield(self._heartbeat), timeout)
        except TimeoutError:
            raise DeviceError(f"{self.name} did not answer a heartbeat within {timeout:g} s",
                              uid=str(self.uid)) from None
        return loop.time() - start

    async def disable(self) -> None:
        """Motors to 0 (if the type has motor params), then Disable."""
        await self.stop_motors()
        await self._send(protocol.disable())

    async def stop_motors(self) -> None:
        """Send 0 to every motor param, now."""
        device_type = self.device_type
        if device_type is not None and device_type.motor_params:
            zeros: dict[str | int, Any] = {
                name: zero for name, zero in motor_stop_values(device_type).items()}
            await self._send(protocol.device_write(device_type, zeros))

    async def hold_motors(self, held: bool) -> None:
        """While held, motor params are sent as 0 whatever the executor asks; on release the
        latest desired motor values are sent again."""
        if held == self._held_motors:
            return
        self._held_motors = held
        if held:
            await self.stop_motors()
        elif self.buffer is not None and self.device_type is not None:
            with contextlib.suppress(Exception):
                values = {p.name: self.buffer.desired(p.name)
                          for p in self.device_type.motor_params}
                await self._write_values(values)

    # -- internals ---------------------------------------------------------------------------------

    def _identified_type(self) -> DeviceType:
        if self.device_type is None:
            raise DeviceError(f"{self.port}: the device is not identified yet", port=self.port)
        return self.device_type

    async def _send(self, data: bytes) -> None:
        self._write_now(data)
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

    def _lose(self, reason: str, *, transport: bool = False) -> None:
        self.transport_lost = self.transport_lost or transport
        if not self._gone.done():
            self._gone.set_result(reason)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(READ_CHUNK)
                if not data:
                    self._lose("the connection closed", transport=True)
                    return
                bad_before = self.decoder.bad_frames
                for packet in self.decoder.feed(data):
                    self.last_packet = time.monotonic()
                    try:
                        self._handle(packet)
                    except (ProtocolError, DeviceError) as exc:
                        log.warning("%s on %s: bad %s packet: %s", self.name, self.port,
                                    packet.type.name, exc.message)
                if self.decoder.bad_frames != bad_before:
                    self._complain()
        except (ConnectionError, OSError) as exc:
            self._lose(f"read failed: {exc}", transport=True)
        except Exception:
            log.exception("%s on %s: reading failed", self.name, self.port)
            self._lose("internal error while reading", transport=True)

    def _complain(self) -> None:
        """Bad frames: one log line now, then at most one per COMPLAINT_PERIOD with a count."""
        now = time.monotonic()
        if now - self._last_complaint < COMPLAINT_PERIOD:
            return
        bad = self.decoder.bad_frames - self._complained_frames
        self._last_complaint, self._complained_frames = now, self.decoder.bad_frames
        log.warning("%s on %s: %d bad frame(s) skipped, the last one: %s (it happens on noisy "
                    "cables; the service resynchronised)", self.name, self.port, bad,
                    self.decoder.last_error)

    def _handle(self, packet: Packet) -> None:
        kind = packet.type
        if kind == MessageType.HEARTBEAT_REQUEST:
            self.writer.write(protocol.heartbeat_response(0))  # at once, before anything else
            self.heartbeats_answered += 1
        elif kind == MessageType.DEVICE_DATA:
            self.last_data = self.last_packet
            if self.buffer is not None and self.device_type is not None:
                values = protocol.parse_values(self.device_type, packet.payload)
                self.buffer.update(values)
                if self._reads:
                    self._answer_reads(values)
        elif kind == MessageType.SUBSCRIPTION_RESPONSE:
            response = protocol.parse_subscription_response(packet.payload)
            if self.uid is not None and response.uid != self.uid:
                # another device behind the same link (swapped or re-flashed): a new session
                self._lose(f"a device with another uid ({response.uid}) answers on its link")
                return
            self.subscription = (response.params, response.delay_ms)
            if self.buffer is not None:
                self.buffer.subscription = self.subscription
            for future in (self._identified, self._subscribed):
                if future is not None and not future.done():
                    future.set_result(response)
        elif kind == MessageType.HEARTBEAT_RESPONSE:
            if self._heartbeat is not None and not self._heartbeat.done():
                self._heartbeat.set_result(time.monotonic())
        elif kind == MessageType.ERROR:
            self.errors_reported += 1
            code = packet.payload[0] if packet.payload else 0xFF
            log.warning("%s on %s reports error 0x%02X (%s)", self.name, self.port, code,
                        ERROR_CODES.get(code, "unknown"))
        else:
            log.warning("%s on %s sent a %s, which devices do not send", self.name, self.port,
                        kind.name)

    def _answer_reads(self, values: dict[str, Any]) -> None:
        """Resolve the waiting reads whose params this DeviceData carries."""
        device_type = self._identified_type()
        carried = device_type.bitmap(values)
        for bitmap, answer in self._reads:
            if not answer.done() and bitmap & ~carried == 0:
                answer.set_result({name: values[name] for name in device_type.names(bitmap)})

    async def _watchdog(self) -> None:
        """A device that says nothing for ``silence_limit`` seconds is gone, judged only after
        the data already received has been read:

        - a watchdog that wakes much later than it asked was paused with its whole process
          (SIGSTOP, a long GC, an overloaded robot): the device talked meanwhile into the
          kernel's buffer, unread, so the silence clock restarts instead of firing;
        - a device that looks silent gets a last Ping and ``SILENCE_PROBE`` seconds, in which
          the read loop also drains anything already buffered; only then is it gone.
        """
        period = self.silence_limit / 4
        loop = asyncio.get_running_loop()
        while not self._gone.done():
            asked = loop.time()
            await asyncio.sleep(period)
            late = loop.time() - asked - period
            if late > max(period, 0.1):
                self.stalls += 1
                self.last_packet = max(self.last_packet, time.monotonic())
                continue
            if self.uid is None:
                continue
            if time.monotonic() - self.last_packet <= self.silence_limit:
                await self._check_stream()
                continue
            before = self.last_packet
            with contextlib.suppress(DeviceError):
                await self._send(protocol.ping())
            await asyncio.sleep(min(SILENCE_PROBE, period))
            if self.last_packet == before:
                silent = time.monotonic() - self.last_packet
                self._lose(f"no packet for {silent:.1f} s")

    async def _check_stream(self) -> None:
        """A device that talks (heartbeats) but stopped streaming its subscription was reset
        (the firmware forgets its subscription): subscribe it again, at most once per
        ``silence_limit``. The answer also tells whether it is still the same device."""
        params, delay_ms = self.wanted
        now = time.monotonic()
        if not (params and delay_ms) or self.buffer is None:
            return
        if now - self.last_data <= max(self.silence_limit, 4 * delay_ms / 1000):
            return
        self.last_data = now  # the clock for the next attempt
        self.resubscribed += 1
        log.info("%s on %s stopped streaming its subscription (reset?): subscribing again",
                 self.name, self.port)
        with contextlib.suppress(DeviceError):
            await self._send(protocol.subscription_request(params, delay_ms))

    async def _write_loop(self) -> None:
        """Send desired values as soon as they are set: in the loop turn the buffer's doorbell
        rings (the reader callback writes the frame itself), plus a pass every
        ``poll_interval`` (a safety net) that also waits for a backed-up link to drain."""
        buffer = self.buffer
        assert buffer is not None
        loop = asyncio.get_running_loop()
        with Waiter() as waiter:
            waiter.watch(buffer, WAKE_DESIRED)
            loop.add_reader(waiter.fileno(), self._on_ring, waiter, buffer)
            try:
                while not self._gone.done():
                    waiter.poll()
                    try:
                        await self._flush(buffer)
                    except DeviceGone:
                        return
                    except Exception as exc:  # keep the device: log and go on
                        log.warning("%s: could not send desired values: %s", self.name, exc)
                    await asyncio.wait((self._gone,), timeout=self.poll_interval)
            finally:
                loop.remove_reader(waiter.fileno())

    def _on_ring(self, waiter: Waiter, buffer: DeviceBuffer) -> None:
        """The buffer rang: write what changed now (a backed-up link waits for the poll pass,
        which drains it first; the values stay pending in the buffer meanwhile)."""
        if not waiter.poll() or self._gone.done() or self._backed_up():
            return
        hop("device: woken")
        try:
            self._flush_now(buffer)
        except DeviceGone:
            pass  # the write loop sees _gone and ends
        except Exception as exc:  # keep the device: log and go on
            log.warning("%s: could not send desired values: %s", self.name, exc)

    def _backed_up(self) -> bool:
        return self.writer.transport.get_write_buffer_size() > WRITE_BACKLOG

    async def _flush(self, buffer: DeviceBuffer) -> None:
        self._flush_now(buffer)
        if self._backed_up():
            await self.writer.drain()

    def _flush_now(self, buffer: DeviceBuffer) -> None:
        """Student reads and desired values to the device, without waiting."""
        self._widen_subscription(buffer)
        reads = buffer.take_reads()
        values = buffer.take_writes()
        if values:
            self._write_values_now(values)
        if reads:
            self._write_now(protocol.device_read(reads))

    def _widen_subscription(self, buffer: DeviceBuffer) -> None:
        """Params that student code reads (the buffer's "wanted" bitmap, set by the executor)
        join the device's subscription and stay in it; one subscribe at a time, in the
        background so desired values keep flowing. A failed one is retried on a later wake."""
        subscribed, interval_ms = self.subscription
        wanted = buffer.wanted & self._identified_type().readable_bitmap
        if not wanted & ~subscribed or (self._widening and not self._widening.done()):
            return
        names = self._identified_type().names(subscribed | wanted)
        interval = interval_ms / 1000 if interval_ms else DEFAULT_INTERVAL

        async def widen() -> None:
            try:
                await self.subscribe(names, interval)
                if self.subscription_changed is not None:
                    await self.subscription_changed()
                log.info("%s: subscribed to %s for student code", self.name,
                         ", ".join(self._identified_type().names(wanted & ~subscribed)))
            except DeviceGone:
                pass
            except Exception as exc:
                log.warning("%s: could not add params read by student code to the "
                            "subscription: %s", self.name, exc)
                await asyncio.sleep(1.0)  # no retry storm against a device that does not answer

        self._widening = asyncio.create_task(widen(), name=f"widen {self.name}")
        self._tasks = [task for task in self._tasks if not task.done()] + [self._widening]

    async def _write_values(self, values: dict[str, Any]) -> None:
        self._write_values_now(values)
        if self._backed_up():
            await self.writer.drain()

    def _write_values_now(self, values: dict[str, Any]) -> None:
        device_type = self._identified_type()
        if not self.motors_allowed():
            for name, zero in motor_stop_values(device_type).items():
                if name in values:
                    values[name] = zero
        for chunk in _chunks(device_type, values):
            self._write_now(protocol.device_write(device_type, chunk))
        hop("device: DeviceWrite written")


ERROR_CODES = {0xFD: "unexpected delimiter", 0xFE: "bad checksum", 0xFF: "generic error"}


def _chunks(device_type: DeviceType, values: dict[str, Any]) -> list[dict[str | int, Any]]:
    """Split a write so each DeviceWrite payload stays within the firmware's 99 bytes."""
    chunks: list[dict[str | int, Any]] = []
    current: dict[str | int, Any] = {}
    size = 2
    for param in device_type.params:
        if param.name not in values:
            continue
        if size + param.size > MAX_WRITE_PAYLOAD:
            chunks.append(current)
            current, size = {}, 2
        current[param.name] = values[param.name]
        size += param.size
    if current:
        chunks.append(current)
    return chunks


_links = itertools.count(1)


def _peer_name(writer: asyncio.StreamWriter) -> str:
    """A name for a virtual device's connection, unique in this process (two connections to
    one unix socket have the same address: the number tells them apart in log lines)."""
    peer = writer.get_extra_info("peername")
    where = peer or writer.get_extra_info("sockname")
    if isinstance(where, tuple):
        where = ":".join(str(part) for part in where[:2])
    return f"virtual:{where or 'link'}#{next(_links)}"


def _interval_ms(seconds: float) -> int | None:
    """``seconds`` as the protocol's u16 milliseconds, or None when it is not one (NaN,
    infinite, negative, past 65.535 s, or an int too large to be a float): a client's RPC
    argument, so anything may come."""
    try:
        milliseconds = float(seconds) * 1000
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(milliseconds) or not 0 <= round(milliseconds) <= 0xFFFF:
        return None
    return round(milliseconds)
