"""A reconnect storm on the gateway must not become a storm of ``set_mode`` calls.

Found by the breaker: 500 connections to the gateway (every fifth a Dawn that sends TELEOP and
hangs up) made 500 concurrent ``executor.set_mode`` calls (each disconnect asks for idle, each
TELEOP for teleop): the executor and the embedded broker fell behind (hundreds of "no reply from
executor.set_mode within 2 s", amqtt PUBACK timeouts), and the executor ended stuck (its
liveness counter stopped; the device service held the motors). Any host that reaches TCP 8101
can do this.

Now the gateway's ``set_mode`` calls are serialised and coalesced: at most one in flight, the
latest request wins (a stop asked after a start replaces it), and every request returns once a
call made after it has completed.

Real parts: the embedded broker, a ``Gateway`` on a free port, raw TCP clients. ``set_mode``
is the gateway's documented stand-in for the executor call, here one that takes 20 ms as a busy
executor would and records what it was asked.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runtime.remote import Connection
from runtime.service.gateway import Gateway
from runtime.service.gateway.proto import pie_client_pb2 as pb

from tests.support.brokers import TestBroker
from tests.support.wait import wait_for_async

HEADER = struct.Struct("<BH")
RUN_MODE, DAWN = 0, 1


class Executor:
    """Records ``set_mode`` calls and how many ran at once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = 0
        self.most_at_once = 0

    async def set_mode(self, mode: str, **kwargs: Any) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(0.02)  # a busy executor's round trip (simulated latency)
            self.calls.append(mode)
        finally:
            self.running -= 1


@pytest.fixture
async def rig(amqtt_broker: TestBroker, robot_name: str) -> AsyncIterator[tuple[Gateway,
                                                                                 Executor]]:
    executor = Executor()
    async with Connection(amqtt_broker.url, robot=robot_name, service="gateway") as connection:
        await connection.wait_connected(10)
        gateway = Gateway("127.0.0.1", 0, set_mode=executor.set_mode)
        await gateway.start(connection)
        try:
            yield gateway, executor
        finally:
            await gateway.stop()


async def dawn_teleop_and_gone(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    body = pb.RunMode(mode=pb.TELEOP).SerializeToString()
    writer.write(bytes([DAWN]) + HEADER.pack(RUN_MODE, len(body)) + body)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_a_reconnect_storm_makes_one_set_mode_at_a_time_ending_idle(
        rig: tuple[Gateway, Executor]) -> None:
    gateway, executor = rig
    await asyncio.gather(*(dawn_teleop_and_gone(gateway.port) for _ in range(200)))
    await wait_for_async(lambda: not gateway.links and executor.calls
                         and executor.calls[-1] == "idle" and executor.running == 0,
                         timeout=30, message=lambda: f"calls {executor.calls[-5:]}")
    assert executor.most_at_once == 1
    # every link's disconnect was covered by an idle sent after it: the robot ends idle
    assert executor.calls[-1] == "idle"


async def test_idle_after_a_pending_teleop_wins(rig: tuple[Gateway, Executor]) -> None:
    """The latest request wins: a stop asked while a start waits replaces the start."""
    gateway, executor = rig
    first = asyncio.create_task(gateway._change_mode(None, "auto"))
    await wait_for_async(lambda: executor.running == 1)
    teleop = asyncio.create_task(gateway._change_mode(None, "teleop"))
    idle = asyncio.create_task(gateway._change_mode(None, "idle"))
    await asyncio.gather(first, teleop, idle)
    assert executor.calls == ["auto", "idle"]
