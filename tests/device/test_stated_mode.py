"""The executor states its mode in shared memory; a stop reaches the devices without ``match``.

The executor's control process writes each new mode into its liveness segment and rings the
device service (``LivenessBeat.state_mode``) before it publishes ``match``: the device service
stops the motors and sends Disable the moment the executor states idle or estop, a broker round
trip before the retained ``match`` arrives (issue 10: stop -> Disable p99 <= 5 ms; the figure is
``bench/stop.py``'s). Only stops are taken from shared memory: motors move again on ``match``
alone. Here the rig plays the executor: its beat states modes, and no ``match`` follows.
"""

from __future__ import annotations

import asyncio

import pytest
from runtime import protocol
from runtime.buffer.liveness import (
    MODE_CODES,
    MODE_OFFSET,
    LivenessBeat,
    LivenessBuffer,
    LivenessMonitor,
    liveness_name,
    start_liveness,
)
from runtime.buffer.segment import Segment
from runtime.protocol import MessageType
from runtime.protocol.lowcar import LowcarMessage
from runtime.protocol.uid import Uid
from runtime.virtual_lowcar import VirtualLowcarDevice

from tests.device.rig import commands
from tests.support.wait import wait_for_async

KOALA_UID = protocol.make_uid(13, 1, 4343)
LOWCAR_KOALA = Uid.lowcar(6, 1, 4343)


async def _driving(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    assert rig.beat is not None
    rig.beat.state_mode("auto")
    await rig.set_mode("auto")
    rig.input_store.open_device(KOALA_UID).set("duty_cycle_a", 0.5)
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.5 and not device.disabled,
                         message="the motor never moved in auto")
    return device


async def test_a_stated_stop_disables_the_devices_before_any_match_arrives(rig):
    device = await _driving(rig)
    since = len(commands(device))
    rig.beat.state_mode("estop")  # no match is ever published: shared memory alone
    await wait_for_async(lambda: device.disabled and device.values["duty_cycle_a"] == 0.0,
                         message="a stated estop did not reach the device")
    assert any(p.type == MessageType.DISABLE for p in commands(device)[since:])
    verdict = rig.manager.guard.verdict
    assert (verdict.rule, verdict.reason) == ("mode", "the mode is estop")
    assert rig.manager.guard.mode == "auto"  # the retained match still says auto

    disables = sum(p.type == MessageType.DISABLE for p in commands(device))
    await rig.set_mode("estop")  # the match catches up: the same verdict, no second stop
    assert rig.manager.guard.verdict == verdict
    await _barrier(rig, device, 3.0)
    assert sum(p.type == MessageType.DISABLE for p in commands(device)) == disables


async def _barrier(rig, device, kp: float) -> None:
    """Everything the service sent the device before now has arrived (one link, in order)."""
    rig.input_store.open_device(KOALA_UID).set("pid_kp_a", kp)
    await wait_for_async(lambda: device.values["pid_kp_a"] == kp)


async def test_a_stated_start_moves_nothing_until_the_match_says_so(rig):
    device = await _driving(rig)
    rig.beat.state_mode("idle")
    await wait_for_async(lambda: device.disabled, message="a stated idle did not disable")
    await rig.set_mode("idle")  # the match of the stop arrives
    rig.beat.state_mode("teleop")  # the executor starts; its match has not arrived yet
    rig.input_store.open_device(KOALA_UID).set("duty_cycle_a", 0.25)
    await rig.manager.guard.apply()
    assert not rig.manager.guard.verdict.allowed
    assert rig.manager.guard.verdict.reason == "the mode is idle"
    await _barrier(rig, device, 2.0)
    assert device.values["duty_cycle_a"] == 0.0
    await rig.set_mode("auto", since=2.0)  # the match: now the motors move
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.25,
                         message="the match did not release the motors")


async def test_a_start_stated_before_the_stop_s_match_is_not_released_by_an_older_match(rig):
    """auto (match since 0) -> stated idle -> stated auto again (a restart), with neither match
    arrived yet: the retained match is the auto the stop overtook; it must release nothing."""
    device = await _driving(rig)
    rig.beat.state_mode("idle")
    await wait_for_async(lambda: device.disabled, message="a stated idle did not disable")
    rig.beat.state_mode("auto")  # the new run's match is not there, nor the stop's
    rig.input_store.open_device(KOALA_UID).set("duty_cycle_a", 0.25)
    await rig.manager.guard.apply()
    assert rig.manager.guard.verdict.reason == "the mode is idle"
    await _barrier(rig, device, 2.0)
    assert device.values["duty_cycle_a"] == 0.0
    await rig.set_mode("auto")  # the same old match again (a retained copy after a reconnect)
    assert not rig.manager.guard.verdict.allowed
    await rig.set_mode("idle", since=1.0)  # the stop's match
    assert not rig.manager.guard.verdict.allowed
    await rig.set_mode("auto", since=2.0)  # the new run's match: now the motors move
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.25,
                         message="the new run's match did not release the motors")


async def test_the_monitor_follows_a_restarted_executor(rig, robot_name):
    """A new executor makes a new segment: the device service watches that one too."""
    device = await _driving(rig)
    assert rig.beat is not None
    rig.beat.stop()  # the executor ends: segment gone (rule executor-stuck stops the motors)
    await wait_for_async(lambda: device.disabled, message="no stop without an executor")
    rig.beat = start_liveness(rig.input_store)
    rig.beat.state_mode("auto")
    await rig.set_mode("auto", since=3.0)
    rig.input_store.open_device(KOALA_UID).set("duty_cycle_a", 0.5)
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.5 and not device.disabled,
                         message="the motor never moved under the new executor")
    mark = len(commands(device))
    rig.beat.state_mode("idle")
    # (a write the student made just before may follow the Disable, as zeros: the virtual
    # device counts any DeviceWrite as enabling it again, so look for the Disable itself)
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.0
                         and any(p.type == MessageType.DISABLE for p in commands(device)[mark:]),
                         message="the new executor's stop was missed")
    assert rig.manager.guard.mode == "auto"


def test_the_stated_mode_is_read_as_written(robot_name):
    loop = asyncio.new_event_loop()
    try:
        beat = LivenessBeat(robot_name, loop)
        monitor = LivenessMonitor(robot_name)
        assert monitor.mode() is None  # nothing stated yet
        for mode in ("teleop", "estop", "idle", "auto"):
            beat.state_mode(mode)
            assert monitor.mode() == mode
        try:
            beat.state_mode("dance")
        except ValueError:
            pass
        else:
            raise AssertionError("an unknown mode was accepted")
        assert monitor.mode() == "auto"
        beat.stop()
        assert monitor.mode() is None
        monitor.close()
    finally:
        loop.close()


async def test_the_stop_is_applied_on_the_ring_not_on_the_periodic_check(mosquitto_broker,
                                                                         robot_name):
    """With the periodic check an hour apart, only the executor's ring can stop the device."""
    from tests.device.rig import DeviceRig

    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=1.0, safety_period=3600.0)
    try:
        device = await _driving(rig)
        rig.beat.state_mode("idle")
        await wait_for_async(lambda: device.disabled, message="the ring did not stop the device")
        assert rig.manager.guard.verdict.reason == "the mode is idle"
    finally:
        await rig.stop()


def _state_without_ring(robot: str, mode: str) -> None:
    """Write ``mode`` into the executor's stated-mode byte from another process's mapping,
    without ringing: what a student process that opened the segment does (it is a file in
    /dev/shm), and how a ring that never came looks (``WaiterTable.notify`` gives up on a full
    socket queue). The device service then learns the stop only when it next looks."""
    buffer = LivenessBuffer(Segment.attach(liveness_name(robot), "executor liveness"))
    try:
        buffer.view[MODE_OFFSET] = MODE_CODES.index(mode) + 1
    finally:
        buffer.close()


@pytest.mark.parametrize("generation", ["hibike", "lowcar"])
async def test_no_nonzero_write_leaves_after_a_stated_stop(mosquitto_broker, robot_name,
                                                           generation):
    """Found with real processes flapping modes: a student's write woke the device service
    before the executor's ring did, and its 0.5 went out after the stop was stated. Here the
    ring never comes (periodic check an hour apart): the write path itself must see the stop."""
    from tests.device.rig import DeviceRig

    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=5.0, safety_period=3600.0)
    try:
        if generation == "hibike":
            uid, motor, other = KOALA_UID, "duty_cycle_a", "pid_kp_a"
            device = await rig.plug("KoalaBear", uid)
        else:
            uid, motor, other = LOWCAR_KOALA.value, "velocity_a", "deadband_a"
            device = VirtualLowcarDevice("KoalaBear", uid)
            rig.devices.append((device, asyncio.create_task(device.connect(rig.address))))
        await rig.online(device)
        assert rig.beat is not None
        rig.beat.state_mode("auto")
        await rig.set_mode("auto")
        desired = rig.input_store.open_device(uid)
        desired.set(motor, 0.5)
        await wait_for_async(lambda: device.values[motor] == 0.5,
                             message="the motor never moved in auto")

        _state_without_ring(robot_name, "idle")
        desired.write({motor: 0.75, other: 0.25})  # the student writes on
        await wait_for_async(lambda: device.values[other] == pytest.approx(0.25),
                             message="the write never reached the device")
        assert device.values[motor] == 0.0, "a nonzero value left after a stated stop"
        assert not rig.manager.guard.verdict.allowed
        assert rig.manager.guard.verdict.reason == "the mode is idle"
        stops = (MessageType.DISABLE, LowcarMessage.RST)
        assert any(p.type in stops for p in device.received), "no Disable after the stop"
    finally:
        await rig.stop()
