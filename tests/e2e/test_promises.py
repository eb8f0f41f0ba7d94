"""Promises of docs/cli.md, docs/student-api.md and docs/executor.md, checked on a real robot.

One ``runtime up`` (embedded broker, real services) for the module, driven only through its
public surface: ``runtime upload``/``mode``, RPC and the ``log/student`` topic. Its
``main_period`` is 10 s (the most allowed), so a ``*_main`` that loops is stopped by a mode
change, not by its own time limit, even when a loaded machine makes the test slow to ask;
``setup_timeout`` and ``import_timeout`` are 10 s for the same reason. ``stop_grace`` is 2 s:
a stopped student process is SIGKILLed after it, and the default 0.05 s is less than a loaded
machine may take to schedule the process and run a ``finally:`` (the motors are at 0 from the
stop on, whatever the grace). ``runtime up`` and SIGTERM gets a robot of its own.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest
from runtime.exception import RPCError
from runtime.messages import LogRecord, decode
from runtime.options import set_options
from runtime.remote import Connection

from tests.e2e.robot import RunningRobot
from tests.support.wait import wait_for, wait_for_async

pytestmark = pytest.mark.slow

UPLOAD_LIMIT = 1_000_000  # docs/executor.md: upload() takes "at most 1,000,000 bytes"


def _start(state_dir: Path) -> RunningRobot:
    robot = RunningRobot(f"pr{uuid.uuid4().hex[:6]}", state_dir)
    robot.wait_until_up()
    return robot


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("state")
    set_options(state_dir, {"main_period": 10.0, "setup_timeout": 10.0, "import_timeout": 10.0,
                            "stop_grace": 2.0})
    running = _start(state_dir)
    yield running
    assert running.stop() == 0


class StudentLog:
    """The lines of ``log/student`` of one robot, as they arrive (with arrival times)."""

    def __init__(self, robot: RunningRobot) -> None:
        self.robot = robot
        self.lines: list[tuple[float, str]] = []
        self.records: list[LogRecord] = []

    async def __aenter__(self) -> StudentLog:
        self.connection = Connection(self.robot.url, robot=self.robot.robot)
        await self.connection.start()
        await self.connection.subscribe(self.connection.topics.log("student"), self._on_log)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    def _on_log(self, topic: str, payload: bytes) -> None:
        now = time.monotonic()
        record = decode(LogRecord, payload)
        self.records.append(record)
        for line in record.message.splitlines():
            self.lines.append((now, line))

    def find(self, prefix: str) -> list[str]:
        return [line for _, line in self.lines if line.startswith(prefix)]

    async def first(self, prefix: str) -> tuple[float, str]:
        return await wait_for_async(
            lambda: next(((when, line) for when, line in self.lines if line.startswith(prefix)),
                         None),
            timeout=30, message=lambda: f"no {prefix!r} line in {self.lines[-20:]}")


def _upload(robot: RunningRobot, tmp_path: Path, source: str) -> None:
    program = tmp_path / "program.py"
    program.write_text(source)
    robot.cli("upload", str(program))


async def test_finally_runs_when_a_looping_main_is_stopped(robot, tmp_path):
    """docs/student-api.md: the stop is not catchable, "your `finally:` blocks do run"."""
    _upload(robot, tmp_path, (
        "def teleop_setup():\n    pass\n\n"
        "def teleop_main():\n"
        "    try:\n"
        "        print('looping')\n"
        "        while True:\n"
        "            pass\n"
        "    except Exception:\n"
        "        print('caught the stop')\n"
        "    finally:\n"
        "        print('finally ran in', Match.mode)\n"
    ))
    async with StudentLog(robot) as log:
        await asyncio.to_thread(robot.cli, "mode", "teleop")
        try:
            await log.first("looping")
            assert log.find("finally ran") == []  # the loop is running: nothing stopped it yet
        finally:
            await asyncio.to_thread(robot.cli, "mode", "idle")
        await log.first("finally ran")
        assert log.find("caught the stop") == []


async def test_match_elapsed_counts_from_the_start_of_the_mode(robot, tmp_path):
    """docs/student-api.md: ``Match.elapsed`` is the seconds since the mode started.

    Checked against clocks, not thresholds: across a ``Robot.sleep(0.2)`` it grows by at least
    0.2 s, and in the next mode it is no more than the time since the test asked for that mode
    (the same monotonic clock for every process of the machine).
    """
    _upload(robot, tmp_path, (
        "import time\n\n"
        "def autonomous_setup():\n"
        "    before = Match.elapsed\n"
        "    Robot.sleep(0.2)\n"
        "    print('auto grew', Match.elapsed - before >= 0.2, before >= 0)\n\n"
        "def autonomous_main():\n"
        "    pass\n\n"
        "def teleop_setup():\n"
        "    print('teleop elapsed', Match.elapsed, time.monotonic())\n\n"
        "def teleop_main():\n"
        "    pass\n"
    ))
    async with StudentLog(robot) as log:
        try:
            await asyncio.to_thread(robot.cli, "mode", "auto")
            _, grew = await log.first("auto grew")
            assert grew == "auto grew True True"
            asked = time.monotonic()
            await asyncio.to_thread(robot.cli, "mode", "teleop")
            _, line = await log.first("teleop elapsed")
        finally:
            await asyncio.to_thread(robot.cli, "mode", "idle")
    elapsed, printed_at = (float(word) for word in line.split()[2:])
    assert 0 <= elapsed <= printed_at - asked


async def test_a_deep_traceback_is_cut_to_its_first_3_and_last_9_frames(robot, tmp_path):
    """docs/executor.md: "more than 12 frames are cut to the first 3 and the last 9", paths
    shortened to the file name, only the student's own frames."""
    _upload(robot, tmp_path, (
        "def down(n):\n"
        "    if n == 0:\n"
        "        raise ValueError('bottom')\n"
        "    return up(n - 1)\n\n"
        "def up(n):\n"
        "    return down(n - 1)\n\n"  # two functions: no "[Previous line repeated]" folding
        "def autonomous_setup():\n"
        "    down(20)\n\n"
        "def autonomous_main():\n"
        "    pass\n"
    ))
    async with StudentLog(robot) as log:
        await asyncio.to_thread(robot.cli, "mode", "auto")
        try:
            report = await wait_for_async(lambda: next(
                (r.message for r in log.records if "ValueError: bottom" in r.message), None),
                timeout=30)
        finally:
            await asyncio.to_thread(robot.cli, "mode", "idle")
    lines = report.splitlines()
    frames = [line for line in lines if line.lstrip().startswith("File ")]
    assert lines[0] == "Traceback (your code, most recent call last):"
    assert len(frames) == 12  # 22 student frames (setup, then down/up 21 times) cut to 3 + 9
    assert any(line.strip() == "... 10 more ..." for line in lines)
    assert "in autonomous_setup" in frames[0] and "in down" in frames[-1]
    assert all(line.lstrip().startswith('File "studentcode.py"') for line in frames)


def test_upload_takes_1_000_000_bytes_and_refuses_one_more(robot):
    """docs/executor.md: ``upload(source)`` checks "at most 1,000,000 bytes"."""
    header = "def autonomous_setup():\n    pass\n#"
    at_limit = header + "x" * (UPLOAD_LIMIT - len(header) - 1) + "\n"
    assert len(at_limit.encode()) == UPLOAD_LIMIT
    try:
        assert "sha256" in robot.call("executor", "upload", at_limit)
        with pytest.raises(RPCError, match=r"1,?000,?000 bytes"):
            robot.call("executor", "upload", at_limit + "#")
        with pytest.raises(RPCError, match=r"1,?000,?000 bytes"):
            robot.call("executor", "upload", "#" + "é" * (UPLOAD_LIMIT // 2))  # bytes, not chars
    finally:
        robot.cli("upload", str(Path(__file__).parents[2] / "shared/runtime/sample/studentcode.py"))


def test_sigterm_stops_runtime_up_and_leaves_nothing(tmp_path_factory):
    """docs/cli.md: "Ctrl-C or SIGTERM stops it all, leaving no process and no shared-memory
    segment behind" (SIGTERM is what systemd and docker send)."""
    robot = RunningRobot(f"pr{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("state"),
                         "--simulate", "KoalaBear")
    robot.wait_until_up()
    children = robot.children()
    assert len(children) >= 3 and robot.segments() != []
    robot.process.send_signal(signal.SIGTERM)
    assert robot.process.wait(60) == 0
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
    wait_for(lambda: robot.segments() == [], message=lambda: f"left: {robot.segments()}")
