"""Mode changes that overlap a run's start or stop: the run that ends up running is the latest
mode's, started once and not stopped again; idle and estop leave no run behind.

The control process's Dispatcher runs in-process on a real broker (as in test_dispatcher.py),
with real zygote and student processes. The overlaps are made, not hoped for:

- a run that cannot end: its process frozen (SIGSTOP) and a stop grace of an hour, so two mode
  changes both arrive while it is still there; SIGCONT lets it read its stop and end;
- a start that cannot finish: the zygote frozen, so the student process of the first change is
  still being started when the second change arrives (the RPC round trip of the first reply
  comes after its switch task asked the zygote: one event loop, first come first served);
  SIGCONT lets it fork;
- a run that ends before its start is seen: the event loop itself held (a blocking poll, the
  stimulus) while the freed zygote forks it and it exits.

Which process runs is read from the student's own prints (each setup and main call says its
pid) and from the Dispatcher (``student``, ``runs``: processes started, ``crashes``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from runtime.buffer import BufferStore
from runtime.messages import LogRecord
from runtime.remote import Client, Connection
from runtime.service.executor import Dispatcher

from tests.support.wait import wait_for, wait_for_async

pytestmark = pytest.mark.slow

HOUR = 3600.0  # a stop grace no test outlives: only the test ends a frozen run

PROGRAM = """\
import os

PID = os.getpid()
calls = 0


def autonomous_setup():
    print("setup auto", PID, flush=True)


def autonomous_main():
    global calls
    calls += 1
    print("main auto", PID, calls, flush=True)


def teleop_setup():
    {teleop_setup}
    print("setup teleop", PID, flush=True)


def teleop_main():
    global calls
    calls += 1
    print("main teleop", PID, calls, flush=True)
"""
COUNTING = PROGRAM.format(teleop_setup="pass")


def exits(state: Path) -> str:
    """A teleop setup that ends its process at once (a crash), its pid left in the state dir
    first."""
    return f'open({str(state / "exited")!r}, "w").write(str(PID)); os._exit(3)'

LINE = re.compile(r"(setup|main) (auto|teleop) (\d+)(?: (\d+))?$")


@dataclass
class Console:
    """Every student log record, and what the prints say: which pid set up which mode, how many
    times each pid's main was called."""

    records: list[LogRecord] = field(default_factory=list)
    setups: list[tuple[str, int]] = field(default_factory=list)
    calls: dict[int, int] = field(default_factory=dict)

    def on_event(self, kind: str, payload: Any) -> None:
        if kind != "log":
            return
        self.records.append(payload)
        for line in payload.message.splitlines():
            if found := LINE.match(line):
                what, mode, pid = found.group(1), found.group(2), int(found.group(3))
                if what == "setup":
                    self.setups.append((mode, pid))
                else:
                    self.calls[pid] = max(self.calls.get(pid, 0), int(found.group(4)))

    def texts(self) -> list[str]:
        return [record.message for record in self.records]


@dataclass
class Robot:
    dispatcher: Dispatcher
    client: Client
    console: Console
    state: Path

    async def mode(self, mode: str, **kwargs: Any) -> None:
        await self.client.call("executor", "set_mode", mode, **kwargs)

    async def running(self, mode: str) -> int:
        """The pid of the run the executor keeps for ``mode``: set up once, its main called and
        still being called, never asked to stop."""
        dispatcher, console = self.dispatcher, self.console

        def settled() -> int | None:
            student = dispatcher.student
            if student is None or student.stopping or console.calls.get(student.pid, 0) < 3:
                return None  # (a run asked to stop is not kept, even before it is gone)
            return student.pid

        pid = await wait_for_async(settled, message=lambda: f"no {mode} run settled: "
                                   f"{self.console.texts()[-5:]}")
        assert (mode, pid) in console.setups, console.setups  # the run is the latest mode's
        called = console.calls[pid]
        await wait_for_async(lambda: console.calls[pid] >= called + 5, message=lambda:
                             f"main of {pid} stopped at {console.calls[pid]}: "
                             f"{console.texts()[-5:]}")
        student = dispatcher.student
        assert student is not None and student.pid == pid and not student.stopping
        assert console.setups.count((mode, pid)) == 1
        assert dispatcher.match.mode == mode
        return pid

    def zygote(self) -> int:
        process = self.dispatcher.zygote.process
        assert process is not None
        return process.pid

    def children(self) -> list[int]:
        """The zygote's child processes: the student processes there are."""
        pid = self.zygote()
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]


@contextlib.asynccontextmanager
async def robot(broker: Any, name: str, state: Path, program: str = COUNTING
                ) -> AsyncIterator[Robot]:
    (state / "studentcode.py").write_text(program)
    console = Console()
    async with (Connection(broker.url, robot=name, service="executor") as connection,
                Connection(broker.url, robot=name) as link):
        with BufferStore(name) as buffers:
            dispatcher = Dispatcher(buffers, student_code=state / "studentcode.py",
                                    state_dir=state, grace=HOUR)
            dispatcher.listeners.append(console.on_event)
            await dispatcher.serve(connection)
            try:
                await dispatcher.zygote.start()  # warm: a start is a fork from here on
                yield Robot(dispatcher, Client(link), console, state)
            finally:
                await dispatcher.close()


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The process ``pid`` stopped (SIGSTOP) until the block ends (through a pidfd: never
    another process, even if it was killed and its pid reused meanwhile)."""
    pidfd = os.pidfd_open(pid)
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGSTOP)
        try:
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGCONT)
    finally:
        os.close(pidfd)


def gone(pid: int) -> bool:
    """The process ``pid`` has ended and its parent (the zygote) has reaped it."""
    return not Path(f"/proc/{pid}").exists()


async def test_overlapping_changes_while_a_run_cannot_end_start_the_latest_mode_once(
        mosquitto_broker, robot_name, tmp_path):
    """teleop -> auto -> teleop while the first run is frozen: one new run, teleop's, which
    the second change (queued behind the first) does not stop again."""
    async with robot(mosquitto_broker, robot_name, tmp_path) as bot:
        await bot.mode("teleop")
        first = await bot.running("teleop")
        with frozen(first):
            await bot.mode("auto")
            await bot.mode("teleop")
            # both changes came while the first run is still there: nothing started meanwhile
            assert bot.children() == [first] and bot.dispatcher.runs == 1
        # it reads its stop now and ends; then the latest mode's run starts, once
        await wait_for_async(lambda: gone(first))
        latest = await bot.running("teleop")
        assert latest != first
        assert bot.dispatcher.runs == 2  # the first run and this one: nothing in between
        assert not any(mode == "auto" for mode, _ in bot.console.setups)  # auto never ran
        assert bot.children() == [latest]


async def test_a_change_while_a_run_is_starting_stops_that_run_and_starts_the_latest(
        mosquitto_broker, robot_name, tmp_path):
    """auto comes while teleop's process is being started: teleop's run is stopped as soon as
    it exists, and auto's runs (and is not stopped by the switch that started teleop's)."""
    async with robot(mosquitto_broker, robot_name, tmp_path) as bot:
        with frozen(bot.zygote()):
            await bot.mode("teleop")  # its switch is now waiting for the frozen zygote
            await bot.mode("auto")
            assert bot.dispatcher.runs == 0 and bot.dispatcher.student is None
        latest = await bot.running("auto")
        assert bot.dispatcher.runs == 2  # teleop's (stopped at its start), then auto's
        await wait_for_async(lambda: bot.children() == [latest], message=lambda:
                             f"student processes {bot.children()}, auto's is {latest}")


@pytest.mark.parametrize("stop", ["idle", "estop"])
async def test_a_stop_while_a_run_is_starting_leaves_no_run(mosquitto_broker, robot_name,
                                                            tmp_path, stop):
    """idle or estop comes while teleop's process is being started: that run is stopped and no
    run is started for the stop; the next teleop is the only run after it."""
    async with robot(mosquitto_broker, robot_name, tmp_path) as bot:
        with frozen(bot.zygote()):
            await bot.mode("teleop")
            await bot.mode(stop)
        # teleop's process was started (one run), then stopped: no student process is left
        await wait_for_async(lambda: bot.dispatcher.runs == 1 and bot.dispatcher.student is None
                             and not bot.children(), message=lambda:
                             f"runs {bot.dispatcher.runs}, student processes {bot.children()}")
        assert bot.dispatcher.match.mode == stop
        await bot.mode("teleop", clear_estop=True)  # (after the stop's switch: in order)
        await bot.running("teleop")
        assert bot.dispatcher.runs == 2  # teleop's stopped one, this one: none for the stop


def crashed(bot: Robot) -> int | None:
    """The pid that teleop's setup left before it ended its process, once that process is
    gone."""
    mark = bot.state / "exited"
    if not mark.exists() or not (text := mark.read_text()):
        return None
    pid = int(text)
    return pid if gone(pid) else None


async def test_a_run_that_ends_before_its_start_is_seen_is_not_a_crash_of_the_latest_mode(
        mosquitto_broker, robot_name, tmp_path):
    """teleop's run ends by itself (os._exit in its setup) after auto was asked and before the
    executor saw that run start: it was already superseded, so it is no crash (of auto's, as
    the sentence would say), and auto's run starts."""
    program = PROGRAM.format(teleop_setup=exits(tmp_path))
    async with robot(mosquitto_broker, robot_name, tmp_path, program) as bot:
        with frozen(bot.zygote()):
            await bot.mode("teleop")
            await bot.mode("auto")
        # the stimulus: the executor's event loop held (a blocking poll) while the zygote forks
        # teleop's process and that process ends
        wait_for(lambda: crashed(bot))
        await bot.running("auto")
        assert bot.dispatcher.runs == 2 and bot.dispatcher.crashes == 0
        assert not [text for text in bot.console.texts() if "keeps running" in text]


async def test_a_run_that_ends_before_its_start_is_seen_is_reported_once(
        mosquitto_broker, robot_name, tmp_path):
    """The same early end of the current mode's run is a crash: said once, in one sentence."""
    program = PROGRAM.format(teleop_setup=exits(tmp_path))
    async with robot(mosquitto_broker, robot_name, tmp_path, program) as bot:
        with frozen(bot.zygote()):
            await bot.mode("teleop")
        wait_for(lambda: crashed(bot))  # the executor's event loop held meanwhile
        sentence = "your program ended the process with os._exit(3) in teleop_setup"
        reports = await wait_for_async(lambda: [text for text in bot.console.texts()
                                                if sentence in text], message=lambda:
                                       f"no crash sentence in {bot.console.texts()}")
        assert len(reports) == 1 and reports[0].endswith("start teleop again to rerun it")
        assert bot.dispatcher.runs == 1 and bot.dispatcher.crashes == 1
        assert bot.dispatcher.student is None
