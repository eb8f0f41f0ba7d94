"""Device sessions are never dropped for good: silence, resets, duplicate uids, broker outages."""

from __future__ import annotations

import asyncio
import logging

from runtime import protocol
from runtime.messages import DeviceInfo, decode
from runtime.remote import Connection
from runtime.virtual import VirtualDevice

from tests.device.rig import DeviceRig
from tests.support.wait import wait_for_async

KOALA_UID = protocol.make_uid(13, 1, 31337)


async def _pty_device(link, device_type: str, uid=None) -> tuple[VirtualDevice, asyncio.Task]:
    device = VirtualDevice(device_type, uid)
    ready = asyncio.Event()
    task = asyncio.create_task(device.serve_pty(link, ready))
    await asyncio.wait_for(ready.wait(), 10)
    return device, task


async def test_a_stalled_device_is_dropped_and_back_when_it_talks_again(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    device.pause()  # a stalled microcontroller: its link stays open
    await wait_for_async(lambda: rig.infos.get(str(KOALA_UID), "absent") is None)
    assert str(KOALA_UID) not in rig.buffers.device_uids()  # dropped for real
    pings = sum(p.type == protocol.MessageType.PING for p in device.received)
    device.resume()
    await rig.online(device)
    buffer = rig.buffers.open_device(KOALA_UID)
    assert buffer.connected
    count = buffer.update_count
    await wait_for_async(lambda: buffer.update_count > count)  # subscribed again: data flows
    # it was found by the re-probe Pings that waited in its stream, on the same link
    assert sum(p.type == protocol.MessageType.PING for p in device.received) > pings
    assert len(rig.devices) == 1 and not rig.devices[0][1].done()


async def test_a_stalled_serial_device_comes_back_on_its_port(serial_rig):
    rig, directory = serial_rig
    device, task = await _pty_device(directory / "ttySES0", "YogiBear")
    await rig.online(device)
    device.pause()
    await wait_for_async(lambda: rig.infos.get(str(device.uid), "absent") is None)
    device.resume()
    info = await rig.online(device)
    assert info.port == str(directory / "ttySES0")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_device_restarted_behind_the_same_port_is_found_again(serial_rig):
    rig, directory = serial_rig
    link = directory / "ttySES1"
    first, task = await _pty_device(link, "KoalaBear", KOALA_UID)
    await rig.online(first)
    task.cancel()  # the simulator restarts: a new pseudo-terminal behind the same path
    await asyncio.gather(task, return_exceptions=True)
    second, task = await _pty_device(link, "KoalaBear", KOALA_UID)
    await wait_for_async(lambda: any(p.type == protocol.MessageType.SUBSCRIPTION_REQUEST
                                     for p in second.received))
    await rig.online(second)
    assert rig.manager.devices[str(KOALA_UID)].port == str(link)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_duplicate_uid_is_refused_naming_both_links_and_served_when_the_first_leaves(
        rig, caplog):
    caplog.set_level(logging.WARNING, "runtime.service.device")
    first = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(first)
    first_port = rig.manager.devices[str(KOALA_UID)].port
    second = await rig.plug("KoalaBear", KOALA_UID)
    warning = await wait_for_async(lambda: next(
        (r.getMessage() for r in caplog.records if "same uid" in r.getMessage()), None))
    assert first_port in warning
    second_port = warning.split(" on ", 1)[1].split(" has the same uid")[0]
    assert second_port.startswith("virtual:") and second_port != first_port
    assert "another service" not in warning
    await rig.unplug(first)
    await wait_for_async(lambda: str(KOALA_UID) in rig.manager.devices
                         and rig.manager.devices[str(KOALA_UID)].port == second_port)
    await rig.online(second)
    second.values["enc_a"] = 7.0
    buffer = rig.buffers.open_device(KOALA_UID)
    await wait_for_async(lambda: buffer.get("enc_a") == 7.0)  # the refused one is served now


async def test_devices_outlive_the_broker_and_are_announced_when_it_returns(
        mosquitto_broker, robot_name):
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=2.0)
    try:
        before = await rig.plug("KoalaBear", KOALA_UID)
        await rig.online(before)
        mosquitto_broker.stop()  # retained messages are lost with it
        await wait_for_async(lambda: not rig.connection.connected.is_set())
        during = await rig.plug("LimitSwitch")
        await wait_for_async(lambda: str(during.uid) in rig.manager.devices)
        mosquitto_broker.start()
        seen: dict[str, DeviceInfo] = {}

        def on_info(topic: str, payload: bytes) -> None:
            if payload:
                info = decode(DeviceInfo, payload)
                seen[info.uid] = info

        async with Connection(mosquitto_broker.url, robot=robot_name) as fresh:
            await fresh.subscribe(fresh.topics.any_device_info, on_info, qos=1)
            await wait_for_async(lambda: {str(before.uid), str(during.uid)} <= set(seen),
                                 timeout=20, message=lambda: f"seen only {sorted(seen)}")
        assert set(rig.manager.devices) == {str(before.uid), str(during.uid)}  # never removed
    finally:
        await rig.stop()


async def test_a_device_reset_behind_its_link_is_subscribed_again(rig, caplog):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    buffer = rig.buffers.open_device(KOALA_UID)
    device.reset()  # it keeps sending heartbeats, but no more data
    count = buffer.update_count
    await wait_for_async(lambda: buffer.update_count > count + 3)  # streaming again
    assert rig.manager.devices[str(KOALA_UID)].resubscribed >= 1
    assert rig.infos[str(KOALA_UID)] is not None


async def test_another_device_behind_the_same_link_is_a_new_session(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    other = protocol.make_uid(13, 1, 4444)
    device.reset(uid=other)  # re-flashed: it answers with another uid now
    await wait_for_async(lambda: rig.infos.get(str(KOALA_UID), "absent") is None)
    await rig.online(device)
    assert str(other) in rig.manager.devices and str(KOALA_UID) not in rig.manager.devices
