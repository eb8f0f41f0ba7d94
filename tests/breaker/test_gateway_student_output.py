"""Student output the gateway must survive: ``Robot.log`` values and keys of any size and
number, and prints of any length, reach Dawn (cut to what a frame carries) and never stop its
DEVICE_DATA. Found by the breaker: before, one ``Robot.log("x", 10**400)`` or a few thousand
``Robot.log`` keys made every DEVICE_DATA fail (a traceback every 40 ms, Dawn blind to the
devices until the gateway restarted), and a 70 kB print never reached Dawn.

Real parts: the embedded broker, a ``Gateway`` on a free port, the Dawn stand-in of
``tests/gateway/client.py``; records are published on ``log/student`` as the executor does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runtime.messages import LogRecord, encode
from runtime.remote import Connection
from runtime.service.gateway import Gateway
from runtime.service.gateway.proto import pie_client_pb2 as pb

from tests.gateway.client import DAWN, DEVICE_DATA, LOG, PieClient
from tests.support.brokers import TestBroker


async def idle(mode: str, **kwargs: Any) -> None:
    """set_mode stand-in: these tests look only at what the gateway sends Dawn."""


@pytest.fixture
async def gateway(amqtt_broker: TestBroker, robot_name: str) -> AsyncIterator[Gateway]:
    async with Connection(amqtt_broker.url, robot=robot_name, service="gateway") as connection:
        await connection.wait_connected(10)
        gateway = Gateway("127.0.0.1", 0, set_mode=idle)
        await gateway.start(connection)
        try:
            yield gateway
        finally:
            await gateway.stop()


async def robot_log(gateway: Gateway, key: str, value: Any) -> None:
    """What the executor publishes for ``Robot.log(key, value)``."""
    connection = gateway._connection
    assert connection is not None
    record = LogRecord(ts=time.time(), level="INFO", logger="student.log",
                       message=f"{key}: {value}", context={"key": key, "value": value})
    await connection.publish(connection.topics.log("student"), encode(record), qos=1)


async def student_print(gateway: Gateway, text: str) -> None:
    connection = gateway._connection
    assert connection is not None
    record = LogRecord(ts=time.time(), level="INFO", logger="student", message=text,
                       context={})
    await connection.publish(connection.topics.log("student"), encode(record), qos=1)


def custom(message: pb.DevData) -> dict[str, Any]:
    device = next(d for d in message.devices if d.name == "CustomData")
    return {p.name: getattr(p, p.WhichOneof("val")) for p in device.params if p.WhichOneof("val")}


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["huge", "huge-negative"])
async def test_a_robot_log_number_too_large_for_a_float_leaves_device_data_flowing(
        gateway: Gateway, value: int, caplog: pytest.LogCaptureFixture) -> None:
    dawn = await PieClient.connect("127.0.0.1", gateway.port, DAWN)
    await dawn.receive_until(DEVICE_DATA)
    await robot_log(gateway, "big", value)
    await robot_log(gateway, "after", 7)
    message = await dawn.receive_until(DEVICE_DATA, lambda m: "after" in custom(m))
    assert custom(message)["after"] == 7
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the gateway's log"
    await dawn.close()


async def test_thousands_of_robot_log_keys_leave_device_data_flowing(
        gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    dawn = await PieClient.connect("127.0.0.1", gateway.port, DAWN)
    await robot_log(gateway, "first", 1)
    await dawn.receive_until(DEVICE_DATA, lambda m: "first" in custom(m))
    for index in range(3000):
        await robot_log(gateway, f"a_rather_long_key_name_number_{index:05d}", index)
    await robot_log(gateway, "k" * 70000, 1)
    await robot_log(gateway, "first", 2)  # a key Dawn already shows keeps being updated
    await dawn.receive_until(DEVICE_DATA, lambda m: custom(m).get("first") == 2, timeout=15)
    # and DEVICE_DATA keeps coming after that
    await dawn.receive_until(DEVICE_DATA)
    await dawn.receive_until(DEVICE_DATA)
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the gateway's log"
    assert any("Robot.log" in r.getMessage() for r in caplog.records
               if r.levelno >= logging.WARNING), "no line saying Robot.log entries were dropped"
    await dawn.close()


async def test_a_print_longer_than_a_frame_reaches_dawn_cut_short(
        gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    dawn = await PieClient.connect("127.0.0.1", gateway.port, DAWN)
    await dawn.receive_until(DEVICE_DATA)
    await student_print(gateway, "start " + "x" * 200_000)
    await student_print(gateway, "\n".join(f"line {i} " + "y" * 2000 for i in range(50)))
    await student_print(gateway, "the next print")
    first = await dawn.receive_until(LOG, lambda m: any(line.startswith("start ")
                                                        for line in m.payload))
    line = next(line for line in first.payload if line.startswith("start "))
    assert line.endswith("\n") and "more characters" in line
    lines: list[str] = []

    def collect(message: pb.Text) -> bool:
        lines.extend(message.payload)
        return any("the next print" in line for line in message.payload)

    await dawn.receive_until(LOG, collect)
    assert [line.split(" ")[1] for line in lines if line.startswith("line ")] == [
        str(i) for i in range(50)]
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the gateway's log"
    await dawn.close()
