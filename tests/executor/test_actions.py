"""AsyncExecutor: async and plain actions, one instance each, cancellation, time limits."""

from __future__ import annotations

import asyncio
import threading

import pytest
from runtime.api import StudentCodeStopped
from runtime.exception import ExecutionError
from runtime.service.executor import AsyncExecutor

from tests.support.wait import wait_for


@pytest.fixture
def actions():
    reports = []
    executor = AsyncExecutor(report=lambda name, exc: reports.append((name, exc)), grace=0.1)
    executor.reports = reports
    with executor:
        yield executor


def test_async_and_plain_actions_run_and_finish(actions):
    results = []
    done = threading.Event()

    async def fetch(value):
        await asyncio.sleep(0)
        results.append(value)

    def plain(value):
        results.append(value)
        done.set()

    actions.run(fetch, "async")
    actions.run(plain, "plain")
    assert done.wait(10)
    assert actions.wait_idle(10)
    assert sorted(results) == ["async", "plain"]
    assert actions.reports == []


def test_one_running_instance_per_action(actions):
    release = asyncio.Event()
    gate = threading.Event()

    async def waits():
        await asyncio.get_running_loop().run_in_executor(None, gate.wait)

    actions.run(waits)
    assert actions.is_running(waits)
    with pytest.raises(ExecutionError, match=r"waits is already running.*is_running\(waits\)"):
        actions.run(waits)
    gate.set()
    wait_for(lambda: not actions.is_running(waits))
    actions.run(waits)  # may run again once finished
    del release


def test_cancel_all_stops_async_and_sleeping_plain_actions(actions):
    stopped = []
    ticks = []

    async def spin():
        try:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            stopped.append("async")
            raise

    def loop():
        try:
            while True:
                actions.sleep(10)  # a cancel wakes it at once
        except StudentCodeStopped:
            stopped.append("plain")
            raise

    actions.run(spin)
    actions.run(loop)
    wait_for(lambda: ticks and actions.running() == ["loop", "spin"])
    assert actions.cancel_all() == 2
    assert not actions.is_running(spin) and not actions.is_running(loop)
    assert actions.wait_idle(10)
    assert sorted(stopped) == ["async", "plain"]
    assert actions.reports == []  # a cancel is not an error


def test_actions_stuck_without_any_robot_call_are_stopped_after_the_grace(actions):
    def busy():
        while True:
            pass

    async def busy_async():
        while True:
            pass

    actions.run(busy)
    actions.run(busy_async)
    wait_for(lambda: len(actions.running()) == 2)
    actions.cancel_all()
    assert actions.wait_idle(10), actions.running()
    later = []

    async def after():
        later.append(True)

    actions.run(after)  # the loop works again
    wait_for(lambda: later)


def test_errors_and_timeouts_are_reported(actions):
    async def broken():
        raise ValueError("broken")

    def slow():
        actions.sleep(30)

    async def slow_async():
        await asyncio.sleep(30)

    actions.run(broken)
    actions.run(slow, timeout=0.05)
    actions.run(slow_async, timeout=0.05)
    wait_for(lambda: len(actions.reports) == 3)
    messages = {name: str(exc) for name, exc in actions.reports}
    assert messages["broken"] == "broken"
    assert "action slow took longer than 0.05 s" in messages["slow"]
    assert "action slow_async took longer than 0.05 s" in messages["slow_async"]
    assert actions.wait_idle(10)


def test_system_exit_in_an_action_does_not_stop_the_loop(actions):
    async def leaves():
        raise SystemExit(1)

    actions.run(leaves)
    wait_for(lambda: actions.reports)
    ran = []

    async def after():
        ran.append(True)

    actions.run(after)
    wait_for(lambda: ran)


def test_bad_actions_are_refused_clearly(actions):
    async def drive(speed):
        pass

    with pytest.raises(ExecutionError, match=r"Robot.run\(drive\), not Robot.run\(drive\(\)\)"):
        actions.run(drive(1))
    with pytest.raises(ExecutionError, match="takes a function"):
        actions.run(42)
    with pytest.raises(ExecutionError, match="cannot run action drive with 0 argument"):
        actions.run(drive)
    with pytest.raises(ExecutionError, match="positive number of seconds"):
        actions.run(drive, 1, timeout=-1)


def test_robot_sleep_is_refused_inside_async_actions(actions):
    async def wrong():
        actions.sleep(0.01)

    actions.run(wrong)
    wait_for(lambda: actions.reports)
    assert "use `await Actions.sleep(seconds)`" in str(actions.reports[0][1])


def test_at_most_max_actions():
    with AsyncExecutor(max_actions=2) as actions:
        gate = threading.Event()

        def first():
            gate.wait()

        def second():
            gate.wait()

        def third():
            pass

        actions.run(first)
        actions.run(second)
        with pytest.raises(ExecutionError, match="at most 2"):
            actions.run(third)
        gate.set()


def test_an_async_action_that_never_awaits_is_named():
    reports = []
    with AsyncExecutor(report=lambda name, exc: reports.append((name, exc)), stall=0.2,
                       grace=0.1) as actions:
        release = threading.Event()

        async def hog():
            while not release.is_set():
                pass

        actions.run(hog)
        wait_for(lambda: reports)
        release.set()
    name, exc = reports[0]
    assert name == "hog"
    assert "async action hog has run for" in str(exc)
    assert "without an await" in str(exc) and "await Actions.sleep" in str(exc)
