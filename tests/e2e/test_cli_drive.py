"""``runtime drive`` on a real pseudo-terminal: keys become input messages, q restores all."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import termios
from collections.abc import Callable

import psutil
from runtime.buffer.segment import reclaim
from runtime.messages import loads
from runtime.remote import Connection

from tests.e2e.robot import RunningRobot
from tests.support.terminal import Terminal
from tests.support.wait import wait_for_async


async def test_keys_drive_the_gamepad_and_quitting_restores_the_terminal(
    amqtt_broker, robot_name
) -> None:
    seen: list[dict | None] = []
    async with Connection(amqtt_broker.url, robot=robot_name) as connection:
        await connection.subscribe(
            connection.topics.gamepad(0), lambda t, p: seen.append(loads(p) if p else None)
        )
        async with Terminal() as terminal:
            before = termios.tcgetattr(terminal.slave)
            process = await terminal.run(
                sys.executable, "-m", "runtime", "drive", "--mqtt", amqtt_broker.url,
                "--robot", robot_name)

            def last() -> dict | None:
                return seen[-1] if seen else None

            def sent_since(mark: int, held: Callable[[dict], bool]) -> bool:
                """Any input since ``seen[mark]`` showed ``held``: a key is held for only 0.7 s,
                so under load the press and its release may both arrive between two polls."""
                return any(message is not None and held(message) for message in seen[mark:])

            await wait_for_async(lambda: last() and last()["axes"] == [0, 0, 0, 0], 20)
            mark = len(seen)
            terminal.type(b"w")
            await wait_for_async(lambda: sent_since(mark, lambda m: m["axes"][1] == 1.0),
                                 message=lambda: f"no forward input in {seen[mark:]}")
            mark = len(seen)
            terminal.type(b"\x1b[Cj")
            await wait_for_async(
                lambda: sent_since(mark, lambda m: m["axes"][2] == 1.0 and m["buttons"] & 1),
                message=lambda: f"no right-stick + button input in {seen[mark:]}")
            # No key-release events in a terminal: a key is let go once its hold runs out.
            await wait_for_async(lambda: last() and last()["axes"] == [0, 0, 0, 0])
            assert b"WASD: left stick" in terminal.screen
            terminal.type(b"q")
            assert await asyncio.wait_for(process.wait(), 20) == 0
            await wait_for_async(lambda: seen[-1] is None)  # "input gone"
            assert termios.tcgetattr(terminal.slave) == before


def test_drive_needs_a_terminal(amqtt_broker, robot_name) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "drive", "--mqtt", amqtt_broker.url],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: runtime drive needs a terminal (its input is not a TTY)"


def latest_line(screen: bytearray) -> str:
    """The status line as last drawn (each redraw starts with carriage return, clear line)."""
    return screen.decode(errors="replace").rsplit("\r\x1b[K", 1)[-1]


async def test_the_status_line_follows_the_robot_and_turns_red_when_it_dies(
    amqtt_broker, robot_name, tmp_path
) -> None:
    """Connection, round-trip time, mode, code state and devices; an estop is left only with a
    confirmation; a killed robot turns the line red at once, without a stale mode."""
    robot = RunningRobot(robot_name, tmp_path / "state", "--simulate", "KoalaBear",
                         mqtt=amqtt_broker.url)
    robot.wait_until_up()
    terminal = Terminal(rows=30, columns=100)
    screen = terminal.screen

    async def shows(*texts: str) -> str:
        await wait_for_async(lambda: all(t in latest_line(screen) for t in texts), 30,
                             message=lambda: f"{texts} not in {latest_line(screen)!r}")
        return latest_line(screen)

    try:
        async with terminal:
            process = await terminal.run(
                sys.executable, "-m", "runtime", "drive", "--mqtt", amqtt_broker.url,
                "--robot", robot_name, colour=True)
            line = await shows("connected, rtt", "ms, IDLE, code stopped, 1 device")
            assert "\x1b[32m" in line  # green while the robot answers
            assert len(line.replace("\x1b[32m", "").replace("\x1b[0m", "")) < 100
            terminal.type(b"T")
            await shows("TELEOP, code running")
            terminal.type(b" ")
            await shows("ESTOP, code stopped")
            terminal.type(b"T")  # one Shift-T does not clear an estop...
            await shows("ESTOP is on: Shift-T again clears it")
            mode = await asyncio.to_thread(robot.call, "executor", "get_mode")
            assert mode["mode"] == "estop"
            terminal.type(b"T")  # ...the same key again does
            await shows("TELEOP, code running", "estop cleared")
            for child in [*robot.children(), psutil.Process(robot.process.pid)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            line = await shows("ROBOT NOT ANSWERING FOR", "last mode teleop")
            assert "\x1b[1;31m" in line and "TELEOP," not in line  # red; no current mode shown
            terminal.type(b"q")
            assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if robot.process.poll() is None:
            robot.stop()
        reclaim(robot_name)  # a killed robot leaves its buffers behind


def test_the_status_line_from_the_robots_state():
    """RobotStatus, table by table: what the driver reads for each state of the robot."""
    from runtime.cli.drive_status import STALE_AFTER, RobotStatus

    status = RobotStatus()
    assert status.line(0.0, colour=False) == "NO BROKER CONNECTION (reconnecting)"
    status.connected = True
    assert status.line(0.0, colour=False) == "ROBOT NEVER ANSWERED"
    status.answered(10.0, 0.0008, {"mode": "teleop", "since": 100.0})
    status.on_device("1", True)
    status.on_device("2", True)
    status.on_device("1", False)
    assert status.line(10.5, colour=False) == \
        "connected, rtt 0.8 ms, TELEOP, code running, 1 device"
    status.on_student_log("ERROR", "Traceback...\nZeroDivisionError: division by zero", 99.0)
    assert "code running" in status.line(10.5, colour=False)  # an error of the previous run
    status.on_student_log("ERROR", "Traceback...\nZeroDivisionError: division by zero", 101.0)
    line = status.line(10.5, colour=True)
    assert "code ERROR: ZeroDivisionError: division by zero" in line and "\x1b[1;31m" in line
    status.answered(11.0, 0.001, {"mode": "teleop", "since": 105.0})  # a new run: no error yet
    assert "code running" in status.line(11.0, colour=False)
    status.answered(11.0, 0.001, {"mode": "idle", "since": 106.0})
    assert "IDLE, code stopped" in status.line(11.0, colour=False)
    assert status.line(11.0 + STALE_AFTER + 2, colour=False) == \
        "ROBOT NOT ANSWERING FOR 4 S, last mode idle"


def test_a_key_pressed_is_sent_once_even_if_its_hold_ran_out_before_the_publish():
    """A loaded machine may deschedule ``runtime drive`` for longer than a key's hold: the tap
    still goes out once, then the key is let go."""
    from runtime.cli.drive import FIRST_HOLD, DriverState

    state = DriverState()
    state.press("w", 100.0)
    state.expire(100.0 + FIRST_HOLD + 5)  # woken late: the hold ran out unsent
    assert state.gamepad(105.0).axes[1] == 1.0
    state.published({"w"})
    assert state.expire(100.0 + FIRST_HOLD + 5)
    assert state.gamepad(105.0).axes[1] == 0.0
    state.press("d", 200.0)
    state.published(set())  # input built before "d" arrived went out: "d" is still unsent
    assert not state.expire(200.0 + FIRST_HOLD + 1)
