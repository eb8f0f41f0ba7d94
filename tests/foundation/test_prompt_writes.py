"""QoS 0 publishes leave in the turn they are made (``runtime.remote.writes.PromptWriter``).

Against both real brokers, with a plain paho subscriber on a network thread of its own, so what
is asserted is what crossed the network, not what the connection believes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Callable

import paho.mqtt.client as paho
from runtime.remote import Connection
from runtime.remote.writes import PromptWriter

from tests.support.wait import wait_for_async


class BareSubscriber:
    """A plain paho client subscribed on its own network thread: it counts the payload bytes
    that arrive, whatever the test's event loop is doing."""

    def __init__(self, url: str, topic: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.received = 0
        self.first = threading.Event()
        #: (bytes, action): ``action()`` runs on the network thread once that many arrived
        self.when: tuple[int, Callable[[], None]] | None = None
        subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(host, int(port))
        self.client.subscribe(topic)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK"

    def _on_message(self, client: paho.Client, userdata: object,
                    message: paho.MQTTMessage) -> None:
        self.received += len(message.payload)
        self.first.set()
        if self.when is not None and self.received >= self.when[0]:
            self.when, (_, action) = None, self.when
            action()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_a_qos0_publish_leaves_without_waiting_for_a_loop_turn(mqtt_broker, robot_name):
    """``publish`` at QoS 0 completes without once giving the event loop back (the coroutine
    finishes on its first step), and the message has left: a subscriber gets it while this
    loop is blocked. aiomqtt's own publish suspended until a later turn wrote the bytes."""
    async with Connection(mqtt_broker.url, robot=robot_name) as connection:
        await connection.wait_connected(20)
        topic = f"test/{robot_name}/prompt"
        bare = await asyncio.to_thread(BareSubscriber, mqtt_broker.url, topic)
        try:
            step = connection.publish(topic, b"now")
            try:
                step.send(None)
            except StopIteration as done:
                assert done.value is True
            else:
                step.close()
                raise AssertionError("publish waited for another loop turn")
            assert bare.first.wait(10), "the PUBLISH did not leave while the loop was blocked"
        finally:
            bare.close()


async def test_a_flood_bigger_than_the_socket_arrives_whole_and_leaves_no_writer_behind(
        mqtt_broker, robot_name, monkeypatch):
    """Publishes that the socket cannot take at once are finished by the writer (each
    ``publish`` returns once its message was written); afterwards nothing keeps the writer
    registered (a writer left on a writable socket would call it again and again)."""
    calls = 0
    original = PromptWriter._write

    def counted(self: PromptWriter) -> None:
        nonlocal calls
        calls += 1
        original(self)

    monkeypatch.setattr(PromptWriter, "_write", counted)
    async with Connection(mqtt_broker.url, robot=robot_name) as connection:
        await connection.wait_connected(20)
        topic = f"test/{robot_name}/flood"
        bare = await asyncio.to_thread(BareSubscriber, mqtt_broker.url, topic)
        assert connection._client is not None
        # a small send buffer: every message needs several writes
        connection._client._client.socket().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        try:
            payload = bytes(range(256)) * 1024  # 256 KiB: more than a socket buffer takes
            results = await asyncio.gather(*(connection.publish(topic, payload)
                                             for _ in range(16)))
            assert all(results)
            expected = 16 * len(payload)
            await wait_for_async(lambda: bare.received >= expected, timeout=30,
                                 message=lambda: f"{bare.received} of {expected} bytes arrived")
            assert calls > 16  # the writer finished what the first writes left
            assert not connection._client._client.want_write()
            settled = calls
            await asyncio.sleep(0.3)  # idle: a writer left registered would be called on
            assert calls == settled
        finally:
            bare.close()


async def test_writes_pending_when_the_broker_dies_end_and_publishing_resumes(
        mqtt_broker, robot_name):
    """Publishes still waiting for the socket when the broker goes away return (False, or True
    if their bytes had left) instead of raising or hanging; once the broker is back, a publish
    reaches a subscriber again."""
    async with Connection(mqtt_broker.url, robot=robot_name) as connection:
        await connection.wait_connected(20)
        topic = f"test/{robot_name}/outage"
        assert connection._client is not None
        connection._client._client.socket().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        payload = bytes(256) * 1024
        pending = [asyncio.ensure_future(connection.publish(topic, payload, timeout=5))
                   for _ in range(32)]
        await asyncio.to_thread(mqtt_broker.stop)
        results = await asyncio.wait_for(asyncio.gather(*pending), 30)
        assert all(isinstance(result, bool) for result in results)
        await asyncio.to_thread(mqtt_broker.start)
        await wait_for_async(lambda: connection.connected.is_set(), timeout=20)
        bare = await asyncio.to_thread(BareSubscriber, mqtt_broker.url, topic)
        try:
            await wait_for_async(lambda: connection.publish(topic, b"back"), timeout=10)
            assert await asyncio.to_thread(bare.first.wait, 10)
        finally:
            bare.close()


async def test_a_publish_returns_once_its_own_message_left_whatever_is_queued_behind_it(
        mosquitto_broker, robot_name):
    """Back-pressure is per message, as aiomqtt's wait for its own ``on_publish`` was: a
    publish whose bytes have left returns True even while a later message is still queued
    behind it (its broker frozen). Waiting for the whole queue to drain made it wait for
    every message published after it, and report a message that left as dropped."""
    async with Connection(mosquitto_broker.url, robot=robot_name) as connection:
        await connection.wait_connected(20)
        topic = f"test/{robot_name}/first"
        bare = await asyncio.to_thread(BareSubscriber, mosquitto_broker.url, topic)
        assert connection._client is not None
        mqtt = connection._client._client
        mqtt.socket().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        broker = mosquitto_broker._process
        assert broker is not None
        first = bytes(range(256)) * 4096  # 1 MiB: more than the frozen broker takes
        # frozen again the moment the first message has crossed it (from the reading thread:
        # the test's loop may be busy writing the later one)
        bare.when = (len(first), lambda: os.kill(broker.pid, signal.SIGSTOP))
        published = later = None
        try:
            os.kill(broker.pid, signal.SIGSTOP)
            published = asyncio.ensure_future(connection.publish(topic, first, timeout=30))
            await wait_for_async(lambda: mqtt.want_write())  # it waits for the socket
            later = asyncio.ensure_future(connection.publish(f"test/{robot_name}/later",
                                                             bytes(8 * 1024 * 1024),
                                                             timeout=30))
            os.kill(broker.pid, signal.SIGCONT)
            await wait_for_async(lambda: published.done() or later.done(), timeout=30)
            # Both done at once: the later one left before the broker froze (nothing to
            # tell), or the frozen session ended (keepalive) and only that released the first.
            assert not later.done() or later.result() is True, \
                "the first publish waited for the later message until its session ended"
            assert published.result() is True
        finally:
            os.kill(broker.pid, signal.SIGCONT)
            bare.close()
            await asyncio.gather(*(f for f in (published, later) if f is not None),
                                 return_exceptions=True)
