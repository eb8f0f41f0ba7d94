"""A real executor process, frozen (SIGSTOP) or killed (SIGKILL): the device service stops the
motors and sends Disable on its own (the executor's liveness counter, runtime.buffer.liveness).

No timing threshold here: the tests wait with a deadline for the stop to be seen at the virtual
device; ``bench/liveness.py`` measures how fast it comes (design.md: within 300 ms).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys

import pytest
from runtime import protocol
from runtime.buffer.liveness import LivenessMonitor, start_liveness
from runtime.protocol import MessageType

from tests.device.rig import DeviceRig, ExecutorProcess, commands
from tests.support.wait import wait_for_async

KOALA_UID = protocol.make_uid(13, 1, 4242)
DRIVE = f'''
def autonomous_setup():
    pass

def autonomous_main():
    Robot.set_value("{KOALA_UID}", "duty_cycle_a", 0.5)

def teleop_main():
    Robot.set_value("{KOALA_UID}", "duty_cycle_a", 0.5)
'''


@pytest.fixture
async def executor_rig(mosquitto_broker, robot_name):
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(play_executor=False, discovery_timeout=2.0)
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    executor = await ExecutorProcess(rig, DRIVE).start()
    try:
        await executor.set_mode("auto")
        await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.5 and not device.disabled,
                             message="the executor never drove the motor")
        yield rig, device, executor
    finally:
        executor.stop()
        await rig.stop()


def _stopped(device, since: int) -> bool:
    """Motor at 0, and a Disable among the commands after the first ``since``. (The student
    process runs on while its control process is frozen, so it may still write: the device
    service answers each write with a 0, which can come after the Disable.)"""
    return (device.values["duty_cycle_a"] == 0.0
            and any(p.type == MessageType.DISABLE for p in commands(device)[since:]))


async def test_a_frozen_executor_stops_the_motors_and_they_resume_when_it_runs_again(
        executor_rig, caplog):
    caplog.set_level(logging.INFO, "runtime.service.device")
    rig, device, executor = executor_rig
    caplog.clear()
    mark = len(commands(device))
    executor.signal(signal.SIGSTOP)
    await wait_for_async(lambda: _stopped(device, mark), message=lambda: f"not stopped: "
                         f"{device.values['duty_cycle_a']}, verdict {rig.manager.guard.verdict}")
    assert rig.manager.guard.verdict.rule == "executor-stuck"
    guard = rig.manager.guard
    assert guard.mode == "auto" and guard.executor_online  # nothing else told us
    held = [r.getMessage() for r in caplog.records if "by rule executor-stuck" in r.getMessage()]
    assert len(held) == 1 and f"KoalaBear {KOALA_UID}" in held[0]  # one line: rule and device
    executor.signal(signal.SIGCONT)
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.5)  # the same executor
    assert rig.manager.guard.verdict.allowed
    assert any("motors released" in r.getMessage() for r in caplog.records)


async def test_a_killed_executor_stops_the_motors_before_its_last_will(executor_rig):
    rig, device, executor = executor_rig
    mark = len(commands(device))
    executor.signal(signal.SIGKILL)
    await wait_for_async(lambda: _stopped(device, mark))
    assert rig.manager.guard.verdict.rule in ("executor-stuck", "executor-gone")
    # then the last will: "gone" (its own stop, a Disable) before the stale writer below, so
    # the write's answer is the last command whatever the order of the two
    await wait_for_async(lambda: rig.manager.guard.verdict.rule == "executor-gone",
                         message=lambda: f"verdict {rig.manager.guard.verdict}")
    mark = len(commands(device))
    rig.input_store.open_device(KOALA_UID).set("duty_cycle_a", 0.25)  # a stale writer
    await wait_for_async(lambda: MessageType.DEVICE_WRITE in
                         [packet.type for packet in commands(device)[mark:]])
    assert device.values["duty_cycle_a"] == 0.0


async def test_a_restarted_executor_drives_only_after_its_own_mode(executor_rig):
    rig, device, executor = executor_rig
    mark = len(commands(device))
    executor.signal(signal.SIGKILL)
    await wait_for_async(lambda: _stopped(device, mark))
    executor.process.wait(10)
    again = await ExecutorProcess(rig, DRIVE).start()
    try:
        await wait_for_async(lambda: rig.manager.guard.verdict.rule in ("stale-match", "mode"))
        await again.set_mode("auto")
        await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.5)
    finally:
        again.stop()


async def test_the_monitor_sees_beats_a_stopped_beat_and_a_new_owner(robot_name):
    clock = [0.0]
    monitor = LivenessMonitor(robot_name, clock=lambda: clock[0])
    assert monitor.silent_for() is None  # no executor at all
    beat = start_liveness(robot_name, asyncio.get_running_loop(), period=0.005)
    try:
        assert monitor.silent_for() == 0.0  # first sight counts as movement
        clock[0] = 5.0
        count = beat.buffer.counter
        await wait_for_async(lambda: beat.buffer.counter > count)
        assert monitor.silent_for() == 0.0  # it moved: silence starts again
        beat.stop()  # a clean stop removes the counter
        assert monitor.silent_for() is None
        again = start_liveness(robot_name, asyncio.get_running_loop(), period=0.005)
        clock[0] = 6.0
        assert monitor.silent_for() == 0.0  # the new owner's counter is followed
        again._handle.cancel()  # frozen: the counter stays put
        clock[0] = 7.5
        assert monitor.silent_for() == 1.5
        again.stop()
    finally:
        monitor.close()


async def test_a_second_executor_of_the_robot_refuses_to_start(executor_rig):
    """Started by mistake beside a running one, a second executor used to run on without the
    liveness segment (the first owns it): both ran student code and answered every RPC, and
    once the first was gone the second accepted every mode while the device service held the
    motors for good (no counter of its own). It now says who owns the robot and exits."""
    rig, device, executor = executor_rig
    second = subprocess.Popen(
        [sys.executable, "-m", "runtime", "service", "executor", "--mqtt", rig.url, "--robot",
         rig.robot, "--state-dir", str(executor.state_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_for_async(lambda: second.poll() is not None, timeout=30,
                             message="a second executor kept running beside the first")
        assert second.returncode != 0
        assert second.stderr is not None
        said = second.stderr.read().decode()
        assert "another executor of robot" in said and str(executor.process.pid) in said
    finally:
        if second.poll() is None:
            second.kill()
        second.wait(10)
    await executor.set_mode("teleop")  # the first is unharmed: it still drives (live input)
    rig.live_input()
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.5 and not device.disabled
                         and rig.manager.guard.verdict.allowed,
                         message=lambda: f"the first executor no longer drives: "
                         f"{rig.manager.guard.verdict}")
