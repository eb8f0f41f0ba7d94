"""The RPC reply guarantee at its edge: a request whose ``reply_to`` is outside the client reply
tree is dropped with a warning and never answered anywhere (a service must not publish onto
``match`` or any other topic because a request said so). Written to kill a mutant that
``./run mutate shared/runtime/remote/rpc.py`` found surviving (docs/testing.md)."""

from __future__ import annotations

import logging

import cbor2
import pytest
from runtime.remote import Client, Connection, Handler, rpc

from tests.support.wait import wait_for_async


class Echo(Handler):
    @rpc
    async def echo(self, value: int) -> int:
        return value


@pytest.mark.parametrize("reply_to", ["match", "elsewhere/replies", "reply/+/x"])
async def test_a_reply_to_outside_the_reply_tree_is_dropped_and_logged(
        amqtt_broker, robot_name, caplog, reply_to):
    caplog.set_level(logging.WARNING, logger="runtime.remote.rpc")
    async with Connection(amqtt_broker.url, robot=robot_name, service="echo") as service_side, \
            Connection(amqtt_broker.url, robot=robot_name) as client_side:
        await service_side.wait_connected(20)
        await client_side.wait_connected(20)
        await Echo().serve(service_side)
        topics = client_side.topics
        elsewhere: list[bytes] = []
        await client_side.subscribe(topics.prefix + reply_to.replace("+", "c"),
                                    lambda t, p: elsewhere.append(p), qos=1)
        target = topics.prefix + reply_to
        await client_side.publish(topics.rpc("echo", "echo"),
                                  cbor2.dumps({"id": "stray", "reply_to": target, "args": [1]}),
                                  qos=1)
        dropped = await wait_for_async(lambda: [r for r in caplog.records
                                                if "request dropped" in r.getMessage()],
                                       timeout=20, message="the stray request was not dropped")
        assert target in dropped[0].getMessage()
        client = Client(client_side)
        assert await client.call("echo", "echo", 2) == 2  # the service still answers
    assert elsewhere == []
