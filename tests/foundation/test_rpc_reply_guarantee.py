"""The RPC reply guarantee at its edges, written to kill mutants that
``./run mutate shared/runtime/remote/rpc.py`` found surviving (docs/testing.md):

- a request whose ``reply_to`` is outside the client reply tree is dropped with a warning and
  never answered anywhere (a service must not publish onto ``match`` because a request said so);
- bytes that are not CBOR are dropped with one warning (nobody to answer), not left to the
  connection's last-resort callback guard;
- a ``blocking=True`` method runs off the event loop: while it blocks, the service still
  answers other calls (here: the one that unblocks it).
"""

from __future__ import annotations

import asyncio
import logging
import threading

import cbor2
import pytest
from runtime.remote import Client, Connection, Handler, rpc

from tests.support.wait import wait_for_async


class Echo(Handler):
    def __init__(self) -> None:
        self.released = threading.Event()
        self.waiting = threading.Event()

    @rpc
    async def echo(self, value: int) -> int:
        return value

    @rpc(blocking=True)
    def wait_for_release(self) -> bool:
        """Blocks its thread until ``release`` is called (or 20 s pass)."""
        self.waiting.set()
        return self.released.wait(20)

    @rpc
    async def release(self) -> None:
        self.released.set()


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


async def test_bytes_that_are_not_cbor_are_dropped_with_one_warning(amqtt_broker, robot_name,
                                                                    caplog):
    caplog.set_level(logging.WARNING)
    async with Connection(amqtt_broker.url, robot=robot_name, service="echo") as service_side, \
            Connection(amqtt_broker.url, robot=robot_name) as client_side:
        await service_side.wait_connected(20)
        await client_side.wait_connected(20)
        await Echo().serve(service_side)
        await client_side.publish(client_side.topics.rpc("echo", "echo"), b"\xff\x00garbage",
                                  qos=1)
        await wait_for_async(lambda: [r for r in caplog.records
                                      if "no reply possible" in r.getMessage()], timeout=20)
        assert await Client(client_side).call("echo", "echo", 3) == 3
    assert [r for r in caplog.records if r.name == "runtime.remote.rpc"
            and "echo.echo" in r.getMessage()] != []


async def test_a_blocking_method_runs_off_the_loop(amqtt_broker, robot_name):
    async with Connection(amqtt_broker.url, robot=robot_name, service="echo") as service_side, \
            Connection(amqtt_broker.url, robot=robot_name) as client_side:
        await service_side.wait_connected(20)
        await client_side.wait_connected(20)
        echo = Echo()
        await echo.serve(service_side)
        client = Client(client_side)
        waiting = asyncio.ensure_future(client.call("echo", "wait_for_release", timeout=30))
        await wait_for_async(echo.waiting.is_set, timeout=20)
        await client.call("echo", "release", timeout=30)  # answered while the other blocks
        assert await waiting is True


async def test_a_reply_that_cannot_be_sent_is_logged_and_the_service_lives_on(
        amqtt_broker, robot_name, caplog):
    caplog.set_level(logging.WARNING)
    async with Connection(amqtt_broker.url, robot=robot_name, service="echo") as service_side, \
            Connection(amqtt_broker.url, robot=robot_name) as client_side:
        await service_side.wait_connected(20)
        await client_side.wait_connected(20)
        await Echo().serve(service_side)
        topics = client_side.topics
        too_long = topics.reply("c") + "/" + "x" * 70_000  # over MQTT's 65,535-byte topic limit
        await client_side.publish(topics.rpc("echo", "echo"),
                                  cbor2.dumps({"id": 1, "reply_to": too_long, "args": [1]}),
                                  qos=1)
        await wait_for_async(lambda: [r for r in caplog.records
                                      if "could not send the reply" in r.getMessage()],
                             timeout=20)
        assert await Client(client_side).call("echo", "echo", 4) == 4
