"""Promises of docs/executor.md about the student console and the executor's options file.

Console (``runtime.service.executor.console.Console``, real flusher thread): its clock is the
one stand-in (an injected clock the test moves), so "at most 100 lines a second", "at most 50
lines per record" and "a partial line waits for its newline or 1 s" are checked as counts
within windows the test controls, never as measured durations. A burst ends with
``flush=True`` so it goes out without moving the clock (the flusher's coalescing deadline
counts from when it wakes, which the test cannot see).

Options: the real executor process started on a broken ``options.json`` logs one error line
naming the file and runs with the defaults (a ``*_main`` slower than the default 20 ms period
is reported as such).
"""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest
from runtime.messages import LogRecord, Match, decode
from runtime.remote import Client, Connection
from runtime.service.executor.console import Console

from tests.support.wait import wait_for, wait_for_async


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Records:
    """What a Console sent, as (level, message) records."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, level: str, message: str, context: dict) -> None:
        with self._lock:
            self.sent.append((level, message))

    def lines(self, level: str = "info") -> list[str]:
        with self._lock:
            return [line for lv, message in self.sent if lv == level
                    for line in message.split("\n")]

    def dropped(self) -> list[str]:
        return [line for line in self.lines("warning") if "printed lines dropped" in line]


@pytest.fixture
def console():
    clock, records = Clock(), Records()
    console = Console(records, clock=clock)
    yield console, clock, records
    console.close()


def test_at_most_100_lines_a_second_pass_and_the_rest_are_counted(console):
    console, clock, records = console
    for number in range(1000):
        console.print(number, flush=number == 999)
    wait_for(lambda: len(records.lines()) >= 100)
    clock.advance(1.0)  # the second is over: the drop count is reported
    wait_for(records.dropped)
    assert records.lines() == [str(number) for number in range(100)]
    assert records.dropped() == ["... 900 printed lines dropped: the console shows at most 100 "
                                 "lines a second (print less often, e.g. only when a value "
                                 "changes)"]
    for number in range(150):  # the next second has its own 100
        console.print(f"again {number}", flush=number == 149)
    wait_for(lambda: len(records.lines()) >= 200)
    clock.advance(1.0)
    wait_for(lambda: len(records.dropped()) == 2)
    assert records.lines()[100:] == [f"again {number}" for number in range(100)]
    assert records.dropped()[1].startswith("... 50 printed lines dropped")


def test_a_record_holds_at_most_50_lines(console):
    console, _, records = console
    for number in range(99):
        console.print(number)
    console.print(99, flush=True)
    wait_for(lambda: len(records.lines()) >= 100)
    sizes = [len(message.split("\n")) for level, message in records.sent if level == "info"]
    assert sizes == [50, 50]  # 100 lines at once: two full records, nothing more


def test_a_partial_line_waits_for_its_newline_or_one_second(console):
    console, clock, records = console
    console.print("ab", end="")
    clock.advance(0.5)
    console.print("cd", flush=True)  # completes the line within the second: one line
    wait_for(lambda: records.lines())
    assert records.lines() == ["abcd"]
    console.print("no newline", end="")
    clock.advance(0.9)
    console.print("flushed", end="", flush=True)  # flush=True sends a partial line at once
    wait_for(lambda: len(records.lines()) == 2)
    assert records.lines()[1] == "no newlineflushed"
    console.print("left alone", end="")
    clock.advance(1.0)  # a second later it goes out on its own
    wait_for(lambda: len(records.lines()) == 3)
    assert records.lines()[2] == "left alone"


async def test_a_bad_options_file_is_one_error_line_and_the_defaults_apply(amqtt_broker,
                                                                          robot_name, tmp_path):
    (tmp_path / "options.json").write_text("{ this is not json")
    (tmp_path / "studentcode.py").write_text(
        "import time\n\n"
        "def teleop_setup():\n    pass\n\n"
        "def teleop_main():\n    time.sleep(0.05)\n")
    async with Connection(amqtt_broker.url, robot=robot_name) as connection:
        logs: list[LogRecord] = []
        matches: list[Match] = []
        await connection.subscribe(connection.topics.log("student"),
                                   lambda t, p: logs.append(decode(LogRecord, p)))
        await connection.subscribe(connection.topics.match,
                                   lambda t, p: matches.append(decode(Match, p)), qos=1)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runtime", "service", "executor", "--mqtt", amqtt_broker.url,
            "--robot", robot_name, "--state-dir", str(tmp_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            await wait_for_async(lambda: matches, 30, message="the executor never came up")
            client = Client(connection)
            await client.call("executor", "set_mode", "teleop", timeout=20)
            slow = await wait_for_async(lambda: next(
                (r.message for r in logs if "took longer than" in r.message), None), 30)
            assert "teleop_main took longer than 0.02 s" in slow  # the default main_period
            await client.call("executor", "set_mode", "idle", timeout=20)
        finally:
            process.terminate()
            _, stderr = await asyncio.wait_for(process.communicate(), 30)
    lines = stderr.decode().splitlines()
    about_options = [line for line in lines if "options.json" in line]
    assert len(about_options) == 1, lines
    assert "ERROR" in about_options[0] or "error" in about_options[0]
    assert "Traceback (most recent call last)" not in stderr.decode()  # a service crash


