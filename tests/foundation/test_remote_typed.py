"""Typed subscriptions and the library's one complaint limiter, backoff and task set."""

from __future__ import annotations

import asyncio
import logging

import pytest
from runtime.backoff import Backoff
from runtime.complaints import Complaints
from runtime.messages import Match, encode
from runtime.remote import Connection
from runtime.tasks import TaskSet

from tests.support.wait import wait_for_async


async def test_a_typed_subscription_decodes_once_and_complains_once(mqtt_broker, robot_name,
                                                                     caplog):
    caplog.set_level(logging.WARNING, logger="runtime.remote")
    async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as conn:
        sync_seen: list[tuple[str, Match | None]] = []
        async_seen: list[Match | None] = []

        async def on_match(topic: str, match: Match | None) -> None:
            async_seen.append(match)

        await conn.subscribe_typed(conn.topics.match, Match,
                                   lambda topic, match: sync_seen.append((topic, match)), qos=1)
        await conn.subscribe_typed(conn.topics.match, Match, on_match, qos=1)
        good = Match(mode="teleop", since=1.0)
        await conn.publish(conn.topics.match, b"\xff not cbor", qos=1)
        for _ in range(5):
            await conn.publish(conn.topics.match, encode({"mode": 3}), qos=1)  # wrong type
        await conn.publish(conn.topics.match, good, qos=1)
        await conn.publish(conn.topics.match, b"", qos=1)  # cleared: None
        await wait_for_async(lambda: len(sync_seen) == 2 and len(async_seen) == 2)
        assert sync_seen == [(conn.topics.match, good), (conn.topics.match, None)]
        assert async_seen == [good, None]
        # 12 bad deliveries (6 per callback): one line, the rest counted
        lines = [r for r in caplog.records if "bad Match message" in r.getMessage()]
        assert len(lines) == 1
        assert lines[0].getMessage().startswith(
            f"ignoring a bad Match message on {conn.topics.match}: ")
        assert conn.complaints.held(conn.topics.match) == 11

        await conn.unsubscribe(conn.topics.match, on_match)
        await conn.publish(conn.topics.match, good, qos=1)
        await wait_for_async(lambda: len(sync_seen) == 3)
        assert len(async_seen) == 2  # unsubscribed by the callback it was given


def test_complaints_log_once_per_interval_and_count_the_rest(caplog):
    logger = logging.getLogger("test.complaints")
    complaints = Complaints(logger, interval=3600)
    with caplog.at_level(logging.WARNING, logger="test.complaints"):
        assert complaints.report("a", "bad a")
        assert not complaints.report("a", "bad a again")
        assert complaints.report("b", "bad b")  # another key: its own line
        assert complaints.held("a") == 1
        complaints.interval = 0  # the interval is over
        assert complaints.report("a", "bad a, later")
    assert [r.getMessage() for r in caplog.records] == [
        "bad a", "bad b", "bad a, later (1 more since the last report)"]


def test_backoff_doubles_to_its_cap_and_starts_over():
    backoff = Backoff(0.1, 1.0)
    assert [backoff.next() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.1
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


async def test_a_task_set_holds_logs_and_cancels(caplog):
    tasks = TaskSet(logging.getLogger("test.tasks"))
    release = asyncio.Event()

    async def fail() -> None:
        raise RuntimeError("task bug")

    waiting = tasks.spawn(release.wait(), name="waiting")
    tasks.spawn(fail(), name="failing")
    await wait_for_async(lambda: len(tasks) == 1)
    assert "task failing failed" in caplog.text and "task bug" in caplog.text
    await tasks.cancel_all()
    assert waiting.cancelled() and len(tasks) == 0


async def test_a_task_that_cancels_its_set_finishes_its_own_work():
    """A device session closing itself from one of its own tasks: the siblings stop, the
    caller goes on (cancelling and awaiting itself would end it half-way)."""
    tasks = TaskSet(logging.getLogger("test.tasks"))
    sibling = tasks.spawn(asyncio.Event().wait(), name="sibling")
    finished = asyncio.Event()

    async def closer() -> None:
        await tasks.cancel_all()
        finished.set()

    own = tasks.spawn(closer(), name="closer")
    await own
    assert finished.is_set() and sibling.cancelled() and not own.cancelled()


async def test_a_flood_of_concurrent_callbacks_is_bounded(mqtt_broker, robot_name, caplog,
                                                         monkeypatch):
    from runtime.remote import connection as module

    monkeypatch.setattr(module, "CONCURRENT_LIMIT", 10)
    async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as conn:
        release = asyncio.Event()
        started: list[bytes] = []

        async def slow(topic: str, payload: bytes) -> None:
            started.append(payload)
            await release.wait()

        await conn.subscribe(conn.topics.any_log, slow, qos=1, concurrent=True)
        for i in range(25):
            await conn.publish(conn.topics.log("flood"), b"%d" % i, qos=1)
        await wait_for_async(lambda: "dropping a message" in caplog.text)
        assert len(started) == 10  # the rest were dropped, not queued without bound
        release.set()
        await wait_for_async(lambda: not conn._tasks or all(
            "callback" not in t.get_name() for t in conn._tasks))
        await conn.publish(conn.topics.log("flood"), b"after", qos=1)
        await wait_for_async(lambda: started[-1:] == [b"after"])  # serving again
