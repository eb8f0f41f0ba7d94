"""Virtual lowcar devices: the device side of PiE's current firmware (lowcar-protocol.md).

A ``VirtualLowcarDevice`` stays quiet until the first PING, answers it with an ACK and a LOG line
naming its type and uid, then enables and streams every readable param as DEVICE_DATA (every
``data_period`` seconds). PING and DEVICE_WRITE refresh its timer; after ``timeout`` seconds
without either it resets (motors off, PID defaults), disables and sends RST, as the firmware does;
an RST from the host resets and disables it too. The next PING gets a fresh ACK.

Firmware behaviour worth simulating (KoalaBear): each motor's output ramps toward the target
``velocity`` by at most ``RAMP_RATE`` duty per second, applies ``invert``, and snaps to 0 inside
the ``deadband`` when the target is 0; the encoder integrates the output. The Hibike fault modes
(``runtime.virtual.Faults``) apply unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import struct
import time
from pathlib import Path
from typing import Any

from runtime import transport
from runtime.address import Address
from runtime.catalog import Catalog, DeviceType, default_catalog
from runtime.exception import DeviceError, ProtocolError
from runtime.protocol import Packet, lowcar
from runtime.protocol.lowcar import LowcarMessage
from runtime.protocol.uid import Uid
from runtime.virtual import Faults, _corrupt_checksum, make_virtual_uid

log = logging.getLogger(__name__)

DATA_PERIOD = 0.02  #: seconds between two DEVICE_DATA (the firmware: 1 ms, link permitting)
TIMEOUT = 1.0  #: seconds without PING or DEVICE_WRITE before the device resets itself
PHYSICS_PERIOD = 0.01
RAMP_RATE = 2.0  #: KoalaBear output change per second at most (duty cycle units)
ENCODER_TICKS_PER_SECOND = 1000.0  #: encoder speed at full output


class VirtualLowcarDevice:
    """One simulated lowcar device (see the module docstring)."""

    def __init__(
        self,
        device_type: DeviceType | str | int,
        uid: str | int | None = None,
        *,
        faults: Faults = Faults(),
        catalog: Catalog | None = None,
        data_period: float = DATA_PERIOD,
        timeout: float = TIMEOUT,
        physics: bool = True,
    ) -> None:
        catalog = catalog or default_catalog()
        found = (device_type if isinstance(device_type, DeviceType)
                 else catalog.get(device_type, "lowcar"))
        if found.generation != "lowcar":
            raise DeviceError(f"{found.qualified_name} is not a lowcar device type",
                              device_type=found.name)
        self.device_type = found
        self.uid = Uid(make_virtual_uid(found, uid))
        self.faults = faults
        self.data_period = data_period
        self.timeout = timeout
        self.physics = physics  #: values move by themselves (False: they stay as set)
        self.values: dict[str, Any] = {}
        self.output = {"a": 0.0, "b": 0.0}  #: KoalaBear motor outputs after ramp/invert/deadband
        self.enabled = False
        self.resets = 0  #: resets for any reason (timeout, RST from the host)
        self.timeouts = 0  #: resets because the host went quiet
        self.acks = 0
        self.sent = 0
        self.received: list[Packet] = []
        self.decoder = lowcar.decoder()
        self.last_heard = time.monotonic()
        self._writer: asyncio.StreamWriter | None = None
        self._phase = random.random() * 10
        self._reset_values()

    def __repr__(self) -> str:
        return f"<VirtualLowcarDevice {self.device_type.name} {self.uid.short}>"

    # -- running -------------------------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Be the device on this stream until it closes."""
        self._writer = writer
        jobs = [self._stream(), self._physics()] if self.physics else [self._stream()]
        tasks = [asyncio.create_task(job) for job in jobs]
        try:
            while data := await reader.read(4096):
                for packet in self.decoder.feed(data):
                    self.received.append(packet)
                    del self.received[:-200]
                    if not self.faults.unresponsive:
                        self._handle(packet)
        except (ConnectionError, OSError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def connect(self, address: Address | str) -> None:
        """Connect to a device service's ``unix:PATH`` / ``tcp:HOST:PORT`` and serve."""
        reader, writer = await transport.open_stream(Address.parse(address, ("unix", "tcp")))
        await self.serve(reader, writer)

    async def serve_pty(self, link: str | Path, ready: asyncio.Event | None = None) -> None:
        """Open a pseudo-terminal, point ``link`` at its serial side, and serve on it."""
        async with transport.open_pty(link) as (reader, writer):
            if ready is not None:
                ready.set()
            await self.serve(reader, writer)

    # -- protocol ------------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        writer = self._writer
        limit = self.faults.silent_after
        if writer is None or writer.is_closing() or (limit is not None and self.sent >= limit):
            return
        self.sent += 1
        if self.faults.bad_checksum and self.sent % 2 == 0:
            frame = _corrupt_checksum(frame)
        if self.faults.garbage:
            writer.write(bytes(random.randrange(1, 256) for _ in range(random.randrange(1, 12))))
        writer.write(frame)

    def _log(self, text: str) -> None:
        self._send(lowcar.log(text))

    def _handle(self, packet: Packet) -> None:
        kind = packet.type
        try:
            if kind == LowcarMessage.PING:
                self.last_heard = time.monotonic()
                if not self.enabled:  # the first PING (after boot or a reset) gets the ACK
                    self._send(lowcar.ack(self.uid))
                    self.acks += 1
                    self._log(f"{self.device_type.name} {self.uid.short} ready")
                    self.enabled = True
            elif kind == LowcarMessage.DEVICE_WRITE:
                self.last_heard = time.monotonic()
                written = lowcar.parse_values(self.device_type, packet.payload)
                for name in written:
                    if not self.device_type.by_name[name].writeable:
                        raise ProtocolError(f"{name} is not writeable")
                self.values.update(written)
            elif kind == LowcarMessage.RST:
                self._reset("RST from the host")
        except ProtocolError as exc:
            log.warning("%s: bad %s from the host: %s", self, kind.name, exc.message)
            self._log(f"bad {kind.name}: {exc.message}")

    def _reset(self, why: str) -> None:
        """The firmware's reset: motors off, PID defaults (PID disabled), then disabled;
        invert, deadband and encoder counts survive."""
        self.resets += 1
        self.enabled = False
        self._reset_values(only_motors_and_pid=True)
        log.info("%s: reset (%s)", self, why)

    def _reset_values(self, only_motors_and_pid: bool = False) -> None:
        for param in self.device_type.params:
            if only_motors_and_pid and not (param.motor or param.name.startswith("pid_")):
                continue
            default = param.default if param.default is not None else 0
            self.values[param.name] = param.python_type(default)
        self.output = {"a": 0.0, "b": 0.0}

    def data_frame(self) -> bytes:
        """One DEVICE_DATA with every readable param."""
        readable = [p.name for p in self.device_type.params if p.readable]
        return lowcar.device_data(self.device_type, {name: self.values[name] for name in readable})

    # -- periodic behaviour ----------------------------------------------------------------------

    async def _stream(self) -> None:
        while True:
            await asyncio.sleep(self.data_period)
            if not self.enabled or self.faults.unresponsive:
                continue
            if time.monotonic() - self.last_heard >= self.timeout:
                self.timeouts += 1
                self._reset(f"no PING or DEVICE_WRITE for {self.timeout:g} s")
                self._send(lowcar.rst())
                continue
            self._send(self.data_frame())

    async def _physics(self) -> None:
        start = last = time.monotonic()
        while True:
            await asyncio.sleep(PHYSICS_PERIOD)
            now = time.monotonic()
            self.step(now - last, now - start)
            last = now

    def step(self, dt: float, now: float) -> None:
        """Advance the simulated world by ``dt`` seconds."""
        values = self.values
        name = self.device_type.name
        if name == "KoalaBear":
            for side in ("a", "b"):
                output = self._ramp(side, dt)
                values[f"enc_{side}"] = _i32(values[f"enc_{side}"]
                                             + round(output * ENCODER_TICKS_PER_SECOND * dt))
        elif name == "PolarBear":
            values["motor_current"] = _f32(abs(values["duty_cycle"]) * 2.5)
        elif name == "LimitSwitch":
            for index in range(3):
                values[f"switch{index}"] = math.sin(now * (0.5 + index / 3) + self._phase) > 0.6
        elif name == "LineFollower":
            for index, side in enumerate(("left", "center", "right")):
                values[side] = _f32(0.5 + 0.5 * math.sin(now + index + self._phase))
        elif name in ("BatteryBuzzer", "PDB"):
            values["v_batt"] = _f32(11.1 + 0.2 * math.sin(now / 7))
            for cell in (1, 2, 3):
                values[f"v_cell{cell}"] = _f32(3.7 + 0.05 * math.sin(now / 5 + cell))
            values["calibrated"] = True
        elif name == "UltrasonicSensor":
            values["distance"] = _f32(50 + 40 * math.sin(now / 2 + self._phase))

    def _ramp(self, side: str, dt: float) -> float:
        """KoalaBear firmware: ramp toward the (inverted) target; snap inside the deadband."""
        values = self.values
        target = values[f"velocity_{side}"] * (-1.0 if values[f"invert_{side}"] else 1.0)
        output = self.output[side]
        step = RAMP_RATE * dt
        output = min(output + step, target) if target > output else max(output - step, target)
        if target == 0 and abs(output) < values[f"deadband_{side}"]:
            output = 0.0
        self.output[side] = output
        return output


def _f32(value: float) -> float:
    value = max(min(value, 3.0e38), -3.0e38)
    return struct.unpack("<f", struct.pack("<f", value))[0]  # type: ignore[no-any-return]


def _i32(value: int) -> int:
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)
