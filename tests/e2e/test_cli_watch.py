"""Watching a robot: ``runtime devices`` (once and ``--watch`` on a real pseudo-terminal of 100
columns) and ``runtime monitor`` without the 20 Hz driver input unless asked."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
from runtime.messages import GamepadInput, LogRecord
from runtime.remote import Connection

from tests.e2e.robot import RunningRobot
from tests.support.terminal import Terminal
from tests.support.wait import wait_for_async

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KOALA = str((13 << 72) | (1 << 64) | 1)  # --simulate KoalaBear: the first of its type, id 1


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    running = RunningRobot(f"e2e{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("state"),
                           "--simulate", "KoalaBear", "--simulate", "LimitSwitch")
    running.wait_until_up()
    yield running
    assert running.stop() == 0


def last_frame(screen: bytearray) -> list[str]:
    """The table as last drawn (each frame starts by clearing the screen), without colours."""
    frame = screen.decode(errors="replace").rsplit("\x1b[H\x1b[J", 1)[-1]
    return [ANSI.sub("", line) for line in frame.splitlines()]


def test_devices_once_fits_100_columns_with_aliases(robot):
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "devices", "--mqtt", robot.url, "--robot", robot.robot,
         "--timeout", "30"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("DEVICE") and len(lines) == 3, result.stdout
    assert all(len(line) <= 100 for line in lines), result.stdout
    koala = next(line for line in lines if "KoalaBear" in line)
    assert koala.startswith("koala ") and "virtual" in koala and "+" in koala  # more: --all


async def test_devices_watch_is_a_live_table_with_the_latest_change_first(robot):
    await asyncio.to_thread(robot.call, "executor", "set_mode", "teleop")
    try:
        async with Terminal(rows=30, columns=100) as terminal:
            screen = terminal.screen
            process = await terminal.run(
                sys.executable, "-m", "runtime", "devices", "--watch", "--all", "--mqtt",
                robot.url, "--robot", robot.robot, "--timeout", "30")

            def row(name: str) -> str:
                return next((line for line in last_frame(screen) if line.startswith(name)), "")

            await wait_for_async(lambda: "duty_cycle_b=" in "".join(last_frame(screen))
                                 and row("koala") and row(KOALA[:6]) == "", 30,
                                 message=lambda: "\n".join(last_frame(screen)))
            assert "LimitSwitch" in "".join(last_frame(screen))
            async with Connection(robot.url, robot=robot.robot) as driver:
                await driver.wait_connected(10)
                deadline = time.monotonic() + 30
                while "duty_cycle_a=0.5" not in row("koala") and time.monotonic() < deadline:
                    # the sample program: left stick forward at half speed, both motors
                    await driver.publish(driver.topics.gamepad(0), GamepadInput(
                        buttons=0, axes=[0.0, 1.0, 0.0, 0.0], ts=time.time()))
                    await asyncio.sleep(0.05)  # the driver station's own 20 Hz cadence
            frame = last_frame(screen)
            koala = row("koala")
            # what changed last comes first: the duty cycles just set, or the encoders they turn
            assert koala.split()[3].startswith(("duty_cycle_", "enc_")), koala
            assert all(len(line) <= 100 for line in frame), "\n".join(frame)
            assert "2 devices" in frame[0]
            process.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        await asyncio.to_thread(robot.call, "executor", "set_mode", "idle")


@pytest.mark.parametrize(("args", "shows_input"), [((), False), (("--input",), True),
                                                  (("input/#",), True)])
async def test_monitor_hides_driver_input_unless_asked(amqtt_broker, robot_name, args,
                                                       shows_input):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", "monitor", "--mqtt", amqtt_broker.url, "--robot",
        robot_name, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[dict] = []

    async def read() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            lines.append(json.loads(line))

    reader = asyncio.ensure_future(read())
    try:
        async with Connection(amqtt_broker.url, robot=robot_name) as conn:
            await conn.wait_connected(10)
            marker = conn.topics.log("student")
            last = conn.topics.keyboard if shows_input else marker
            deadline = time.monotonic() + 30
            while not any(line["topic"] == last for line in lines):
                assert time.monotonic() < deadline, lines
                await conn.publish(conn.topics.gamepad(0), GamepadInput(
                    buttons=1, axes=[0, 0, 0, 0], ts=time.time()), qos=1)
                await conn.publish(conn.topics.keyboard, b"", qos=1)
                await conn.publish(marker, LogRecord(ts=time.time(), level="INFO",
                                                     logger="student", message="hi"), qos=1)
                await asyncio.sleep(0.1)  # publishing at a cadence until the monitor is ready
        inputs = [line for line in lines if "/input/" in line["topic"]]
        assert bool(inputs) == shows_input, lines
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 20)
        reader.cancel()


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_the_table_fits_any_width_and_hides_nothing_with_all(width):
    from runtime.cli.table import DeviceRow, render

    koala = DeviceRow(uid=KOALA, type="KoalaBear", port="/dev/ttyACM0", name="left_drive_motor",
                      values={f"param_{i}": i * 0.123456 for i in range(21)})
    koala.update({"param_20": 5.0}, now=1.0)  # changed last: first
    switch = DeviceRow(uid=str(1 << 64), type="LimitSwitch", values={"switch0": True})
    lines = render([koala, switch], width)
    assert all(len(line) <= width for line in lines)
    row = next(line for line in lines if "KoalaBear" in line)
    assert row.split()[3] == "param_20=5" and re.search(r" \+\d+$", row)  # how many hidden
    assert "ttyACM0" in row and "switch0=1" in lines[-1]
    everything = render([koala, switch], width, all_params=True)
    assert all(len(line) <= width for line in everything)
    assert all(f"param_{i}=" in "\n".join(everything) for i in range(21))
