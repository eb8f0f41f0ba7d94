"""The broker service's console history (``broker.console``, what ``runtime console --since``
shows) must stay bounded whatever students print. Found by the breaker: 300 student records of
1 MB (a ``print(big_list)`` in ``teleop_main``; the executor's flood control counts lines, not
characters) grew the broker service from 45 MB to 630 MB (up to 2000 such records are kept:
2 GB, more than a robot has) and ``broker.console`` no longer answered within 5 s.

Real parts: a ``Broker`` on the embedded MQTT broker; records are published on
``log/student`` as the executor publishes a print.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime.messages import LogRecord, encode
from runtime.remote import Client, Connection
from runtime.service.broker import Broker
from runtime.studentconsole import HISTORY_CHARS, MAX_RECORD_CHARS

from tests.support.brokers import TestBroker
from tests.support.wait import wait_for_async


@pytest.fixture
async def console(amqtt_broker: TestBroker, robot_name: str,
                  tmp_path: Path) -> AsyncIterator[tuple[Broker, Connection, Client]]:
    async with Connection(amqtt_broker.url, robot=robot_name, service="broker") as service:
        broker = Broker(None, state_dir=tmp_path / "state")
        # only what the console needs: the history's subscription and RPC (no buffers here)
        await service.subscribe(service.topics.any_log, broker.history.on_log)
        await broker.serve(service)
        async with Connection(amqtt_broker.url, robot=robot_name) as client:
            await client.wait_connected(10)
            yield broker, client, Client(client)


async def student_print(connection: Connection, text: str, ts: float | None = None) -> None:
    record = LogRecord(ts=time.time() if ts is None else ts, level="INFO", logger="student",
                       message=text)
    await connection.publish(connection.topics.log("student"), encode(record), qos=1)


async def test_huge_prints_are_kept_cut_short_and_the_history_stays_bounded(
        console: tuple[Broker, Connection, Client]) -> None:
    broker, connection, client = console
    size = 200_000
    count = 3 * HISTORY_CHARS // MAX_RECORD_CHARS
    for index in range(count):
        await student_print(connection, f"big {index} " + "x" * size)
    await student_print(connection, "the last print")
    await wait_for_async(lambda: any(r.message == "the last print"
                                     for _, r in broker.history.records), timeout=60)
    records = await client.call("broker", "console", timeout=30)
    assert records[-1]["message"] == "the last print"
    bigs = [r["message"] for r in records if r["message"].startswith("big ")]
    assert bigs, "every big print was forgotten"
    assert all(len(m) <= MAX_RECORD_CHARS + 60 and m.endswith("more characters)")
               for m in bigs)
    assert sum(len(r["message"]) for r in records) <= HISTORY_CHARS + MAX_RECORD_CHARS + 60
    # the newest are kept, in order
    numbers = [int(m.split(" ")[1]) for m in bigs]
    assert numbers == sorted(numbers) and numbers[-1] == count - 1

