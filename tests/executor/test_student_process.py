"""The student process (one per run) seen from outside: a real executor service, a real broker,
real shared-memory buffers; the test plays the device service and the driver station.

Stops never wait for the student's code; whatever the code does to its process, the robot stays
safe, explains it in one sentence and keeps accepting uploads and mode changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from runtime.buffer import BufferStore

from tests.executor.rig import KOALA
from tests.executor.service import running_executor
from tests.support.wait import wait_for_async

pytestmark = pytest.mark.slow

HEADER = """\
# ruff: noqa
import os, signal, sys, time
"""

PROGRAMS = {
    # teleop_setup sets a motor, says its pid, then never returns (by way of ...)
    "long C call": "sum(range(10**13))",
    "busy loop": "while True:\n    pass",
    "frozen": "while True:\n    Robot.sleep(0.01)",  # the test SIGSTOPs the process
    "action thread asleep": "Robot.run(nap)\nwhile True:\n    Robot.sleep(0.01)",
    "exited": "os._exit(0)",
}


def program(body: str, version: int = 1) -> str:
    """Line 9 is the first line of ``body``."""
    return HEADER + textwrap.dedent(f"""\
        def nap():
            time.sleep(1000)

        def teleop_setup():
            Robot.set_value("koala", "duty_cycle_a", 0.5)
            print("pid", os.getpid(), "version {version}", flush=True)
        """) + textwrap.indent(body, "    ") + "\n"


@pytest.fixture
async def executor(amqtt_broker, robot_name, tmp_path):
    # the setup limit must not end the stuck code: only the stop may
    (tmp_path / "options.json").write_text(json.dumps({"setup_timeout": 60.0}))
    async with running_executor(amqtt_broker, robot_name, tmp_path) as running:
        yield running


@pytest.fixture
def koala(robot_name):
    with BufferStore(robot_name) as devices:
        koala = devices.create_device(str(KOALA), "KoalaBear")
        koala.connected = True
        yield koala


async def student_pid(executor, version: int, n: int = 1, timeout: float = 10.0) -> int:
    messages = await executor.count(f"version {version}", n, timeout)
    return int(re.search(r"pid (\d+)", messages[n - 1]).group(1))


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("where", list(PROGRAMS))
async def test_a_stop_never_waits_for_student_code(executor, koala, where):
    executor, connection = executor
    (executor.state / "studentcode.py").write_text(program(PROGRAMS[where]))
    await executor.start(connection)
    await executor.call("set_mode", "teleop")
    pid = await student_pid(executor, 1)
    if where != "exited":  # (that one is zeroed at its crash, maybe before we look)
        await wait_for_async(lambda: koala.desired("duty_cycle_a") == 0.5)
    if where == "frozen":
        os.kill(pid, signal.SIGSTOP)
    if where == "exited":
        await wait_for_async(lambda: gone(pid))
        await wait_for_async(lambda: koala.desired("duty_cycle_a") == 0.0)  # crash: zeroed
        koala.set("duty_cycle_a", 0.5)  # as if written just before it died
    await executor.call("set_mode", "idle")
    assert koala.desired("duty_cycle_a") == 0.0  # before the reply left
    await wait_for_async(lambda: gone(pid), message=f"student process {pid} still there")
    assert koala.desired("duty_cycle_a") == 0.0
    await executor.upload_and_check(program("pass", version=2))
    await executor.call("set_mode", "teleop")  # a fresh process with the new code
    assert await student_pid(executor, 2) != pid
    await wait_for_async(lambda: koala.desired("duty_cycle_a") == 0.5)
    await executor.call("set_mode", "estop")
    assert koala.desired("duty_cycle_a") == 0.0


CRASHES = {
    "os._exit": ("os._exit(1)",
                 "your program ended the process with os._exit(1) in teleop_setup, line 9"),
    "sys.exit": ("sys.exit(3)", "teleop_setup called sys.exit() or exit()"),
    "kill the parent": ("os.kill(os.getppid(), signal.SIGKILL)",
                        "your program sent SIGKILL to its parent process with "
                        "os.kill(os.getppid(), ...) in teleop_setup, line 9"),
    "kill itself": ("os.kill(os.getpid(), signal.SIGTERM)",
                    "your program sent SIGTERM to its own process with os.kill in "
                    "teleop_setup, line 9"),
    "segfault": ("import ctypes; ctypes.string_at(0)",
                 "your program's process was killed by SIGSEGV"),
    "2 GB": ("data = bytearray(2 * 10**9)",
             "teleop_setup ran out of memory (MemoryError): your program may use at most "
             "512 MB"),
}


@pytest.mark.parametrize("how", list(CRASHES))
async def test_student_code_cannot_take_the_robot_down(executor, koala, how):
    executor, connection = executor
    action, explanation = CRASHES[how]
    source = program(action)
    (executor.state / "studentcode.py").write_text(source)
    await executor.start(connection)
    for attempt in range(1, 7):
        result = await executor.call("upload", source)  # uploads keep working
        assert len(result["sha256"]) == 64
        reply = await executor.call("set_mode", "teleop")
        assert reply["restarted"] is (attempt > 1)  # the same mode again: a fresh run
        await student_pid(executor, 1, attempt)
        (message,) = (await executor.count(explanation, attempt))[-1:]
        assert "\n" not in message.split("Traceback")[0]  # one sentence (before any traceback)
        await wait_for_async(lambda: koala.desired("duty_cycle_a") == 0.0)
    assert executor.process.returncode is None  # the service never went down
    assert (await executor.call("get_mode"))["mode"] == "teleop"
    await executor.call("set_mode", "idle")


async def test_a_frozen_parent_is_replaced_and_the_next_run_starts(executor, koala):
    executor, connection = executor
    (executor.state / "studentcode.py").write_text(program("os.kill(os.getppid(), "
                                                           "signal.SIGSTOP)"))
    await executor.start(connection)
    await executor.call("set_mode", "teleop")
    pid = await student_pid(executor, 1)
    zygote = int(re.search(r"PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
    await wait_for_async(lambda: " T " in Path(f"/proc/{zygote}/stat").read_text()[:80])
    await executor.call("set_mode", "idle")
    await wait_for_async(lambda: koala.desired("duty_cycle_a") == 0.0)
    await executor.upload_and_check(program("pass", version=2))
    await executor.call("set_mode", "teleop")  # the frozen zygote is killed and replaced
    # (after the zygote's 5 s answer limit, plus a new zygote's start)
    assert await student_pid(executor, 2, timeout=60) != pid
    await wait_for_async(lambda: gone(zygote))


async def test_subprocesses_of_the_student_end_with_its_run(executor, koala):
    executor, connection = executor
    (executor.state / "studentcode.py").write_text(program(
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '1000'])\n"
        "print('subprocess', child.pid, flush=True)\n"
        "while True:\n    Robot.sleep(0.01)"))
    await executor.start(connection)
    await executor.call("set_mode", "teleop")
    pid = await student_pid(executor, 1)
    (message,) = await executor.count("subprocess", 1)
    sleeper = int(message.split()[1])
    assert not gone(sleeper)
    await executor.call("set_mode", "idle")
    await wait_for_async(lambda: gone(pid) and gone(sleeper),
                         message=f"{pid} or its subprocess {sleeper} still there")


async def test_same_mode_restart_runs_the_new_code(executor, koala):
    executor, connection = executor
    (executor.state / "studentcode.py").write_text(program("pass"))
    await executor.start(connection)
    first = await executor.call("set_mode", "teleop")
    assert first["restarted"] is False
    pid = await student_pid(executor, 1)
    await executor.call("upload", program("pass", version=2))
    again = await executor.call("set_mode", "teleop")
    assert again["restarted"] is True and again["since"] > first["since"]
    second = await student_pid(executor, 2)
    assert second != pid
    await wait_for_async(lambda: gone(pid))
    # the command line says so too
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", "mode", "teleop", "--mqtt", executor.broker.url,
        "--robot", executor.robot, "--timeout", "30", stdout=asyncio.subprocess.PIPE)
    output, _ = await command.communicate()
    assert output.decode().strip() == f"{executor.robot}: mode teleop (restarted)"
    await student_pid(executor, 2, 2)


async def test_the_student_process_is_its_own_limited_session(executor, koala):
    executor, connection = executor
    (executor.state / "studentcode.py").write_text(program("pass"))
    await executor.start(connection)
    await executor.call("set_mode", "teleop")
    pid = await student_pid(executor, 1)
    service = executor.process.pid
    status = Path(f"/proc/{pid}/status").read_text()
    parent = int(re.search(r"PPid:\s+(\d+)", status).group(1))
    assert parent != service  # its parent is the zygote: killing it spares the service
    assert int(re.search(r"PPid:\s+(\d+)", Path(f"/proc/{parent}/status").read_text())
               .group(1)) == service
    assert os.getsid(pid) == pid != os.getsid(service)  # its own session and process group
    assert os.getpgid(pid) == pid
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "runtime-student"
    assert Path(f"/proc/{parent}/comm").read_text().strip() == "runtime-zygote"
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert re.search(r"Max address space\s+536870912\s+536870912", limits), limits
    nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    service_nice = int(Path(f"/proc/{service}/stat").read_text().rsplit(")", 1)[1].split()[16])
    assert nice == service_nice + 10  # a busy loop yields to the services


async def test_prints_and_errors_arrive_in_program_order(executor, koala):
    executor, connection = executor
    (executor.state / "studentcode.py").write_text(HEADER + textwrap.dedent("""\
        def teleop_setup():
            print("first")
            print("second")
            raise ValueError("third")

        def teleop_main():
            print("fourth")
            os._exit(5)
        """))
    await executor.start(connection)
    await executor.call("set_mode", "teleop")
    await executor.log("teleop_setup raised ValueError: third")
    # setup failed, so main never runs; start again with a setup that works
    (executor.state / "studentcode.py").write_text(HEADER + textwrap.dedent("""\
        def teleop_main():
            print("fourth")
            os._exit(5)
        """))
    await executor.call("set_mode", "teleop")
    await executor.log("os._exit(5)")
    lines = [line for message in executor.messages() for line in message.splitlines()]
    order = [next(i for i, line in enumerate(lines) if text in line)
             for text in ("first", "second", "ValueError: third", "fourth", "os._exit(5)")]
    assert order == sorted(order), lines
