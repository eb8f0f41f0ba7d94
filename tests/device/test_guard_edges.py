"""Edges of the device side of a stop (``MotorGuard``) that the mutation check found untested.

The executor states a mode in shared memory and rings; the guard writes the stop to every device
in that loop turn (``apply_now``) and then says so in one log line (``_finish``, a task). Here
the rig plays the executor, as in ``test_stated_mode.py``.
"""

from __future__ import annotations

import asyncio
import logging

from runtime import protocol
from runtime.buffer import BufferStore
from runtime.buffer.liveness import start_liveness
from runtime.constants import LIVENESS_TIMEOUT
from runtime.messages import Match, ServiceStatus, encode
from runtime.remote import Connection
from runtime.service.device import guard as guard_module

from tests.device.rig import DeviceRig
from tests.support.wait import wait_for_async

UIDS = (protocol.make_uid(13, 1, 5151), protocol.make_uid(13, 1, 5252))


async def _two_driving(rig: DeviceRig):
    devices = [await rig.plug("KoalaBear", uid) for uid in UIDS]
    for device in devices:
        await rig.online(device)
    assert rig.beat is not None
    rig.beat.state_mode("auto")
    await rig.set_mode("auto")
    for uid in UIDS:
        rig.input_store.open_device(uid).set("duty_cycle_a", 0.5)
    await wait_for_async(lambda: all(d.values["duty_cycle_a"] == 0.5 and not d.disabled
                                     for d in devices), message="the motors never moved")
    return devices


async def test_a_device_gone_during_a_stop_does_not_keep_the_others_from_stopping(rig, caplog):
    caplog.set_level(logging.INFO, "runtime.service.device")
    devices = await _two_driving(rig)
    first, second = rig.manager.devices.values()
    live = next(d for d in devices if str(d.uid) == str(second.uid))
    # The first link ends in this very loop turn: the manager still lists its session when
    # the stop is written (what happens when a device is unplugged as the executor stops).
    first._lose("unplugged")
    rig.beat.state_mode("estop")
    verdict = rig.manager.guard.apply_now()  # what the ring does, in this loop turn
    assert verdict is not None and verdict.reason == "the mode is estop"
    await wait_for_async(lambda: live.disabled and live.values["duty_cycle_a"] == 0.0,
                         message="the other device was not stopped")
    gone = [r for r in caplog.records if "is gone: unplugged" in r.getMessage()]
    assert gone and gone[0].levelno == logging.WARNING


async def test_a_stop_by_the_ring_alone_is_logged_once_naming_the_rule(mosquitto_broker,
                                                                     robot_name, caplog):
    """With the periodic check an hour apart, the log line can only come from the ring."""
    caplog.set_level(logging.INFO, "runtime.service.device")
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=1.0, safety_period=3600.0)
    try:
        devices = await _two_driving(rig)
        caplog.clear()
        rig.beat.state_mode("idle")
        await wait_for_async(lambda: all(d.disabled for d in devices),
                             message="the ring did not stop the devices")

        def held() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "motors held at 0" in r.getMessage()]

        await wait_for_async(lambda: held(), message="the stop was not logged")
        (record,) = held()
        message = record.getMessage()
        assert "and disabled" in message and "rule mode" in message
        assert message.count("KoalaBear") == 2  # both devices named
        assert record.levelno == logging.INFO  # a stop asked for is no warning
        assert not any("released" in r.getMessage() for r in caplog.records)
    finally:
        await rig.stop()



async def test_a_held_robot_checks_rarely_and_a_start_brings_the_short_period_back(
        mosquitto_broker, robot_name, monkeypatch):
    """Idle, the rules are checked every HELD_PERIOD (only messages and the ring change a
    verdict held by the mode); the match that starts the robot wakes that long sleep, so an
    executor that freezes right after is still caught by the 20 ms checks. With HELD_PERIOD an
    hour, only that wake-up can catch it."""
    monkeypatch.setattr(guard_module, "HELD_PERIOD", 3600.0)
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=1.0)
    try:
        guard = rig.manager.guard
        assert guard.verdict.rule == "mode" and guard.next_period() == 3600.0
        await wait_for_async(lambda: guard._tick is not None, message="the guard never slept")
        devices = await _two_driving(rig)
        assert guard.next_period() == guard.period
        assert rig.beat is not None and rig.beat._handle is not None
        rig.beat._handle.cancel()  # the executor freezes: its counter stops, nothing is said
        await wait_for_async(lambda: guard.verdict.rule == "executor-stuck"
                             and all(d.disabled for d in devices),
                             message=lambda: f"not caught: verdict {guard.verdict}")
    finally:
        await rig.stop()


async def test_an_executor_frozen_before_its_teleop_match_arrives_never_gets_the_motors(
        mosquitto_broker, robot_name, monkeypatch):
    """The executor states teleop, beats once more and freezes; its ``match`` reaches the
    device service only after ``LIVENESS_TIMEOUT`` (a slow broker). While held the guard looks
    only on messages (HELD_PERIOD an hour here), so its last look came before that last beat:
    the counter has moved since, and only the beat's stamp says how old it is. The motors stay
    held (a stale 0.5 waits in the buffer), and move once the executor beats again."""
    monkeypatch.setattr(guard_module, "HELD_PERIOD", 3600.0)
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=1.0)
    try:
        guard = rig.manager.guard
        device = await rig.plug("KoalaBear", UIDS[0])
        await rig.online(device)
        rig.live_input()
        rig.input_store.open_device(UIDS[0]).set("duty_cycle_a", 0.5)
        assert rig.beat is not None and rig.beat._handle is not None
        looks: list[float | None] = []
        look = guard.liveness.silent_for
        monkeypatch.setattr(guard.liveness, "silent_for", lambda: looks.append(look()) or looks[-1])
        rig.beat.state_mode("teleop")  # rings the guard: a look at the counter, still held
        await wait_for_async(lambda: looks, message="the stated mode never rang the guard")
        assert guard.verdict.rule == "mode"
        rig.beat.buffer.beat()  # the executor's last beat, after the guard's last look
        rig.beat._handle.cancel()  # it freezes
        await asyncio.sleep(LIVENESS_TIMEOUT * 1.5)  # frozen this long before its match lands
        assert len(looks) == 1, looks  # the ring's alone
        await rig.set_mode("teleop", since=1.0)
        assert guard.verdict.rule == "executor-stuck", guard.verdict
        assert device.values["duty_cycle_a"] == 0.0
        rig.beat._handle = None
        rig.beat.start()  # it runs again
        await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.5,
                             message=lambda: f"not released: verdict {guard.verdict}")
    finally:
        await rig.stop()


async def test_a_device_service_started_during_a_match_logs_no_stop_that_never_was(
        mosquitto_broker, robot_name, caplog):
    """The retained status of a running executor and a retained teleop match wait on the
    broker; a device service starting then learns both. It must not judge the match before it
    knows the executor: that logged "held ... by rule executor-gone: the executor is offline"
    at every device service restart during a match."""
    caplog.set_level(logging.INFO, "runtime.service.device")
    store = BufferStore(robot_name)
    beat = start_liveness(store)
    beat.state_mode("teleop")
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    try:
        async with Connection(mosquitto_broker.url, robot=robot_name) as connection:
            status = ServiceStatus(state="online", version="test", pid=1, started=0.0)
            await connection.publish(connection.topics.status("executor"), encode(status),
                                     qos=1, retain=True)
            match = Match.model_validate({"mode": "teleop", "since": 1.0})
            await connection.publish(connection.topics.match, encode(match), qos=1, retain=True)
            await rig.start(discovery_timeout=1.0, play_executor=False)
            guard = rig.manager.guard
            await wait_for_async(lambda: guard.mode == "teleop" and guard.executor_online,
                                 message=lambda: f"not followed: {guard.mode}, {guard.verdict}")
            assert guard.verdict.rule == "no-input"  # the one rule that holds: no gamepad
            said = [r.getMessage() for r in caplog.records if "executor-gone" in r.getMessage()]
            assert said == []
    finally:
        await rig.stop()
        beat.stop()
        store.close()
