"""The broker service's data paths with real buffers and a real MQTT broker:
driver input into the gamepad/keyboard buffers, device buffers out as ``device/<uid>/data``."""

from __future__ import annotations

import pytest
from runtime.buffer import BufferStore
from runtime.messages import DeviceData, DeviceInfo, GamepadInput, KeyboardInput, decode, encode
from runtime.remote import Client, Connection
from runtime.service.broker import Broker
from runtime.service.broker.inputs import InputBridge
from runtime.service.broker.updates import DataPublisher

from tests.support.wait import wait_for_async

UID = (13 << 72) | (1 << 64) | 42


@pytest.fixture
async def service(mosquitto_broker, robot_name, tmp_path):
    """The broker service (fast staleness: 0.3 s; data at 50 Hz), a client, and the stores."""
    buffers = BufferStore(robot_name)
    other = BufferStore(robot_name)  # the executor's / device service's view
    async with Connection(mosquitto_broker.url, robot=robot_name, service="broker") as conn:
        broker = Broker(buffers, state_dir=tmp_path / "state",
                        inputs=InputBridge(buffers, stale_after=0.3),
                        updates=DataPublisher(buffers, rate=50))
        await broker.start(conn)
        async with Connection(mosquitto_broker.url, robot=robot_name) as client:
            yield broker, client, other
        await broker.stop()
    other.close()
    buffers.close()


async def test_gamepad_input_reaches_the_buffer_and_goes_stale(service):
    _, client, other = service
    gamepad = other.gamepad(1)
    assert not gamepad.connected
    message = GamepadInput(buttons=0b101, axes=[0.5, -0.25, 0.0, 1.0], ts=1.0)
    await client.publish(client.topics.gamepad(1), encode(message))
    await wait_for_async(lambda: gamepad.connected)
    assert gamepad.buttons == 0b101 and gamepad.axes == (0.5, -0.25, 0.0, 1.0)
    assert gamepad.get("button_x") is True
    await wait_for_async(lambda: not gamepad.connected)  # nothing for 0.3 s: stale


async def test_keyboard_input_and_an_explicit_goodbye(service):
    _, client, other = service
    keyboard = other.keyboard()
    await client.publish(client.topics.keyboard, encode(KeyboardInput(keys=1 << 22, ts=1.0)))
    await wait_for_async(lambda: keyboard.connected and keyboard.get("w"))
    await client.publish(client.topics.keyboard, b"")  # a driver station's last will
    await wait_for_async(lambda: not keyboard.connected)


async def test_bad_input_is_reported_and_ignored(service, caplog):
    _, client, other = service
    gamepad = other.gamepad(0)
    await client.publish(client.topics.gamepad(0), b"\xff\x00garbage")
    await client.publish(client.topics.gamepad(0),
                         encode(GamepadInput(buttons=1, axes=[0.0] * 4, ts=1.0)))
    await wait_for_async(lambda: gamepad.connected)  # the service carried on
    assert gamepad.buttons == 1
    reports = [r.getMessage() for r in caplog.records if "bad GamepadInput" in r.getMessage()]
    assert len(reports) == 1
    assert reports[0].startswith(
        f"ignoring a bad GamepadInput message on {client.topics.gamepad(0)}: ")


async def test_device_values_are_published_when_they_change(service):
    broker, client, other = service
    received: list[DeviceData] = []
    await client.subscribe(client.topics.device_data(UID),
                           lambda topic, payload: received.append(decode(DeviceData, payload)))
    device = other.create_device(UID, "KoalaBear")  # playing the device service
    info = DeviceInfo(uid=str(UID), type="KoalaBear", type_id=13, port=None, params=[
        {"name": p.name, "type": p.type, "readable": p.readable, "writeable": p.writeable}
        for p in device.params], subscription={"params": [], "interval_ms": 40})
    await client.publish(client.topics.device_info(UID), encode(info), qos=1, retain=True)
    await wait_for_async(lambda: str(UID) in broker.updates.devices)
    device.update({"enc_a": 5.0, "duty_cycle_a": 0.5})
    await wait_for_async(lambda: any(m.params.get("enc_a") == 5.0 for m in received))
    device.update({"enc_a": 6.0, "duty_cycle_a": 0.5})  # only enc_a changed
    await wait_for_async(lambda: received[-1].params == {"enc_a": 6.0})
    assert await broker.updates.publish_changes() == 0  # nothing new: nothing sent
    await client.publish(client.topics.device_info(UID), b"", qos=1, retain=True)
    await wait_for_async(lambda: str(UID) not in broker.updates.devices)


async def test_button_params_lists_the_gamepad(service):
    _, client, _ = service
    params = await Client(client).call("broker", "button_params")
    names = [param["name"] for param in params]
    assert names[0] == "button_a" and names[-1] == "joystick_right_y" and len(names) == 21
