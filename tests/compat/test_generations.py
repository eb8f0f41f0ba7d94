"""One program per PiE generation, written in its style, on ``runtime up`` with simulated
devices: uploaded, run in autonomous and teleop, with assertions on what the devices were sent
(their reported values, ``device/<uid>/data``) and on what ``runtime console`` printed."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime.buffer import BUTTONS, KEYS
from runtime.catalog import default_catalog
from runtime.messages import (
    DeviceData,
    GamepadInput,
    GameState,
    KeyboardInput,
    decode,
    encode,
)
from runtime.remote import Connection
from runtime.virtual import make_virtual_uid

from tests.e2e.robot import RUNTIME, RunningRobot
from tests.support.wait import wait_for, wait_for_async

pytestmark = pytest.mark.slow

PROGRAMS = Path(__file__).parent / "programs"


def _uid(type_name: str, number: int) -> str:
    return str(make_virtual_uid(default_catalog().get(type_name), number))


YOGI = _uid("YogiBear", 5)  # alias left_motor (2019-20)
ARM = _uid("KoalaBear", 6)  # alias arm (2019-20)
KOALA = _uid("KoalaBear", 42)  # alias koala (2021; runtime up names the first KoalaBear)
C_MOTOR = _uid("KoalaBear", 4242)  # "13_4242" (C runtime)
ENCODER = _uid("Encoder", 77)  # "3_77" (C runtime)


class Console:
    """``runtime console`` piped (its plain form), lines collected in a thread."""

    def __init__(self, robot: RunningRobot) -> None:
        self.process = subprocess.Popen(
            [*RUNTIME, "console", "--mqtt", robot.url, "--robot", robot.robot, "--timeout", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        import threading

        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    async def wait(self, text: str) -> str:
        return await wait_for_async(
            lambda: next((line for line in self.lines if text in line), None), timeout=30,
            message=lambda: f"no {text!r} in console: {self.lines}")

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Field:
    """A driver station and a watcher of device values, on one MQTT connection."""

    def __init__(self, robot: RunningRobot) -> None:
        self.robot = robot
        self.values: dict[str, dict[str, object]] = {}
        self.history: list[tuple[float, str, str, object]] = []
        self.pad = GamepadInput(buttons=0, axes=[0.0] * 4, ts=0.0)
        self.keys = 0
        self._sender: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Field:
        self.connection = Connection(self.robot.url, robot=self.robot.robot)
        await self.connection.start()
        await self.connection.subscribe(self.connection.topics.any_device_data, self._on_data)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop_input()
        await self.connection.close()

    def _on_data(self, topic: str, payload: bytes) -> None:
        uid = topic.split("/")[-2]
        data = decode(DeviceData, payload)
        self.values.setdefault(uid, {}).update(data.params)
        self.history.extend((time.monotonic(), uid, k, v) for k, v in data.params.items())

    def sent(self, uid: str, param: str, value: float) -> bool:
        """Did the device report ``param`` at ``value`` at some point (float32 on the wire)?"""
        return any(seen == uid and name == param and got == pytest.approx(value)
                   for _, seen, name, got in self.history)

    async def until(self, uid: str, param: str, value: float, console: Console,
                    ever: bool = False) -> None:
        """Wait until the device reports ``param`` at ``value`` (float32 on the wire), now or
        (``ever``: a value held only briefly) at some point since the watch began."""
        def reported() -> bool:
            if ever:
                return self.sent(uid, param, value)
            return self.value(uid, param) == pytest.approx(value)
        await wait_for_async(reported, timeout=30, message=lambda: (
            f"{param} of {uid} is {self.value(uid, param)}, not {value}; console: "
            f"{console.lines[-12:]}"))

    def value(self, uid: str, param: str) -> object:
        return self.values.get(uid, {}).get(param)

    def send_input(self, buttons: tuple[str, ...] = (), axes: tuple[float, ...] = (0, 0, 0, 0),
                   keys: tuple[str, ...] = ()) -> None:
        """Drive: what the driver holds from now on (sent at 20 Hz, as a driver station)."""
        self.pad = GamepadInput(buttons=sum(1 << BUTTONS.index(b) for b in buttons),
                                axes=[float(a) for a in axes], ts=0.0)
        self.keys = sum(1 << KEYS.index(k) for k in keys)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())

    def stop_input(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    async def _send(self) -> None:
        topics = self.connection.topics
        while True:
            now = time.time()
            pad = self.pad.model_copy(update={"ts": now})
            await self.connection.publish(topics.gamepad(0), encode(pad))
            await self.connection.publish(topics.keyboard, encode(KeyboardInput(keys=self.keys,
                                                                                ts=now)))
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def robot(tmp_path_factory) -> Iterator[RunningRobot]:
    running = RunningRobot(
        f"compat{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("state"),
        "--simulate", "KoalaBear:42", "--simulate", "YogiBear:5", "--simulate", "KoalaBear:6",
        "--simulate", "KoalaBear:4242", "--simulate", "Encoder:77")
    running.wait_until_up()
    running.cli("alias", "set", "left_motor", YOGI)
    running.cli("alias", "set", "arm", ARM)
    wait_for(lambda: len(running.call("device", "list")) == 5, timeout=30)
    yield running
    assert running.stop() == 0


@pytest.fixture
def console(robot: RunningRobot) -> Iterator[Console]:
    watching = Console(robot)
    wait_for(lambda: watching.count("following the console of robot") == 1, timeout=30)
    yield watching
    watching.stop()
    robot.cli("mode", "idle")


async def cli(robot: RunningRobot, *args: str) -> subprocess.CompletedProcess[str]:
    """A ``runtime`` command, in a thread (the input keeps flowing meanwhile)."""
    return await asyncio.to_thread(robot.cli, *args)


async def _upload(robot: RunningRobot, name: str, console: Console) -> None:
    result = await cli(robot, "upload", str(PROGRAMS / name))
    assert "line " not in result.stdout + result.stderr  # no lint finding on a right program
    # the console is subscribed once it shows the program being stored
    await console.wait("new student program")


async def test_a_2019_program_runs_as_written(robot: RunningRobot, console: Console) -> None:
    await _upload(robot, "pie2019.py", console)
    async with Field(robot) as field:
        await cli(robot, "mode", "auto", "--start-pos", "right")
        await console.wait("Autonomous from right")
        await field.until(YOGI, "duty_cycle", 0.5, console, ever=True)
        await console.wait("Autonomous done")
        await field.until(YOGI, "duty_cycle", 0.0, console)
        assert console.count("Field.starting_zone is the name of an earlier PiE runtime") == 1
        assert console.count("Robot.set_motor(device, value) is the name of an earlier") == 1

        await cli(robot, "mode", "teleop")
        await console.wait("mode teleop (was auto)")
        await console.wait("Tele-operated mode has started!")
        await console.wait("motors held: no driver input")
        field.send_input(axes=(0, 0.5, 0, 0))
        await console.wait("driver input is back")
        await field.until(YOGI, "duty_cycle", 0.5, console)
        pressed = time.monotonic()
        field.send_input(buttons=("button_a",), axes=(0, 0.5, 0, 0))  # A held: run every tick
        await field.until(ARM, "duty_cycle_a", 0.3, console)
        await console.wait("Robot.run(wave_arm): wave_arm is still running, so this call "
                           "does nothing")
        held_until = time.monotonic() + 1.0
        await wait_for_async(lambda: time.monotonic() > held_until)  # a second of ticks with A
        assert console.count("wave_arm is still running") == 1
        assert console.count("ERROR") == 0
        # the drive motor never dropped to 0 while A was held (no failing ticks)
        drops = [value for seen, uid, param, value in field.history
                 if uid == YOGI and param == "duty_cycle" and seen > pressed and value != 0.5]
        assert drops == []
        assert field.value(YOGI, "duty_cycle") == 0.5


async def test_a_2021_program_runs_as_written(robot: RunningRobot, console: Console) -> None:
    await _upload(robot, "pie2021.py", console)
    async with Field(robot) as field:
        await cli(robot, "mode", "auto", "--start-pos", "left", "--alliance", "blue")
        await console.wait("auto: start position left")
        await field.until(KOALA, "duty_cycle_a", 0.4, console, ever=True)
        await console.wait("auto: stopped, encoder at")
        assert field.value(KOALA, "duty_cycle_b") == 0.0
        field.send_input(axes=(0, -0.25, 0, 0))
        state = GameState(state="poison_ivy", ts=time.time())  # field control's, retained
        await field.connection.publish(field.connection.topics.game_state, encode(state),
                                       qos=1, retain=True)
        await cli(robot, "mode", "teleop", "--alliance", "blue")
        await console.wait("teleop: alliance blue game state poison_ivy")
        await field.until(KOALA, "duty_cycle_a", -0.25, console)
        await field.until(KOALA, "duty_cycle_b", 0.25, console)
        field.send_input(axes=(0, -0.25, 0, 0), keys=("w",))
        await field.until(KOALA, "duty_cycle_a", 1.0, console)
        assert console.count("ERROR") == 0
        assert console.count("earlier PiE runtime") == 0  # nothing renamed in this generation


async def test_a_c_runtime_program_runs_as_written(robot: RunningRobot,
                                                   console: Console) -> None:
    await _upload(robot, "cruntime.py", console)
    async with Field(robot) as field:
        await cli(robot, "mode", "auto", "--start-pos", "left")
        await console.wait("start position: left")
        await console.wait("Robot.start_pos is the name of an earlier PiE runtime")
        await console.wait("blink: on")
        await console.wait("blink: off")
        await field.until(C_MOTOR, "duty_cycle_a", 0.6, console, ever=True)
        await field.until(C_MOTOR, "duty_cycle_a", 0.0, console)
        line = await console.wait("rotation: ")  # the Encoder's own value, read on the first call
        assert line.split("rotation: ")[1].lstrip("-").isdigit()
        assert console.count("did not send") == 0

        field.send_input(keys=("up_arrow",))
        await cli(robot, "mode", "teleop")
        await field.until(C_MOTOR, "duty_cycle_b", 0.8, console)
        field.send_input(buttons=("dpad_up",), axes=(0, 0, 0, -0.5))
        await field.until(C_MOTOR, "duty_cycle_b", -0.5, console)
        assert await console.wait("WARNING dpad up pressed")  # print(..., file=sys.stderr)
        assert console.count("ERROR") == 0
