"""The promises of docs/devices.md that no other test covers, each checked so it can fail."""

from __future__ import annotations

import logging
import time

import pytest
from runtime import protocol
from runtime.config import ServiceConfig
from runtime.exception import RPCError
from runtime.protocol import MessageType
from runtime.service.device import EventObserver, PollingObserver
from runtime.service.device.app import make_observer
from runtime.virtual import Faults

from tests.device.rig import DeviceRig, commands
from tests.support.wait import wait_for_async


def test_udev_falls_back_to_polling_where_no_udev_runs(caplog):
    caplog.set_level(logging.INFO, "runtime.service.device")
    config = ServiceConfig(observer="udev", serial_globs=("/tmp/none/ttyACM*",))
    observer = make_observer(config, 0.5, udev_available=lambda: False)
    assert isinstance(observer, PollingObserver) and observer.interval == 0.5
    assert observer.patterns == {"/tmp/none/ttyACM*"}
    assert "udev is not running here" in caplog.text and "polling /tmp/none/ttyACM*" in caplog.text
    assert isinstance(make_observer(config, udev_available=lambda: True), EventObserver)
    polling = make_observer(ServiceConfig(observer="poll"), udev_available=lambda: True)
    assert isinstance(polling, PollingObserver)


async def test_a_lost_subscription_confirmation_is_retried(rig):
    device = await rig.plug("KoalaBear", faults=Faults(lose_confirmations=1))
    info = await rig.online(device)
    assert device.confirmations_lost == 1
    requests = [p for p in device.received if p.type == MessageType.SUBSCRIPTION_REQUEST]
    assert len(requests) == 2  # the lost one, then the retry that was confirmed
    assert info.subscription.interval_ms == 40  # confirmed, so it streams
    buffer = rig.buffers.open_device(device.uid)
    count = buffer.update_count
    await wait_for_async(lambda: buffer.update_count > count)


async def test_bad_frames_are_logged_at_most_once_per_5_s(rig, caplog):
    caplog.set_level(logging.WARNING, "runtime.service.device")
    start = time.monotonic()
    device = await rig.plug("KoalaBear", faults=Faults(bad_checksum=True))
    await rig.online(device)
    client = rig.manager.devices[str(device.uid)]
    await wait_for_async(lambda: client.decoder.bad_frames >= 30)  # ~1.2 s of bad frames
    elapsed = time.monotonic() - start
    lines = [r for r in caplog.records if "bad frame(s) skipped" in r.getMessage()]
    assert 1 <= len(lines) <= 1 + int(elapsed // 5), [r.getMessage() for r in lines]
    assert "checksum" in lines[0].getMessage()  # with the reason


async def test_disable_is_sent_at_discovery_while_not_running(rig):
    device = await rig.plug("YogiBear", protocol.make_uid(10, 1, 5))
    await rig.online(device)
    sent = [p.type for p in commands(device)]
    assert MessageType.DISABLE in sent
    assert sent.index(MessageType.DEVICE_WRITE) < sent.index(MessageType.DISABLE)  # 0, then off
    assert device.disabled and device.values["duty_cycle"] == 0.0


async def test_no_disable_at_discovery_while_running(rig):
    await rig.set_mode("auto")
    device = await rig.plug("YogiBear", protocol.make_uid(10, 1, 6))
    await rig.online(device)
    assert MessageType.DISABLE not in [p.type for p in commands(device)]


async def test_read_waits_up_to_a_second_for_the_device(mosquitto_broker, robot_name):
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(silence_limit=30.0)  # the stalled device stays connected meanwhile
    try:
        device = await rig.plug("KoalaBear")
        await rig.online(device)
        device.pause()
        with pytest.raises(RPCError, match="did not answer a read within 1 s"):
            await rig.call("read", str(device.uid), ["enc_a"])
        device.resume()
        assert "enc_a" in await rig.call("read", str(device.uid), ["enc_a"])
    finally:
        await rig.stop()
