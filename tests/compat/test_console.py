"""``runtime console``: a real broker service keeping the history, records published as the
services publish them, the command run piped (plain lines) and on a real pseudo-terminal
(colours), with ``--since`` and ``--no-follow``. And the executor's "motors held" notice."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runtime.buffer import BufferStore
from runtime.messages import LogRecord, encode
from runtime.remote import Connection
from runtime.service.broker import Broker
from runtime.service.executor.inputnotice import BACK, HELD, DriverInputNotice
from runtime.studentconsole import lines, parse_since

from tests.support.terminal import Terminal
from tests.support.wait import wait_for, wait_for_async

# a generous wait for the robot: the default 5 s is a person's patience, not a loaded CI's
CONSOLE = [sys.executable, "-m", "runtime", "console", "--timeout", "30"]


def record(logger: str, message: str, level: str = "INFO", ts: float | None = None) -> LogRecord:
    return LogRecord(ts=time.time() if ts is None else ts, level=level, logger=logger,
                     message=message)


#: (log source, record, shown?) as the services publish them
RECORDS = [
    ("executor", record("runtime.service.executor", "mode teleop (was idle)"), True),
    ("executor", record("runtime.service.executor", "cannot watch driver input (x)",
                        "WARNING"), False),
    ("executor", record("student", "hello from the executor's own logger"), False),
    ("broker", record("runtime.service.broker", "options set: {}"), False),
    ("device", record("runtime.service.device.manager",
                      "KoalaBear 61409211021379097329706 connected on virtual:x"), True),
    ("student", record("student", "line one\nline two"), True),
    ("student", record("student", "Traceback (your code, most recent call last):\n"
                       "teleop_main raised KeyError: 'missing'", "error"), True),
    ("student", record("student.log", "distance: 12.5"), True),
    ("device", record("runtime.service.device.manager",
                      "KoalaBear 61409211021379097329706 on virtual:x removed: unplugged"), True),
]


@pytest.fixture
async def robot(mosquitto_broker, robot_name, tmp_path):
    """A broker service keeping the console history, and a connection publishing logs."""
    async with Connection(mosquitto_broker.url, robot=robot_name, service="broker") as service:
        broker = Broker(None, state_dir=tmp_path / "state")
        await service.subscribe(service.topics.any_log, broker.history.on_log)
        await broker.serve(service)
        async with Connection(mosquitto_broker.url, robot=robot_name) as publisher:
            yield mosquitto_broker.url, robot_name, broker, publisher


async def publish(publisher: Connection, source: str, item: LogRecord) -> None:
    await publisher.publish(publisher.topics.log(source), encode(item), qos=1)


async def test_piped_since_no_follow_prints_plain_relevant_lines(robot) -> None:
    url, name, broker, publisher = robot
    for source, item, _ in RECORDS:
        await publish(publisher, source, item)
    shown = [item for _, item, keep in RECORDS if keep]
    await wait_for_async(lambda: len(broker.history.since()) == len(shown))
    process = await asyncio.create_subprocess_exec(
        *CONSOLE, "--since", "10m", "--no-follow", "--mqtt", url, "--robot", name,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert "\x1b[" not in text  # piped: no colour
    expected = [line for item in shown for line in lines(item)]
    assert text.splitlines() == expected
    assert any(line.endswith(" line two") for line in expected)
    assert any(" ERROR teleop_main raised KeyError" in line for line in expected)
    old = await asyncio.create_subprocess_exec(
        *CONSOLE, "--since", "0s", "--no-follow", "--mqtt", url, "--robot", name,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = await old.communicate()
    assert out == b""  # nothing newer than now


async def test_on_a_terminal_errors_are_red_and_it_follows(robot) -> None:
    url, name, _, publisher = robot
    async with Terminal() as terminal:
        process = await terminal.run(*CONSOLE, "--mqtt", url, "--robot", name, colour=True)
        screen = terminal.screen
        await wait_for_async(lambda: b"following the console of robot" in screen, 20)
        await publish(publisher, "student", record("student", "all good"))
        await publish(publisher, "student", record("student", "teleop_main raised KeyError",
                                                   "error"))
        await wait_for_async(lambda: b"\x1b[31mERROR teleop_main raised KeyError\x1b[0m"
                             in screen)
        assert b"all good\r\n" in screen and b"\x1b[31m" not in screen.split(b"all good")[0]
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_bad_since_is_one_clear_line() -> None:
    process = await asyncio.create_subprocess_exec(
        *CONSOLE, "--since", "yesterday", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await process.communicate()
    assert process.returncode != 0
    assert "--since takes a duration like 30s, 10m or 2h, not 'yesterday'" in err.decode()
    assert parse_since("10m") == 600 and parse_since("2h") == 7200 and parse_since("5") == 5


def test_teleop_without_input_says_held_once_and_back_once(robot_name: str) -> None:
    said: list[str] = []
    mode = ["teleop"]
    with BufferStore(robot_name) as broker_store, BufferStore(robot_name) as store:
        pad = broker_store.gamepad(0, create=True)
        notice = DriverInputNotice(lambda: mode[0], lambda: [store.gamepad(0)], said.append)
        for _ in range(3):
            notice.check()
        assert said == [HELD]  # no input yet: said once, not every check
        pad.update(0, (0.0, 0.5, 0.0, 0.0), time.time())
        notice.check()
        notice.check()
        assert said == [HELD, BACK]
        pad.update(0, (0.0, 0.5, 0.0, 0.0), time.time() - 1.0)  # the driver station stalls
        notice.check()
        assert said == [HELD, BACK, HELD]
        mode[0] = "auto"
        notice.check()
        mode[0] = "teleop"
        pad.update(0, (0.0, 0.5, 0.0, 0.0), time.time())
        notice.check()  # teleop starts again with live input: nothing to say
        assert said == [HELD, BACK, HELD]


def test_the_notice_thread_runs_in_the_executor(tmp_path: Path, robot_name: str) -> None:
    """In the executor: teleop with a stale gamepad says HELD on the student log, once."""
    from tests.executor.rig import Rig

    rig = Rig(tmp_path, robot_name, program="drive.py")

    def script(rig: Rig) -> None:
        rig.mode("teleop")
        rig.wait_log("motors held: no driver input", level="warning")

        def driving() -> bool:  # a driver station: fresh input until the executor says so
            rig.gamepads[0].update(0, (0.0, 0.5, 0.0, 0.0), time.time())
            return any("driver input is back" in text for text in rig.texts("warning"))

        wait_for(driving)

    try:
        rig.run(script)
    finally:
        rig.close()
