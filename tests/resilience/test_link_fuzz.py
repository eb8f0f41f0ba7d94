"""10,000 fuzzed messages to the services of ``runtime up`` (issue 11 item 7).

On every topic the service subscribes to: random bytes, wrong schemas, huge and empty payloads,
wrong types; and RPC requests whose arguments cannot fit. Expected: every RPC request with a
usable ``reply_to`` gets exactly one ``ok: false`` reply, no service crashes or logs a
traceback, each still answers a good call afterwards, and its RSS stays within 10% of what it
was after a warm-up round.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import cbor2
import psutil
import pytest
from runtime.remote import Client, Connection

from tests.e2e.robot import RunningRobot
from tests.resilience import fuzz
from tests.resilience.rig import KOALA, service_pids
from tests.support.wait import wait_for_async

pytestmark = pytest.mark.slow

MESSAGES = {"broker": 4_000, "device": 3_000, "executor": 3_000}  # 10,000 in all
WARM_UP = 500
METHODS = {
    "broker": ["get_option", "set_option", "set_alias", "del_alias", "list_aliases", "lint",
               "button_params", "no_such_method"],
    "device": ["list", "ping", "disable", "read", "subscribe", "heartbeat", "no_such_method"],
    "executor": ["set_mode", "get_mode", "upload", "no_such_method"],
}
GOOD_CALLS = {"broker": "list_aliases", "device": "list", "executor": "get_mode"}


def topics_of(connection: Connection, service: str) -> list[str]:
    """The non-RPC topics ``service`` subscribes to (plus near misses of their filters)."""
    t = connection.topics
    return {
        "broker": [t.gamepad(0), t.gamepad(3), t.prefix + "input/gamepad/x", t.keyboard,
                   t.device_info(KOALA), t.prefix + "device/notauid/info", t.status("device")],
        "device": [t.match, t.status("executor")],
        "executor": [],
    }[service]


class Replies:
    def __init__(self) -> None:
        self.by_id: dict[str, list[dict]] = {}

    def __call__(self, topic: str, payload: bytes) -> None:
        reply = cbor2.loads(payload)
        self.by_id.setdefault(str(reply.get("id")), []).append(reply)


async def fuzz_service(connection: Connection, replies: Replies, rng: random.Random,
                       service: str, count: int, start: int) -> set[str]:
    """Send ``count`` fuzzed messages to ``service``; the ids of the RPC requests sent.

    Sent in batches of 50, each once the last batch's requests are answered: a service
    flooded faster than it reads would hold a backlog, and RSS would measure that, not leaks.
    """
    reply_to = connection.topics.reply(connection.client_id) + "/fuzz"
    others = topics_of(connection, service)
    ids: set[str] = set()
    batch: set[str] = set()
    pending = []
    for n in range(start, start + count):
        roll = rng.random()
        if others and roll < 0.5:
            pending.append(connection.publish(rng.choice(others), fuzz.junk(rng), qos=1))
        else:
            topic = connection.topics.rpc(service, rng.choice(METHODS[service]))
            if roll < 0.6:
                payload = fuzz.junk(rng)  # no usable reply_to: logged, never answered
            else:
                request_id = f"{service}-{n}"
                batch.add(request_id)
                payload = fuzz.rpc_request(rng, request_id, reply_to)
            pending.append(connection.publish(topic, payload, qos=1))
        if len(pending) >= 50:
            await asyncio.gather(*pending)
            pending.clear()
            await answered(replies, batch, service)
            ids |= batch
            batch = set()
    await asyncio.gather(*pending)
    await answered(replies, batch, service)
    return ids | batch


async def answered(replies: Replies, ids: set[str], service: str) -> None:
    await wait_for_async(lambda: all(i in replies.by_id for i in ids), timeout=60,
                         message=lambda: f"{service}: {sum(i not in replies.by_id for i in ids)}"
                         " RPC requests got no reply")


async def fuzz_and_check(connection: Connection, client: Client, replies: Replies,
                         rng: random.Random, service: str, process: psutil.Process) -> str:
    """Fuzz one service, check it; its figures."""
    started = time.monotonic()
    # The warm-up reaches the high-water marks first: huge payloads on every topic.
    rpc_topics = [connection.topics.rpc(service, method) for method in METHODS[service]]
    for topic in topics_of(connection, service) + rpc_topics:
        for _ in range(3):
            await connection.publish(topic, rng.randbytes(fuzz.HUGE), qos=1)
    ids = await fuzz_service(connection, replies, rng, service, WARM_UP, 0)
    await answered(replies, ids, service)
    warm_rss = process.memory_info().rss
    ids |= await fuzz_service(connection, replies, rng, service, MESSAGES[service] - WARM_UP,
                              WARM_UP)
    await answered(replies, ids, service)
    assert all(len(replies.by_id[i]) == 1 for i in ids)  # exactly one reply each
    assert all(replies.by_id[i][0]["ok"] is False for i in ids)
    # still serving, same process, memory flat
    assert await client.call(service, GOOD_CALLS[service], timeout=20) is not None
    assert process.is_running()
    rss = process.memory_info().rss
    assert rss <= warm_rss * 1.10, f"{service} RSS {warm_rss} -> {rss}"
    return (f"{service}: {MESSAGES[service]} messages ({len(ids)} RPCs) in "
            f"{time.monotonic() - started:.1f} s, RSS {warm_rss >> 20} -> {rss >> 20} MiB")


async def test_fuzzed_messages_on_every_subscribed_topic(tmp_path, monkeypatch):
    # glibc raises its mmap threshold after freeing a big block, so later 256 KiB payloads
    # come from the heap and fragment it: RSS then grows without any leak. A fixed threshold
    # keeps RSS a measure of live memory.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    robot = RunningRobot("fuzz" + os.urandom(3).hex(), tmp_path, "--simulate", "KoalaBear:42")
    robot.wait_until_up()
    rng = random.Random(11)
    figures = []
    try:
        processes = {name: psutil.Process(pid) for name, pid in service_pids(robot).items()}
        async with Connection(robot.url, robot=robot.robot, connect_timeout=20) as connection:
            replies = Replies()
            await connection.subscribe(connection.topics.reply_filter(connection.client_id),
                                       replies, qos=1)
            client = Client(connection)
            for service in sorted(METHODS):
                figures.append(await fuzz_and_check(connection, client, replies, rng, service,
                                                    processes[service]))
        assert service_pids(robot) == {name: p.pid for name, p in processes.items()}
        assert "Traceback" not in robot.output(), robot.output()[-5000:]
        print("fuzz: " + "; ".join(figures))
    finally:
        assert robot.stop() == 0
