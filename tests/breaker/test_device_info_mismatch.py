"""A ``device/<uid>/info`` naming params the device's buffer does not have (a device service
with another catalog version, or any client on the broker) must not stop ``device/<uid>/data``.

Found by the breaker: one such info made the broker service's data publisher raise on every
round (a traceback 25 times a second) and publish nothing for that device nor for the devices
after it in its round.

Real parts: Mosquitto, the broker service with real shared-memory buffers, the test playing the
device service (it owns the device buffers and publishes the infos).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from runtime.buffer import BufferStore
from runtime.messages import DeviceData, DeviceInfo, decode, encode
from runtime.remote import Connection
from runtime.service.broker import Broker
from runtime.service.broker.updates import DataPublisher

from tests.support.brokers import TestBroker
from tests.support.wait import wait_for_async

KOALA = (13 << 72) | (1 << 64) | 42
SWITCH = (0 << 72) | (1 << 64) | 7


@pytest.fixture
async def service(mosquitto_broker: TestBroker, robot_name: str,
                  tmp_path: Path) -> AsyncIterator[tuple[Broker, Connection, BufferStore]]:
    buffers = BufferStore(robot_name)
    device_service = BufferStore(robot_name)
    async with Connection(mosquitto_broker.url, robot=robot_name, service="broker") as conn:
        broker = Broker(buffers, state_dir=tmp_path / "state",
                        updates=DataPublisher(buffers, rate=50))
        await broker.start(conn)
        async with Connection(mosquitto_broker.url, robot=robot_name) as client:
            yield broker, client, device_service
        await broker.stop()
    device_service.close()
    buffers.close()


def info(uid: int, type_name: str, type_id: int, params: list[dict[str, Any]]) -> DeviceInfo:
    return DeviceInfo.model_validate({"uid": str(uid), "type": type_name, "type_id": type_id,
                                      "port": None, "params": params,
                                      "subscription": {"params": [], "interval_ms": 40}})


async def test_an_info_with_unknown_params_leaves_every_device_publishing(
        service: tuple[Broker, Connection, BufferStore],
        caplog: pytest.LogCaptureFixture) -> None:
    broker, client, device_service = service
    received: list[tuple[str, DeviceData]] = []
    await client.subscribe(client.topics.any_device_data, lambda topic, payload: received.append(
        (topic, decode(DeviceData, payload))))
    koala = device_service.create_device(KOALA, "KoalaBear")
    switch = device_service.create_device(SWITCH, "LimitSwitch")
    wrong = [{"name": "enc_a", "type": "float", "readable": True, "writeable": True},
             {"name": "from_a_newer_catalog", "type": "float", "readable": True,
              "writeable": False}]
    await client.publish(client.topics.device_info(KOALA),
                         encode(info(KOALA, "KoalaBear", 13, wrong)), qos=1)
    await client.publish(client.topics.device_info(SWITCH), encode(info(
        SWITCH, "LimitSwitch", 0, [{"name": p.name, "type": p.type, "readable": p.readable,
                                    "writeable": p.writeable} for p in switch.params])), qos=1)
    await wait_for_async(lambda: len(broker.updates.devices) == 2)
    koala.update({"enc_a": 5.0})
    switch.update({"switch0": True})

    def seen(uid: int, param: str, value: Any) -> bool:
        return any(topic.endswith(f"/{uid}/data") and data.params.get(param) == value
                   for topic, data in received)

    await wait_for_async(lambda: seen(KOALA, "enc_a", 5.0) and seen(SWITCH, "switch0", True))
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the broker service"
    assert any("from_a_newer_catalog" in r.getMessage() for r in caplog.records
               if r.levelno >= logging.WARNING)
