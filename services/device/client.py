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
from collections.abc import Callable, Iterable
from typing import Any

from runtime import protocol
from runtime.backoff import Backoff
from runtime.buffer import BufferStore, DeviceBuffer
from runtime.catalog import Catalog, DeviceType
from runtime.constants import MAX_WRITE_PAYLOAD, motor_stop_values
from runtime.exception import DeviceError, ParameterError
from runtime.protocol import MessageType, Packet
from runtime.service.device.session import (
    COMPLAINT_PERIOD,
    SAFETY_PASS,
    DeviceGone,
    DeviceSession,
)
from runtime.trace import hop

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.04  #: seconds between DeviceData of the default subscription
SILENCE_LIMIT = 1.0  #: a device silent this long is gone (after a last Ping, see _watchdog)
SILENCE_PROBE = 0.2  #: seconds a suspected-silent device has to answer a last Ping
SUBSCRIBE_ATTEMPTS = 3

__all__ = ["COMPLAINT_PERIOD", "DeviceGone", "DuplicateUid", "SmartDeviceClient"]


class DuplicateUid(DeviceError):
    """Another link already serves a device with this uid."""


class SmartDeviceClient(DeviceSession):
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
        super().__init__(reader, writer, port or _peer_name(writer), catalog=catalog,
                         silence_limit=silence_limit, motors_allowed=motors_allowed,
                         poll_interval=poll_interval, logger=log)
        self.decoder = protocol.StreamDecoder()
        self.uid: int | None = None
        self.device_type: DeviceType | None = None
        self.subscription: tuple[int, int] = (0, 0)
        self.last_data = time.monotonic()  #: last DeviceData (a reset device stops streaming)
        self.resubscribed = 0  #: subscriptions sent again because the data stopped
        self.wanted: tuple[int, int] = (0, 0)  #: the subscription we asked for (and got)
        self.heartbeats_answered = 0
        self.errors_reported = 0
        self._identified: asyncio.Future[protocol.SubscriptionResponse] | None = None
        self._subscribed: asyncio.Future[protocol.SubscriptionResponse] | None = None
        self._heartbeat: asyncio.Future[float] | None = None
        self._reads: list[tuple[int, asyncio.Future[dict[str, Any]]]] = []  # (bitmap, answer)
        self._widening: asyncio.Task[Any] | None = None
        self._started = False

    @property
    def name(self) -> str:
        if self.uid is None or self.device_type is None:
            return "unidentified device"
        return f"{self.device_type.name} {self.uid}"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start reading frames and watching for silence."""
        if not self._started:
            self._started = True
            self._spawn(self._read_loop(), "read")
            self._spawn(self._watchdog(self.silence_limit / 4), "watch")

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
        pauses = Backoff(first=interval, maximum=max(interval, 1.0), factor=max(backoff, 1.0))
        wait = pauses.next()
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
            wait = pauses.next()
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
        self.last_heard = time.monotonic()
        return response.uid

    def attach(self, buffers: BufferStore) -> DeviceBuffer:
        """Create the identified device's buffer and start sending its desired values."""
        device_type = self._identified_type()
        assert self.uid is not None
        self.buffer = buffers.create_device(self.uid, device_type)
        self.buffer.subscription = self.subscription
        self.buffer.connected = True
        self._spawn(self._write_loop(), "write")
        return self.buffer

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

    def disable_now(self) -> None:
        """Motors to 0 (if the type has motor params), then Disable."""
        self.stop_motors_now()
        self._write_now(protocol.disable())
        hop("device: Disable written")

    def stop_motors_now(self) -> None:
        device_type = self.device_type
        if device_type is not None and device_type.motor_params:
            zeros: dict[str | int, Any] = {
                name: zero for name, zero in motor_stop_values(device_type).items()}
            self._write_now(protocol.device_write(device_type, zeros))

    # -- internals ---------------------------------------------------------------------------------

    def _identified_type(self) -> DeviceType:
        if self.device_type is None:
            raise DeviceError(f"{self.port}: the device is not identified yet", port=self.port)
        return self.device_type

    def _handle(self, packet: Packet) -> None:
        self.last_heard = time.monotonic()  # any packet proves a Hibike device alive
        kind = packet.type
        if kind == MessageType.HEARTBEAT_REQUEST:
            self.writer.write(protocol.heartbeat_response(0))  # at once, before anything else
            self.heartbeats_answered += 1
        elif kind == MessageType.DEVICE_DATA:
            self.last_data = self.last_heard
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

    def _judged(self) -> bool:
        return self.uid is not None  # an unidentified link is judged by ``identify``

    async def _silence_verdict(self, period: float) -> None:
        """A device that looks silent gets a last Ping and ``SILENCE_PROBE`` seconds, in which
        the read loop also drains anything already buffered; only then is it gone."""
        before = self.last_heard
        with contextlib.suppress(DeviceError):
            await self._send(protocol.ping())
        await asyncio.sleep(min(SILENCE_PROBE, period))
        if self.last_heard == before:
            silent = time.monotonic() - self.last_heard
            self._lose(f"no packet for {silent:.1f} s")

    async def _talking(self) -> None:
        await self._check_stream()

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

    async def _flush(self, buffer: DeviceBuffer) -> None:
        self._flush_now(buffer)
        await self._drain()

    def _flush_now(self, buffer: DeviceBuffer) -> bool:
        """Student reads and desired values to the device, without waiting (the doorbell's
        reader callback calls this: the frame goes out in the loop turn the buffer rang)."""
        self._widen_subscription(buffer)
        reads = buffer.take_reads()
        values = buffer.take_writes()
        if values:
            self._write_values_now(values)
        if reads:
            self._write_now(protocol.device_read(reads))
        return True

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

        self._widening = self._spawn(widen(), "widen")

    async def _write_values(self, values: dict[str, Any]) -> None:
        self._write_values_now(values)
        await self._drain()

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
