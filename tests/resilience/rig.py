"""A whole robot (``runtime up --mqtt URL``) on a broker the test may kill, plus a driver and a
motor probe that reads the KoalaBear's reported duty cycle from shared memory (it works while
MQTT is down)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import psutil
from runtime.buffer import BufferStore
from runtime.messages import GamepadInput, ServiceStatus, decode, encode
from runtime.remote import Client, Connection

from tests.e2e.robot import RunningRobot

KOALA = (13 << 72) | (1 << 64) | 42
SERVICES = ("broker", "device", "executor")


def start_robot(state_dir: Path, url: str) -> RunningRobot:
    robot = RunningRobot(f"res{uuid.uuid4().hex[:6]}", state_dir, "--simulate", "KoalaBear:42",
                         "--simulate", "LimitSwitch", mqtt=url)
    robot.wait_until_up()
    return robot


def service_pids(robot: RunningRobot) -> dict[str, int]:
    pids = {}
    for child in robot.children():
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if "service" in cmdline:
                pids[cmdline[cmdline.index("service") + 1]] = child.pid
    return pids


class MotorProbe:
    """Samples the KoalaBear's reported ``duty_cycle_a`` every 5 ms from shared memory."""

    def __init__(self, robot: str) -> None:
        self.robot = robot
        self.samples: list[tuple[float, float | None]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> MotorProbe:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        store = BufferStore(self.robot)
        buffer = None
        try:
            while True:
                value = None
                try:
                    if buffer is None or not buffer.is_live():
                        buffer = store.open_device(KOALA)
                    value = float(buffer.get("duty_cycle_a"))
                except Exception:
                    buffer = None  # the device service is restarting: no buffer right now
                self.samples.append((time.monotonic(), value))
                await asyncio.sleep(0.005)
        finally:
            store.close()

    def latest(self) -> float | None:
        return self.samples[-1][1] if self.samples else None

    def driven_after(self, since: float) -> list[tuple[float, float | None]]:
        return [(t, v) for t, v in self.samples if t >= since and v not in (None, 0.0)]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Driver:
    """A driver station: one connection, gamepad input at 20 Hz while ``driving``."""

    def __init__(self, robot: RunningRobot) -> None:
        self.robot = robot
        self.connection = Connection(robot.url, robot=robot.robot, connect_timeout=20)
        self.client = Client(self.connection)
        self.sent: list[float] = []  # monotonic times of inputs that went out
        self.status: dict[str, list[tuple[float, str]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Driver:
        await self.connection.start()
        await self.connection.subscribe(self.connection.topics.any_status, self._on_status,
                                        qos=1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop_driving()
        await self.connection.close()

    def _on_status(self, topic: str, payload: bytes) -> None:
        if payload:
            name = topic.split("/")[-2]
            self.status.setdefault(name, []).append(
                (time.monotonic(), decode(ServiceStatus, payload).state))

    def online_since(self, since: float) -> dict[str, float]:
        """Service -> first time it was seen online at or after ``since``."""
        seen = {}
        for name, states in self.status.items():
            for when, state in states:
                if when >= since and state == "online":
                    seen[name] = when
                    break
        return seen

    def drive(self, forward: float) -> None:
        self._task = asyncio.ensure_future(self._drive(forward))

    async def _drive(self, forward: float) -> None:
        while True:
            message = GamepadInput(buttons=0, axes=[0.0, forward, 0.0, 0.0], ts=time.time())
            if await self.connection.publish(self.connection.topics.gamepad(0), encode(message)):
                self.sent.append(time.monotonic())
            await asyncio.sleep(0.05)

    def stop_driving(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
