"""A client sending garbage RPC requests in a loop must not flood the service's log.

Found by the breaker: every request without a usable ``reply_to`` (bad CBOR, an empty payload,
a map without ``reply_to``) logged one WARNING line, so a broken client looping at MQTT speed
wrote thousands of lines a second into every service's log (and its ``log/<service>`` topic).
Now such drops are said once every 10 s per method, with a count; good requests are still
answered.

Real parts: the embedded MQTT broker, a ``Handler`` serving on it, a raw client.
"""

from __future__ import annotations

import logging

import cbor2
import pytest
from runtime.remote import Client, Connection, Handler, rpc

from tests.support.brokers import TestBroker


class Echo(Handler):
    service_name = "echo"

    @rpc
    def echo(self, text: str) -> str:
        return text


async def test_garbage_requests_are_reported_once_with_a_count_and_good_ones_answered(
        amqtt_broker: TestBroker, robot_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.remote.rpc")
    async with Connection(amqtt_broker.url, robot=robot_name, service="echo") as service:
        await Echo().serve(service)
        async with Connection(amqtt_broker.url, robot=robot_name) as connection:
            client = Client(connection)
            topic = connection.topics.rpc("echo", "echo")
            garbage = [b"", b"\xff\xff", cbor2.dumps([1]), cbor2.dumps({"id": 1}),
                       cbor2.dumps({"id": 1, "reply_to": "elsewhere/" + "x" * 5000})]
            for _ in range(60):
                for payload in garbage:
                    await connection.publish(topic, payload, qos=1)
            assert await client.call("echo", "echo", "still here") == "still here"
    dropped = [r.getMessage() for r in caplog.records if "request dropped" in r.getMessage()]
    assert len(dropped) == 1, dropped[:3]
    assert all(len(line) < 400 for line in dropped)
