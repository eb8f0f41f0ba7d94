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
import logging
import math
import random
import time
from collections.abc import Coroutine
from typing import Any

from runtime.catalog import Catalog, DeviceType, default_catalog
from runtime.exception import DeviceError, ProtocolError
from runtime.protocol import Packet, lowcar
from runtime.protocol.lowcar import LowcarMessage
from runtime.protocol.uid import Uid
from runtime.virtual import make_virtual_uid
from runtime.virtual_link import Faults, VirtualLink, _f32, sense

log = logging.getLogger(__name__)

DATA_PERIOD = 0.02  #: seconds between two DEVICE_DATA (the firmware: 1 ms, link permitting)
TIMEOUT = 1.0  #: seconds without PING or DEVICE_WRITE before the device resets itself
RAMP_RATE = 2.0  #: KoalaBear output change per second at most (duty cycle units)
ENCODER_TICKS_PER_SECOND = 1000.0  #: encoder speed at full output


class VirtualLowcarDevice(VirtualLink):
    """One simulated lowcar device (see the module docstring)."""

    physics_dt = None  #: the firmware integrates over measured time

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
        super().__init__(faults)
        self.data_period = data_period
        self.timeout = timeout
        self.physics = physics  #: values move by themselves (False: they stay as set)
        self.values: dict[str, Any] = {}
        self.output = {"a": 0.0, "b": 0.0}  #: KoalaBear motor outputs after ramp/invert/deadband
        self.enabled = False
        self.resets = 0  #: resets for any reason (timeout, RST from the host)
        self.timeouts = 0  #: resets because the host went quiet
        self.acks = 0
        self.decoder = lowcar.decoder()
        self.last_heard = time.monotonic()
        self._phase = random.random() * 10
        self._reset_values()

    def __repr__(self) -> str:
        return f"<VirtualLowcarDevice {self.device_type.name} {self.uid.short}>"

    # -- running -------------------------------------------------------------------------------

    def _jobs(self) -> list[Coroutine[Any, Any, None]]:
        return [self._stream(), self._physics()] if self.physics else [self._stream()]

    # -- protocol ------------------------------------------------------------------------------

    def _log(self, text: str) -> None:
        self._send(lowcar.log(text))

    def say(self, *lines: str | bytes) -> None:
        """Send LOG lines, as firmware prints do (bytes as they are: garbage firmware), in one
        write: a burst arrives as fast as the link carries it."""
        self._send(b"".join(lowcar.log(line) for line in lines))

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
        elif name == "UltrasonicSensor":
            values["distance"] = _f32(50 + 40 * math.sin(now / 2 + self._phase))
        else:
            sense(name, values, now, self._phase)

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


def _i32(value: int) -> int:
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)
