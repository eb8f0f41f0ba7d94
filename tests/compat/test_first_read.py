"""Values students read are real: a param outside the default subscription (an Encoder's
``rotation``, a BatteryBuzzer's cell voltages) is the device's value from the first
``Robot.get_value``, stays subscribed, and ``runtime devices`` never shows a value that was
never received as 0. A real device service, real buffers, virtual devices (their simulated
physics paused so the values are the test's)."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys

import pytest
from runtime.api import StudentAPI
from runtime.buffer import BufferStore
from runtime.exception import DeviceError

from tests.support.wait import wait_for_async


def _still(device):
    """Pause the virtual device's simulated physics: its values are what the test sets."""
    device.step = lambda dt, now: None
    return device


@pytest.fixture
def api(robot_name):
    with BufferStore(robot_name) as store:
        api = StudentAPI(store)
        api.enable()
        yield api


async def test_encoder_rotation_is_the_devices_value_on_the_first_read(rig, api):
    encoder = _still(await rig.plug("Encoder"))
    encoder.values["rotation"] = 995
    await rig.online(encoder)
    uid = str(encoder.uid)
    value = await asyncio.to_thread(api.robot.get_value, uid, "rotation")
    assert value == 995  # the device's value on the very first call, not 0
    # it stays subscribed: a later change arrives without any further read request
    info = await wait_for_async(
        lambda: (i := rig.infos.get(uid)) and "rotation" in i.subscription.params and i)
    assert info.subscription.interval_ms == 40
    encoder.values["rotation"] = -321
    await wait_for_async(lambda: api.robot.get_value(uid, "rotation") == -321)


async def test_battery_cell_voltages_are_real_on_the_first_read(rig, api):
    battery = _still(await rig.plug("BatteryBuzzer"))
    cells = {"v_cell1": 3.75, "v_cell2": 3.5, "v_cell3": 4.0}
    battery.values.update(cells)
    await rig.online(battery)
    uid = str(battery.uid)
    for name, volts in cells.items():
        assert await asyncio.to_thread(api.robot.get_value, uid, name) == volts
    battery.values["v_cell2"] = 3.25
    await wait_for_async(lambda: api.robot.get_value(uid, "v_cell2") == 3.25)


async def test_a_device_that_does_not_answer_is_named_in_the_error(rig, api):
    encoder = _still(await rig.plug("Encoder"))
    await rig.online(encoder)
    encoder.faults = dataclasses.replace(encoder.faults, unresponsive=True)
    with pytest.raises(DeviceError, match=rf"Robot.get_value\('{encoder.uid}', 'rotation'\): "
                       rf"Encoder\[{encoder.uid}\] did not send rotation within 0.1 s"):
        await asyncio.to_thread(api.robot.get_value, str(encoder.uid), "rotation")


async def test_devices_marks_values_never_received(rig, api, mosquitto_broker, robot_name):
    encoder = _still(await rig.plug("Encoder"))
    encoder.values["rotation"] = 995
    await rig.online(encoder)
    listed = await rig.call("list")
    assert listed[0]["never_received"] == ["rotation"]

    async def devices() -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runtime", "devices", "--mqtt", mosquitto_broker.url,
            "--robot", robot_name, "--timeout", "30", stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return out.decode()

    assert "rotation=(none)" in await devices()
    await asyncio.to_thread(api.robot.get_value, str(encoder.uid), "rotation")
    assert (await rig.call("list"))[0]["never_received"] == []
    assert "rotation=995" in await devices()
