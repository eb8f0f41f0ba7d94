"""The MQTT broker away for longer than any publish timeout, during teleop (issue 11).

Expectations (docs/reliability.md): the device service keeps every device while the broker is
away (a device is never removed because its info cannot be published), announces a device
plugged during the outage once the broker is back, and re-publishes every retained info (the
restarted broker lost them); driver input stops with the broker, so teleop holds the motors at 0.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from runtime import protocol
from runtime.messages import DeviceInfo, decode
from runtime.remote import Connection
from runtime.service.device.announce import PUBLISH_TIMEOUT

from tests.resilience.device_stack import DeviceStack
from tests.support.wait import wait_for_async

KOALA_UID = protocol.make_uid(13, 1, 5150)
OUTAGE = max(PUBLISH_TIMEOUT, 10.0) + 1.0


async def test_devices_outlive_a_broker_outage_and_are_announced_again(rig, mosquitto_broker):
    before = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(before)
    await rig.set_mode("teleop")
    gamepad = rig.live_input(ts=time.time())

    async def driver_station() -> None:  # the broker service's side: input while it flows
        while True:
            if rig.connection.connected.is_set():
                gamepad.update(0, [0.0] * 4, time.time())
            await asyncio.sleep(0.05)

    station = asyncio.create_task(driver_station())
    try:
        rig.input_store.open_device(KOALA_UID).set("duty_cycle_a", 0.6)
        await wait_for_async(lambda: before.values["duty_cycle_a"] == pytest.approx(0.6))
        mosquitto_broker.stop()  # retained messages are lost with it
        await wait_for_async(lambda: not rig.connection.connected.is_set())
        await wait_for_async(lambda: before.values["duty_cycle_a"] == 0.0)  # no input: held
        assert rig.manager.guard.verdict.rule == "no-input"
        during = await rig.plug("LimitSwitch")
        await wait_for_async(lambda: str(during.uid) in rig.manager.devices)
        # the fault lasts longer than any publish timeout (and than the 10 s after which the
        # service used to remove a device whose info it could not publish)
        await asyncio.sleep(OUTAGE)
        assert set(rig.manager.devices) == {str(KOALA_UID), str(during.uid)}
        mosquitto_broker.start()
        seen: dict[str, DeviceInfo] = {}

        def on_info(topic: str, payload: bytes) -> None:
            if payload:
                info = decode(DeviceInfo, payload)
                seen[info.uid] = info

        async with Connection(mosquitto_broker.url, robot=rig.robot) as fresh:
            await fresh.subscribe(fresh.topics.any_device_info, on_info, qos=1)
            await wait_for_async(lambda: {str(KOALA_UID), str(during.uid)} <= set(seen),
                                 timeout=20, message=lambda: f"seen only {sorted(seen)}")
        # input flows again: the motor resumes its last desired value under the stop rules
        await wait_for_async(lambda: before.values["duty_cycle_a"] == pytest.approx(0.6))
        assert set(rig.manager.devices) == {str(KOALA_UID), str(during.uid)}
    finally:
        station.cancel()
        await asyncio.gather(station, return_exceptions=True)


async def test_a_device_service_started_before_the_broker_announces_its_devices(
        mosquitto_broker, robot_name):
    """The robot boots before its broker: devices found meanwhile are announced when it is up."""
    mosquitto_broker.stop()
    stack = DeviceStack(mosquitto_broker.url, robot_name)
    try:
        await stack.start(watch=False)
        stack.plug("LimitSwitch", protocol.make_uid(0, 1, 301), pty="ttyRES0")
        stack.plug("KoalaBear", protocol.make_uid(13, 1, 302))
        uids = [protocol.make_uid(0, 1, 301), protocol.make_uid(13, 1, 302)]
        for uid in uids:  # served without a broker (their buffers exist and fill)
            await wait_for_async(lambda uid=uid: stack.updates(uid) > 0, timeout=30,
                                 message=stack.log)
        assert "waiting for broker" in stack.log()
        await asyncio.sleep(OUTAGE)  # longer than any publish timeout: nothing gives up
        mosquitto_broker.start()
        await stack.watch()
        for uid in uids:
            await wait_for_async(lambda uid=uid: stack.announced(uid), timeout=30,
                                 message=stack.log)
        assert "removed" not in stack.log()
    finally:
        await stack.stop()
