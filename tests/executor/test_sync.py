"""SyncExecutor in-process: time limits by signal, periodic calls on a fixed grid, stops."""

from __future__ import annotations

import sys
import threading
import time
import traceback

import pytest
from runtime.exception import ExecutionError, ExecutionTimeout
from runtime.service.executor import ExecutionRequest, SyncExecutor
from runtime.service.executor.sync import RUNTIME_DIRS, is_runtime_code, start_thread

from tests.support.wait import wait_for

pytestmark = pytest.mark.timeout(60, method="thread")  # SIGALRM is the executor's


@pytest.fixture
def executor():
    reports = []
    executor = SyncExecutor(report=reports.append)
    executor.reports = reports
    with executor.installed():
        yield executor


def test_request_checks_its_fields():
    request = ExecutionRequest(print, timeout=0.5)
    assert request.name == "print" and request.period is None
    assert ExecutionRequest(print, timeout=0.02, periodic=True).period == 0.02
    with pytest.raises(ExecutionError, match="positive number of seconds"):
        ExecutionRequest(print, timeout=0)
    with pytest.raises(ExecutionError, match="not a function"):
        ExecutionRequest(42)


def test_one_call_returns_its_value(executor):
    outcome = executor.run(ExecutionRequest(lambda a, b: a + b, (2, 3)))
    assert outcome.ok and outcome.value == 5
    assert executor.reports == []


def test_endless_loop_is_interrupted_with_a_clear_error(executor):
    def spin():
        while True:
            pass

    outcome = executor.call(spin, timeout=0.05)
    assert outcome.status == "timeout"
    assert isinstance(outcome.error, ExecutionTimeout)
    assert str(outcome.error.message) == (
        "spin took longer than 0.05 s: is there a loop that never ends?")
    assert executor.reports == [outcome]


def test_blocking_sleep_is_interrupted(executor):
    def teleop_setup():
        time.sleep(30)

    outcome = executor.call(teleop_setup, timeout=0.05)
    assert outcome.status == "timeout"
    assert "teleop_setup took longer than 0.05 s" in outcome.error.message


def test_a_loop_that_swallows_every_exception_is_still_stopped(executor):
    caught = []

    def stubborn():
        while True:
            try:
                while True:
                    pass
            except BaseException as exc:
                caught.append(exc)

    outcome = executor.call(stubborn, timeout=0.05)
    assert outcome.status == "timeout"
    assert caught  # it did swallow the first one
    assert sys.gettrace() is None  # the escalation's tracer is gone


@pytest.mark.parametrize("raiser", [
    lambda: sys.exit(2), lambda: (_ for _ in ()).throw(KeyboardInterrupt()),
])
def test_exit_and_keyboard_interrupt_are_errors_not_exits(executor, raiser):
    outcome = executor.call(raiser)
    assert outcome.status == "error"
    assert isinstance(outcome.error, SystemExit | KeyboardInterrupt)


def test_recursion_error_is_caught(executor):
    def forever(n):
        return forever(n + 1)

    outcome = executor.call(forever, (0,))
    assert outcome.status == "error" and isinstance(outcome.error, RecursionError)


def test_async_def_and_returned_coroutines_are_refused(executor):
    async def teleop_main():
        pass

    outcome = executor.call(teleop_main)
    assert outcome.status == "error"
    assert "teleop_main is an async def" in str(outcome.error)

    def returns_coroutine():
        return teleop_main()

    outcome = executor.call(returns_coroutine)
    assert "returned a coroutine that nobody awaits" in str(outcome.error)


def test_periodic_calls_until_stopped_and_overrun_does_not_stop_the_rate(executor):
    calls = []
    cut_off = []

    def main():
        calls.append(time.monotonic())
        if len(calls) == 3:
            try:
                while True:  # overruns once
                    pass
            finally:
                cut_off.append(len(calls))
        if len(calls) == 8:
            executor.stop()

    outcome = executor.run(ExecutionRequest(main, timeout=0.02, periodic=True))
    assert outcome.status in ("ok", "stopped")  # stop() from inside main may end that call
    assert len(calls) == 8  # the tick after the overrun still happened, and the rest
    assert cut_off == [3]  # the endless call was cut off at its limit...
    assert "timeout" in [report.status for report in executor.reports]  # ...and reported


def test_periodic_ticks_stay_on_their_grid():
    """With a fake clock: calls that take time do not push later ticks back."""
    now = [100.0]
    calls = []
    executor = SyncExecutor(clock=lambda: now[0], wait=lambda deadline: (
        now.__setitem__(0, deadline) or "tick"))

    def main():
        calls.append(now[0])
        now[0] += 0.007  # each call takes 7 ms of the 20 ms period
        if len(calls) == 5:
            now[0] += 0.05  # a pause of the whole process: 2.5 periods
        if len(calls) == 8:
            executor.stop()

    with executor.installed():
        executor.run(ExecutionRequest(main, timeout=0.02, periodic=True))
    ticks = [round((t - 100.0) / 0.02, 6) for t in calls]
    assert ticks[:5] == [0, 1, 2, 3, 4]
    # ticks 5 and 6 passed during the pause: 5 is skipped, 6 runs late at once, then 7 (also
    # late, but due) and 8 on time: back on the grid, not shifted by the pause
    assert ticks[5:] == pytest.approx([6.85, 7.2, 8])


def test_interrupt_from_another_thread_stops_a_stuck_call():
    stop = threading.Event()
    executor = SyncExecutor(should_stop=stop.is_set)

    def stuck():
        while True:
            pass

    def stopper():
        wait_for(lambda: executor._armed)
        stop.set()
        executor.interrupt()

    with executor.installed():
        thread = start_thread(threading.Thread(target=stopper))
        outcome = executor.call(stuck, timeout=60)
        thread.join()
    assert outcome.status == "stopped"


def test_install_needs_the_main_thread():
    failure = []

    def other():
        try:
            SyncExecutor().install()
        except ExecutionError as exc:
            failure.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert "main thread" in str(failure[0])


def test_a_stop_waits_until_runtime_code_returns_to_the_student(executor):
    """A signal that lands inside Runtime's own code (a Robot call) is deferred: interrupting
    it there could leave a shared-memory buffer half-written."""
    namespace: dict = {}
    source = ("import time\ndef runtime_call(seconds, done):\n"
              "    end = time.monotonic() + seconds\n"
              "    while time.monotonic() < end:\n        pass\n    done.append(True)\n")
    exec(compile(source, RUNTIME_DIRS[0] + "pretend_api.py", "exec"), namespace)
    done = []

    def student():
        namespace["runtime_call"](0.2, done)
        while True:
            pass

    outcome = executor.call(student, timeout=0.02)
    assert outcome.status == "timeout"
    assert done == [True]  # the Runtime call ran to its end
    frames = [frame.name for frame in traceback.extract_tb(outcome.error.__traceback__)
              if not is_runtime_code(frame.filename)]
    assert frames[-1] == "student"  # raised in the student's loop, not in the Runtime call
