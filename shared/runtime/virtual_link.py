"""``VirtualLink``: the byte-stream half of a virtual Smart Device, whatever its generation.

A Hibike ``VirtualDevice`` (``virtual.py``) and a ``VirtualLowcarDevice`` (``virtual_lowcar.py``)
differ in what they say; how they are reached, how they misbehave on the wire and how their world
moves is the same, written once here:

- ``connect`` (a device service's ``unix:``/``tcp:`` virtual-device socket), ``serve_pty`` (a
  pseudo-terminal the device service opens as a serial port), ``serve`` (any stream);
- ``pause``/``resume``: freeze like a stalled microcontroller; what the host sends waits;
- ``Faults`` applied to every frame sent (silence after N, garbage, bad checksums) and to every
  packet received (an unresponsive device reads but never answers);
- the physics loop calling the generation's ``step(dt, now)``.

A generation supplies ``decoder``, ``_handle(packet)``, ``_jobs()`` (its periodic behaviour)
and ``step``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import struct
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cobs import cobs

from runtime import transport
from runtime.address import Address
from runtime.exception import DeviceError
from runtime.protocol import Packet

PHYSICS_PERIOD = 0.01
RECEIVED_KEPT = 200  #: packets from the host kept in ``received`` (for tests)


@dataclass(frozen=True)
class Faults:
    """Ways a virtual device can misbehave (all off by default)."""

    unresponsive: bool = False  #: reads everything, answers nothing
    garbage: bool = False  #: sends random bytes between its frames
    silent_after: int | None = None  #: stops sending after this many packets
    bad_checksum: bool = False  #: corrupts the checksum of every other frame
    lose_confirmations: int = 0  #: the first N subscription confirmations are never sent

    @classmethod
    def parse(cls, names: list[str]) -> Faults:
        """From ``--fault`` values: unresponsive, garbage, bad-checksum, silent-after:N,
        lose-confirmations:N."""
        options: dict[str, Any] = {}
        for name in names:
            key, _, value = name.partition(":")
            if key in ("silent-after", "lose-confirmations") and value.isdigit():
                options[key.replace("-", "_")] = int(value)
            elif key in ("unresponsive", "garbage", "bad-checksum") and not value:
                options[key.replace("-", "_")] = True
            else:
                raise DeviceError(
                    f"unknown fault {name!r}: use unresponsive, garbage, bad-checksum, "
                    "silent-after:N or lose-confirmations:N", fault=name,
                )
        return cls(**options)


class _Decoder(Protocol):
    def feed(self, data: bytes) -> list[Packet]: ...


class VirtualLink:
    """The generation-independent half of a virtual device (see the module docstring)."""

    decoder: _Decoder
    #: the physics step: fixed (a paused device does not jump ahead) or None (time measured)
    physics_dt: float | None = PHYSICS_PERIOD

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.sent = 0  #: frames put on the wire
        self.received: list[Packet] = []  #: the last packets from the host
        self._writer: asyncio.StreamWriter | None = None
        self._running = asyncio.Event()  #: cleared while paused (see ``pause``)
        self._running.set()

    # -- running -------------------------------------------------------------------------------

    def pause(self) -> None:
        """Freeze like a stalled microcontroller (or a SIGSTOPped simulator): nothing is read,
        answered or sent until ``resume``; what the host sends meanwhile waits in the stream."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Be the device on this stream until it closes."""
        self._writer = writer
        tasks = [asyncio.create_task(job) for job in self._jobs()]
        try:
            while True:
                await self._running.wait()
                data = await reader.read(4096)
                if not data:
                    break
                await self._running.wait()  # paused while this read was pending
                for packet in self.decoder.feed(data):
                    self.received.append(packet)
                    del self.received[:-RECEIVED_KEPT]
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
        where = Address.parse(address, ("unix", "tcp"))
        try:
            reader, writer = await transport.open_stream(where)
        except OSError as exc:  # no device service there: say where was tried
            raise DeviceError(f"cannot connect to a device service at {address}: "
                              f"{exc.strerror or exc} (is it running, and is this its "
                              "--virtual-listen address?)", address=str(address)) from None
        await self.serve(reader, writer)

    async def serve_pty(self, link: str | Path, ready: asyncio.Event | None = None) -> None:
        """Open a pseudo-terminal, point ``link`` at its serial side, and serve on it."""
        async with transport.open_pty(link) as (reader, writer):
            if ready is not None:
                ready.set()
            await self.serve(reader, writer)

    # -- the wire --------------------------------------------------------------------------------

    def _send(self, frame: bytes) -> bool:
        """Put one frame on the wire (as the faults allow); whether it went."""
        writer = self._writer
        limit = self.faults.silent_after
        if writer is None or writer.is_closing() or (limit is not None and self.sent >= limit):
            return False
        self.sent += 1
        if self.faults.bad_checksum and self.sent % 2 == 0:
            frame = _corrupt_checksum(frame)
        if self.faults.garbage:
            writer.write(bytes(random.randrange(1, 256) for _ in range(random.randrange(1, 12))))
        writer.write(frame)
        return True

    # -- what a generation supplies -------------------------------------------------------------

    def _handle(self, packet: Packet) -> None:
        raise NotImplementedError

    def _jobs(self) -> list[Coroutine[Any, Any, None]]:
        """The device's periodic behaviour while it is served (streaming, heartbeats...)."""
        return []

    def step(self, dt: float, now: float) -> None:
        """Advance the simulated world by ``dt`` seconds (``now``: seconds since it started)."""

    async def _physics(self) -> None:
        start = last = time.monotonic()
        while True:
            await asyncio.sleep(PHYSICS_PERIOD)
            await self._running.wait()
            now = time.monotonic()
            self.step(self.physics_dt or now - last, now - start)
            last = now


def sense(name: str, values: dict[str, Any], now: float, phase: float) -> None:
    """The sensors both generations have, moving plausibly (``phase`` sets one device apart):
    limit switches that close now and then, line followers, a battery (BatteryBuzzer, PDB)."""
    if name == "LimitSwitch":
        for index in range(3):
            values[f"switch{index}"] = math.sin(now * (0.5 + index / 3) + phase) > 0.6
    elif name == "LineFollower":
        for index, side in enumerate(("left", "center", "right")):
            values[side] = _f32(0.5 + 0.5 * math.sin(now + index + phase))
    elif name in ("BatteryBuzzer", "PDB"):
        values["v_batt"] = _f32(11.1 + 0.2 * math.sin(now / 7))
        for cell in (1, 2, 3):
            values[f"v_cell{cell}"] = _f32(3.7 + 0.05 * math.sin(now / 5 + cell))
        values["calibrated"] = True


def _f32(value: float) -> float:
    """Round to float32 (what the wire carries) and keep it finite."""
    value = max(min(value, 3.0e38), -3.0e38)
    return struct.unpack("<f", struct.pack("<f", value))[0]  # type: ignore[no-any-return]


def _corrupt_checksum(frame: bytes) -> bytes:
    """The same packet with a wrong checksum (re-framed so only the checksum is wrong)."""
    raw = bytearray(cobs.decode(frame[2:]))
    raw[-1] ^= 0x5A
    block = cobs.encode(bytes(raw))
    return bytes((0, len(block))) + block
