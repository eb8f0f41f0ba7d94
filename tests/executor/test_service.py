"""The executor as a real process (``runtime service executor``) on a real MQTT broker.

The test plays the other services: it owns a KoalaBear's and a gamepad's shared-memory buffers
(device and broker services) and drives the executor over RPC like a driver station.
"""

from __future__ import annotations

import contextlib
import json
import shutil

import pytest
from runtime.buffer import BufferStore
from runtime.buffer.liveness import LivenessMonitor
from runtime.exception import RPCError

from tests.executor.rig import KOALA, PROGRAMS
from tests.executor.service import running_executor
from tests.support.wait import wait_for_async

pytestmark = pytest.mark.slow


@pytest.fixture
async def executor(mqtt_broker, robot_name, tmp_path):
    async with running_executor(mqtt_broker, robot_name, tmp_path) as running:
        yield running


async def test_modes_over_rpc_publish_match_and_run_the_program(executor):
    executor, connection = executor
    shutil.copyfile(PROGRAMS / "counting.py", executor.state / "studentcode.py")
    await executor.start(connection)
    assert executor.matches[-1].mode == "idle"
    # idle again: nothing to restart, but the match takes the new alliance
    result = await executor.call("set_mode", "idle", alliance="gold")
    assert (result["mode"], result["alliance"], result["restarted"]) == ("idle", "gold", False)
    await wait_for_async(lambda: executor.matches[-1].alliance == "gold")
    published = len(executor.matches)
    await executor.call("set_mode", "idle", alliance="gold")  # the same again: nothing new
    result = await executor.call("set_mode", "teleop", alliance="blue", start_pos="left")
    assert result["mode"] == "teleop" and result["alliance"] == "blue"
    await executor.log("teleop setup")
    await wait_for_async(lambda: executor.matches[-1].mode == "teleop")
    assert len(executor.matches) == published + 1  # (one publisher, one topic: in order)
    assert (await executor.call("get_mode"))["start_pos"] == "left"
    with pytest.raises(RPCError, match="mode must be idle, auto, teleop or estop"):
        await executor.call("set_mode", "dance")
    await executor.call("set_mode", "idle")
    await wait_for_async(lambda: executor.matches[-1].mode == "idle")
    result = await executor.call("set_mode", "auto")
    assert (result["restarted"], result["estop_latched"]) == (False, False)  # a new mode
    result = await executor.call("set_mode", "idle")  # a stop from auto, too
    assert (result["mode"], result["restarted"]) == ("idle", False)
    await wait_for_async(lambda: executor.matches[-1].mode == "idle")
    assert await executor.stop() == 0


async def test_estop_stops_a_stuck_main_at_once_and_rpc_keeps_working(executor, robot_name):
    executor, connection = executor
    shutil.copyfile(PROGRAMS / "stuck.py", executor.state / "studentcode.py")
    (executor.state / "options.json").write_text(json.dumps({"main_period": 10.0}))
    monitor = LivenessMonitor(robot_name)  # the device service's view of the stated mode
    with BufferStore(robot_name) as devices, contextlib.closing(monitor):
        koala = devices.create_device(str(KOALA), "KoalaBear")
        koala.connected = True
        devices.gamepad(0, create=True).update(0, (0.0, 0.0, 0.0, 0.0), 1.0)  # a driver
        await executor.start(connection)
        await executor.call("set_mode", "teleop")
        assert monitor.mode() == "teleop"  # stated in shared memory before the reply
        await wait_for_async(lambda: koala.desired("duty_cycle_a") == 0.75)
        # main is now inside `while True: pass` (its limit is 10 s): RPC still answers
        assert (await executor.call("get_mode"))["mode"] == "teleop"
        await executor.call("set_mode", "estop")
        assert koala.desired("duty_cycle_a") == 0.0  # set before the reply was sent
        assert monitor.mode() == "estop"
        # a stop is always allowed and never clears the latch
        assert (await executor.call("set_mode", "idle"))["estop_latched"] is True
        with pytest.raises(RPCError, match="estop is latched"):
            await executor.call("set_mode", "teleop")
        await executor.call("set_mode", "teleop", clear_estop=True)  # a local operator
        await wait_for_async(lambda: koala.desired("duty_cycle_a") == 0.75)
        assert await executor.stop() == 0  # SIGTERM ends it even while main is stuck
        assert koala.desired("duty_cycle_a") == 0.0
    stderr = (await executor.process.stderr.read()).decode()
    assert "Traceback (most recent" not in stderr, stderr
    # each change says what it did, in one line: one device (the KoalaBear) was set to 0
    assert "mode estop (was teleop); motors set to 0 on 1 device\n" in stderr, stderr


async def test_upload_then_restart_runs_the_new_code(executor, robot_name):
    executor, connection = executor
    shutil.copyfile(PROGRAMS / "version.py", executor.state / "studentcode.py")
    # two motor controllers: the log line counts them
    with BufferStore(robot_name) as devices:
        for uid in (KOALA, KOALA + 1):
            devices.create_device(str(uid), "KoalaBear").connected = True
        await executor.start(connection)
        await executor.call("set_mode", "teleop")
        await executor.log("version 1")
        source = (PROGRAMS / "version.py").read_text().replace("VERSION = 1", "VERSION = 2")
        result = await executor.call("upload", source)
        assert len(result["sha256"]) == 64
        with pytest.raises(RPCError, match="syntax error at line 1"):
            await executor.call("upload", "def teleop_setup(:\n")
        await executor.call("set_mode", "idle")
        await executor.call("set_mode", "teleop")
        await executor.log("version 2")  # so the run of version 1 ended and was seen to end
        assert (executor.state / "studentcode.py").read_text() == source
        assert await executor.stop() == 0
        stderr = (await executor.process.stderr.read()).decode()
        assert "ended by itself" not in stderr, stderr  # a stop asked for is not a crash
        assert "Traceback (most recent" not in stderr, stderr
        assert "mode idle (was teleop); motors set to 0 on 2 devices\n" in stderr, stderr


async def test_student_errors_and_exits_reach_the_student_log(executor):
    executor, connection = executor
    shutil.copyfile(PROGRAMS / "exits.py", executor.state / "studentcode.py")
    await executor.start(connection)
    await executor.call("set_mode", "teleop")
    message = await executor.log("called sys.exit()")
    assert 'File "studentcode.py", line 9, in teleop_setup' in message
    shutil.copyfile(PROGRAMS / "prints.py", executor.state / "studentcode.py")
    await executor.call("set_mode", "idle")
    await executor.call("set_mode", "teleop")
    await executor.log("no newline then the rest")
    record = next(r for r in executor.logs if "called sys.exit()" in r.message)
    assert record.level == "error" and record.context["function"] == "teleop_setup"
    with contextlib.suppress(Exception):
        await executor.call("set_mode", "idle")
