"""The process supervisor of ``runtime up``: restarts, giving up, stopping, no orphans."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from runtime.up.logstream import LogStream, StreamHandler
from runtime.up.supervisor import RestartPolicy, ServiceProcess, describe_exit

FAST = RestartPolicy(first_delay=0.01, max_delay=0.05, max_crashes=3, window=60)


@pytest.fixture
def stream() -> LogStream:
    return LogStream(io.StringIO(), colour=False)


@pytest.fixture
def up_log(stream: LogStream):
    handler = StreamHandler(stream)
    logger = logging.getLogger("runtime.up")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def lines(stream: LogStream) -> list[str]:
    return stream.out.getvalue().splitlines()  # type: ignore[attr-defined]


async def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


async def test_a_crashing_child_is_restarted_then_given_up_on(up_log: LogStream) -> None:
    child = ServiceProcess("crashy", python("print('started'); raise SystemExit(3)"), up_log,
                           policy=FAST)
    child.start()
    await asyncio.wait_for(child.wait(), 30)
    assert child.state == "failed"
    assert child.starts == 3
    text = lines(up_log)
    assert text.count("  crashy | started") == 3
    assert sum("crashy exited with code 3; restarting it in" in line for line in text) == 2
    assert any("has crashed 3 times within 60 s: giving up on it" in line for line in text)


async def test_a_killed_child_comes_back_with_a_new_pid(up_log: LogStream) -> None:
    child = ServiceProcess("sleepy", python("import time; time.sleep(60)"), up_log, policy=FAST)
    child.start()
    await wait_for(lambda: child.pid is not None)
    first = child.pid
    os.kill(first, signal.SIGKILL)
    await wait_for(lambda: child.pid not in (None, first))
    assert child.state == "running"
    assert any("sleepy was killed by SIGKILL; restarting it" in line for line in lines(up_log))
    await child.stop()
    assert child.state == "stopped"
    assert not psutil.pid_exists(first)


async def test_stop_kills_a_child_that_ignores_sigterm(up_log: LogStream) -> None:
    code = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('ignoring', flush=True)
        time.sleep(60)
    """
    child = ServiceProcess("stubborn", python(code), up_log, policy=FAST)
    child.start()
    await wait_for(lambda: "stubborn | ignoring" in up_log.out.getvalue())  # type: ignore[attr-defined]
    pid = child.pid
    await child.stop(timeout=0.5)
    assert child.state == "stopped" and child.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert any("stubborn did not stop within 0.5 s: killing it" in line for line in lines(up_log))
    assert child.starts == 1  # a stop is not a crash


def test_children_die_with_a_killed_supervisor() -> None:
    """SIGKILL the supervisor itself: its child gets SIGTERM from the kernel and exits."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from runtime.up.logstream import LogStream
        from runtime.up.supervisor import ServiceProcess
        async def main():
            child = ServiceProcess("orphan", {python("import time; time.sleep(60)")!r},
                                   LogStream(sys.stderr, colour=False))
            child.start()
            while child.pid is None:
                await asyncio.sleep(0.01)
            print(child.pid, flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as sup:
        child = int(sup.stdout.readline())
        assert psutil.pid_exists(child)
        sup.kill()
        sup.wait()
    deadline = time.monotonic() + 20
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child outlived its supervisor"
        time.sleep(0.02)


def test_exit_descriptions() -> None:
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert RestartPolicy().delay(1) == 0.5
    assert RestartPolicy().delay(10) == 8.0


def test_log_stream_prefixes_and_colours() -> None:
    plain = LogStream(io.StringIO(), colour=False)
    plain.line("device", "found 1 device\n")
    assert plain.out.getvalue() == "  device | found 1 device\n"  # type: ignore[attr-defined]
    coloured = LogStream(io.StringIO(), colour=True)
    coloured.line("broker", "WARNING input/gamepad/0: bad payload")
    text = coloured.out.getvalue()  # type: ignore[attr-defined]
    assert text.startswith("\033[36m  broker |\033[0m ")
    assert "\033[33mWARNING" in text
