"""Desired values on the wire: coalesced, split to the firmware's 99 bytes, motors held."""

from __future__ import annotations

import pytest
from runtime.buffer import BufferStore
from runtime.catalog import load_catalog
from runtime.constants import MAX_WRITE_PAYLOAD
from runtime.protocol import MessageType

from tests.device.rig import DeviceRig, commands
from tests.support.wait import wait_for_async

WIDE = """
[[device]]
id = 200
name = "WideBoard"
params = [
""" + "".join(f'  {{ name = "v{i}", type = "int64", readable = true, writeable = true }},\n'
              for i in range(16)) + "]\n"


@pytest.fixture
async def wide_rig(mosquitto_broker, robot_name, tmp_path):
    path = tmp_path / "catalog.toml"
    path.write_text(WIDE)
    catalog = load_catalog(path)
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=2.0, catalog=catalog)
    store = BufferStore(robot_name, catalog=catalog)
    try:
        yield rig, catalog, store
    finally:
        store.close()
        await rig.stop()


async def test_a_write_too_big_for_one_packet_is_split_to_99_bytes(wide_rig):
    rig, catalog, store = wide_rig
    device = await rig.plug("WideBoard", None, catalog=catalog)
    await rig.online(device)
    values = {f"v{i}": -(i + 1) * 10**12 for i in range(16)}  # 2 + 16 * 8 bytes: too big
    store.open_device(device.uid).write(values)
    await wait_for_async(lambda: all(device.values[k] == v for k, v in values.items()))
    writes = [p for p in commands(device) if p.type == MessageType.DEVICE_WRITE]
    assert len(writes) >= 2
    assert all(len(p.payload) <= MAX_WRITE_PAYLOAD for p in writes)


async def test_values_set_faster_than_they_are_sent_are_coalesced(rig):
    device = await rig.plug("KoalaBear")
    await rig.online(device)
    buffer = rig.input_store.open_device(device.uid)
    before = len([p for p in commands(device) if p.type == MessageType.DEVICE_WRITE])
    for i in range(100):  # no await in between: the service cannot take them one by one
        buffer.set("pid_kp_a", float(i))
    await wait_for_async(lambda: device.values["pid_kp_a"] == 99.0)
    writes = [p for p in commands(device) if p.type == MessageType.DEVICE_WRITE][before:]
    assert len(writes) == 1  # only the latest value went out


async def test_a_value_whose_doorbell_was_lost_is_sent_by_the_safety_pass(rig, monkeypatch):
    """A writer that dies between its write and its ring (or a ring lost on the way) leaves
    a desired value nobody announced: the write loop's safety pass, on the service-wide tick
    (``runtime.ticks``), still sends it."""
    device = await rig.plug("KoalaBear")
    await rig.online(device)
    buffer = rig.input_store.open_device(device.uid)
    monkeypatch.setattr(buffer.waiters, "notify", lambda event: None)  # this writer never rings
    buffer.set("pid_kp_a", 7.0)
    await wait_for_async(lambda: device.values["pid_kp_a"] == 7.0,
                         message="a value without its doorbell was never sent")
