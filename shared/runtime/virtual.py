"""Virtual smart devices: the device side of the protocol, as the firmware behaves.

A ``VirtualDevice`` answers pings with its uid, streams its subscription every ``delay_ms``,
applies DeviceWrite (then reports the written params) and DeviceRead, sends a HeartBeatRequest
every 200 ms and disables itself (motors to 0) after a second without a HeartBeatResponse,
exactly as the Hibike firmware does. Its values move plausibly: motors integrate their duty cycle
into encoder positions, sensors drift and switch, so a demo shows something happening.

It speaks over any asyncio stream: a connection to the device service's virtual-device socket
(``connect``) or the master side of a pseudo-terminal whose slave the device service opens as a
serial port (``serve_pty``). Fault modes make it misbehave for tests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Coroutine
from typing import Any

from runtime import protocol
from runtime.catalog import Catalog, DeviceType, default_catalog
from runtime.constants import motor_stop_values
from runtime.exception import DeviceError, ProtocolError
from runtime.protocol import MessageType, Packet
from runtime.protocol.uid import Uid, UidError
from runtime.virtual_link import (
    PHYSICS_PERIOD,
    Faults,
    VirtualLink,
    _corrupt_checksum,
    _f32,
    sense,
)

__all__ = ["PHYSICS_PERIOD", "Faults", "VirtualDevice", "_corrupt_checksum", "make_virtual_uid"]

log = logging.getLogger(__name__)

HEARTBEAT_PERIOD = 0.2
SELF_DISABLE_AFTER = 1.0
ENCODER_TICKS_PER_SECOND = 1000.0  #: encoder speed at full duty cycle


def make_virtual_uid(device_type: DeviceType, uid: str | int | None = None) -> int:
    """A full uid for ``device_type`` from a full uid, just the 64-bit id part, or at random
    (either generation: ``DeviceType.make_uid``; ``Uid.parse`` is the one parser)."""
    if uid is None:
        return device_type.make_uid(random.getrandbits(64)).value
    try:
        value = Uid.parse(uid)
    except UidError as exc:
        raise DeviceError(exc.message, uid=str(uid)) from None
    if value.value < 1 << 64:
        return device_type.make_uid(value.value).value
    if value.type_field != device_type.uid_type:
        raise DeviceError(
            f"uid {value} is not a {device_type.qualified_name} uid: it names a "
            f"{value.generation} device of type {value.type_id}",
            uid=str(value),
        )
    return value.value


class VirtualDevice(VirtualLink):
    """One simulated Smart Device (see the module docstring)."""

    def __init__(
        self,
        device_type: DeviceType | str | int,
        uid: str | int | None = None,
        *,
        faults: Faults = Faults(),
        catalog: Catalog | None = None,
        heartbeat_period: float = HEARTBEAT_PERIOD,
    ) -> None:
        catalog = catalog or default_catalog()
        self.device_type = (device_type if isinstance(device_type, DeviceType)
                            else catalog.get(device_type))
        self.uid = make_virtual_uid(self.device_type, uid)
        super().__init__(faults)
        self.heartbeat_period = heartbeat_period
        self.values: dict[str, Any] = {p.name: p.python_type(0) for p in self.device_type.params}
        self.params = 0
        self.delay_ms = 0
        self.disabled = False
        self.self_disables = 0  #: times it disabled itself for want of heartbeat responses
        self.heartbeats_sent = 0  #: HeartBeatRequests it sent
        self.confirmations_lost = 0
        self.data_sent = 0  #: DeviceData packets put on the wire
        self.heartbeat_responses = 0  #: HeartBeatResponses it received
        self.decoder = protocol.StreamDecoder()
        self.last_heartbeat_response = time.monotonic()
        self._phase = random.random() * 10

    def __repr__(self) -> str:
        return f"<VirtualDevice {self.device_type.name} {self.uid}>"

    # -- running -------------------------------------------------------------------------------

    def reset(self, uid: int | None = None) -> None:
        """Reboot like the firmware (subscription forgotten, motors off), optionally flashed
        with another ``uid`` (a different device behind the same link)."""
        if uid is not None:
            self.uid = make_virtual_uid(self.device_type, uid)
        self.params, self.delay_ms = 0, 0
        self._disable()

    def _jobs(self) -> list[Coroutine[Any, Any, None]]:
        self.last_heartbeat_response = time.monotonic()  # a new link: a fresh second
        return [self._stream(), self._heartbeats(), self._physics()]

    # -- protocol ------------------------------------------------------------------------------

    def _handle(self, packet: Packet) -> None:
        kind = packet.type
        try:
            if kind == MessageType.PING:
                self._send(self._subscription_response())
            elif kind == MessageType.SUBSCRIPTION_REQUEST:
                self.params, self.delay_ms = protocol.parse_subscription_request(packet.payload)
                self.params &= (1 << len(self.device_type.params)) - 1
                if self.confirmations_lost < self.faults.lose_confirmations:
                    self.confirmations_lost += 1  # applied, but the answer is lost on the way
                else:
                    self._send(self._subscription_response())
            elif kind == MessageType.DEVICE_READ:
                self._send_data(protocol.parse_params(packet.payload))
            elif kind == MessageType.DEVICE_WRITE:
                written = protocol.parse_values(self.device_type, packet.payload)
                self._apply(written)
                self._send_data(self.device_type.bitmap(written))
            elif kind == MessageType.DISABLE:
                self._disable()
            elif kind == MessageType.HEARTBEAT_REQUEST:
                self._send(protocol.heartbeat_response(0))
            elif kind == MessageType.HEARTBEAT_RESPONSE:
                self.last_heartbeat_response = time.monotonic()
                self.heartbeat_responses += 1
            else:
                self._send(protocol.error(0xFF))
        except ProtocolError as exc:
            log.warning("%s: bad %s from the host: %s", self, kind.name, exc.message)
            self._send(protocol.error(0xFF))

    def _subscription_response(self) -> bytes:
        return protocol.subscription_response(self.params, self.delay_ms, self.uid)

    def _send_data(self, bitmap: int) -> None:
        bitmap &= self.device_type.readable_bitmap
        if bitmap:
            names = self.device_type.names(bitmap)
            if self._send(protocol.device_data(self.device_type,
                                               {name: self.values[name] for name in names})):
                self.data_sent += 1

    def _apply(self, written: dict[str, Any]) -> None:
        self.disabled = False
        for name, value in written.items():
            self.values[name] = value

    def _disable(self) -> None:
        self.disabled = True
        self.values.update(motor_stop_values(self.device_type))

    # -- periodic behaviour ----------------------------------------------------------------------

    async def _stream(self) -> None:
        while True:
            await self._running.wait()
            if self.delay_ms and self.params and not self.faults.unresponsive:
                self._send_data(self.params)
                await asyncio.sleep(self.delay_ms / 1000)
            else:
                await asyncio.sleep(0.01)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_period)
            await self._running.wait()
            if self.faults.unresponsive:
                continue
            self._send(protocol.heartbeat_request(0))
            self.heartbeats_sent += 1
            silent = time.monotonic() - self.last_heartbeat_response
            if silent >= SELF_DISABLE_AFTER and not self.disabled:
                log.info("%s: no heartbeat response for a second: disabling", self)
                self.self_disables += 1
                self._disable()

    def step(self, dt: float, now: float) -> None:
        """Advance the simulated world by ``dt`` seconds."""
        values = self.values
        name = self.device_type.name
        if name == "KoalaBear":
            for side in ("a", "b"):
                values[f"enc_{side}"] = _f32(values[f"enc_{side}"] + values[f"duty_cycle_{side}"]
                                             * ENCODER_TICKS_PER_SECOND * dt)
        elif name in ("YogiBear", "PolarBear"):
            velocity = values["duty_cycle"] * ENCODER_TICKS_PER_SECOND
            values["enc_vel"] = _f32(velocity)
            values["enc_pos"] = _f32(values["enc_pos"] + velocity * dt)
            values["motor_current"] = _f32(abs(values["duty_cycle"]) * 2.5)
        elif name == "Potentiometer":
            for index in range(3):
                values[f"pot{index}"] = _f32(0.5 + 0.5 * math.sin(now / (index + 2) + self._phase))
        elif name == "RFID":
            values["id"] = self.uid & 0xFFFFFFFF
            values["tag_detect"] = int(math.sin(now + self._phase) > 0)
        elif name == "Encoder":
            values["rotation"] = int(1000 * math.sin(now / 3 + self._phase))
        else:
            sense(name, values, now, self._phase)

