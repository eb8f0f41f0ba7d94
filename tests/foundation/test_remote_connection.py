"""The MQTT connection against both real brokers: callbacks, status, will, reconnects."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import pytest
from runtime.exception import MessageError, MQTTConnectionError
from runtime.messages import ServiceStatus, decode
from runtime.remote import BrokerAddress, Client, Connection, Handler, call_sync, rpc

from tests.support.brokers import MosquittoTestBroker
from tests.support.wait import wait_for_async


class Inbox:
    """A callback that records what it gets."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.messages]


class Pinger(Handler):
    @rpc
    async def ping(self) -> str:
        return "pong"


async def connect(broker, robot, **kwargs) -> Connection:
    connection = Connection(broker.url, robot=robot, **kwargs)
    await connection.start()
    await connection.wait_connected(20)
    if connection.service is not None:
        await connection.go_online()
    return connection


async def test_callbacks_get_matching_messages_and_errors_never_kill_the_loop(
    mqtt_broker, robot_name, caplog
):
    async with Connection(mqtt_broker.url, robot=robot_name) as conn:
        await conn.wait_connected(20)
        inbox = Inbox()
        failures = 0

        def broken(topic: str, payload: bytes) -> None:
            nonlocal failures
            failures += 1
            raise RuntimeError("callback bug")

        async def broken_async(topic: str, payload: bytes) -> None:
            raise RuntimeError("async callback bug")

        await conn.subscribe(conn.topics.any_log, broken)
        await conn.subscribe(conn.topics.any_log, broken_async)
        await conn.subscribe(conn.topics.any_log, inbox)
        for i in range(3):
            await conn.publish(conn.topics.log(f"s{i}"), b"%d" % i, qos=1)
        await conn.publish(conn.topics.match, b"not a log", qos=1)
        await wait_for_async(lambda: len(inbox.messages) == 3)
        assert inbox.payloads() == [b"0", b"1", b"2"]
        assert failures == 3
        await wait_for_async(lambda: "async callback bug" in caplog.text)
        assert f"failed on topic runtime/{robot_name}/log/s0" in caplog.text


async def test_plain_callbacks_may_return_coroutines(mqtt_broker, robot_name):
    async with Connection(mqtt_broker.url, robot=robot_name) as conn:
        await conn.wait_connected(20)
        seen: list[bytes] = []

        async def handle(payload: bytes) -> None:
            seen.append(payload)

        await conn.subscribe(conn.topics.match, lambda topic, payload: handle(payload))
        await conn.publish(conn.topics.match, b"m", qos=1)
        await wait_for_async(lambda: seen == [b"m"])


async def test_a_slow_async_callback_does_not_delay_other_subscriptions(mqtt_broker, robot_name):
    async with Connection(mqtt_broker.url, robot=robot_name) as conn:
        await conn.wait_connected(20)
        gate = asyncio.Event()
        slow_seen: list[bytes] = []
        fast = Inbox()

        async def slow(topic: str, payload: bytes) -> None:
            await gate.wait()
            slow_seen.append(payload)

        await conn.subscribe(conn.topics.log("slow"), slow)
        await conn.subscribe(conn.topics.log("fast"), fast)
        for i in range(3):
            await conn.publish(conn.topics.log("slow"), b"%d" % i, qos=1)
        await conn.publish(conn.topics.log("fast"), b"x", qos=1)
        await wait_for_async(lambda: fast.payloads() == [b"x"])
        assert slow_seen == []
        gate.set()
        await wait_for_async(lambda: slow_seen == [b"0", b"1", b"2"])  # in order


async def test_service_status_online_then_offline_on_clean_exit(mqtt_broker, robot_name):
    async with Connection(mqtt_broker.url, robot=robot_name) as watcher:
        await watcher.wait_connected(20)
        inbox = Inbox()
        await watcher.subscribe(watcher.topics.status("svc"), inbox, qos=1)
        service = await connect(mqtt_broker, robot_name, service="svc")
        await wait_for_async(lambda: inbox.messages)
        online = decode(ServiceStatus, inbox.messages[-1][1])
        assert online.state == "online"
        assert online.pid == os.getpid()
        await service.close()
        await wait_for_async(lambda: decode(ServiceStatus, inbox.messages[-1][1]).state
                             == "offline")
    # retained: a late subscriber sees the last state at once
    async with Connection(mqtt_broker.url, robot=robot_name) as late:
        inbox = Inbox()
        await late.subscribe(late.topics.status("svc"), inbox, qos=1)
        await wait_for_async(lambda: inbox.messages)
        assert decode(ServiceStatus, inbox.messages[0][1]).state == "offline"


VICTIM = """
import asyncio, sys
from runtime.remote import Connection

async def main():
    async with Connection(sys.argv[1], robot=sys.argv[2], service="victim", keepalive=60) as c:
        await c.go_online()
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_last_will_marks_a_killed_service_offline(mqtt_broker, robot_name):
    async with Connection(mqtt_broker.url, robot=robot_name) as watcher:
        await watcher.wait_connected(20)
        states: list[ServiceStatus] = []
        await watcher.subscribe(
            watcher.topics.status("victim"),
            lambda topic, payload: states.append(decode(ServiceStatus, payload)),
            qos=1,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", VICTIM, mqtt_broker.url, robot_name,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line.strip() == b"ready"
            await wait_for_async(lambda: states and states[-1].state == "online")
            assert states[-1].pid == process.pid
            process.send_signal(signal.SIGKILL)
            await process.wait()
            # keepalive is 60 s: only the closed socket can trigger the will this fast
            await wait_for_async(lambda: states[-1].state == "offline", timeout=20)
            assert states[-1].pid == process.pid
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_service_reconnects_and_resubscribes_after_a_broker_restart(
    mqtt_broker, robot_name
):
    async with Connection(mqtt_broker.url, robot=robot_name, service="pinger") as service, \
            Connection(mqtt_broker.url, robot=robot_name) as caller:
        await service.wait_connected(20)
        await caller.wait_connected(20)
        await Pinger().serve(service)
        await service.go_online()
        client = Client(caller)
        assert await client.call("pinger", "ping", timeout=20) == "pong"

        await asyncio.to_thread(mqtt_broker.stop)
        await wait_for_async(lambda: not service.connected.is_set(), timeout=20)
        assert await caller.publish(caller.topics.log("x"), b"lost", qos=0) is False
        await asyncio.to_thread(mqtt_broker.start)

        await service.wait_connected(20)
        await caller.wait_connected(20)
        assert await client.call("pinger", "ping", timeout=20) == "pong"
        status = Inbox()
        await caller.subscribe(caller.topics.status("pinger"), status, qos=1)
        await wait_for_async(lambda: status.messages)  # re-published after the restart
        assert decode(ServiceStatus, status.messages[-1][1]).state == "online"


async def test_qos1_publish_waits_for_the_reconnect(mqtt_broker, robot_name):
    async with Connection(mqtt_broker.url, robot=robot_name) as receiver, \
            Connection(mqtt_broker.url, robot=robot_name) as sender:
        await receiver.wait_connected(20)
        await sender.wait_connected(20)
        inbox = Inbox()
        await receiver.subscribe(receiver.topics.log("q"), inbox, qos=1)
        await asyncio.to_thread(mqtt_broker.stop)
        await wait_for_async(lambda: not sender.connected.is_set(), timeout=20)
        # retained, so the receiver gets it whichever of the two reconnects first
        publish = asyncio.ensure_future(
            sender.publish(sender.topics.log("q"), b"kept", qos=1, retain=True, timeout=30)
        )
        await asyncio.to_thread(mqtt_broker.start)
        await receiver.wait_connected(20)
        assert await publish is True
        # QoS 1 is at least once: a resubscription may also bring the retained copy again
        await wait_for_async(lambda: set(inbox.payloads()) == {b"kept"}, timeout=20)


async def test_subscribe_retained_returns_with_every_retained_message(mqtt_broker, robot_name):
    """No wait to guess: when it returns, the callback has had every retained message (a plain
    ``subscribe`` returns on the SUBACK, before the broker sends them)."""
    async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as publisher:
        for index in range(30):
            await publisher.publish(publisher.topics.status(f"s{index}"), b"%d" % index, qos=1,
                                    retain=True)
    async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as looker:
        inbox = Inbox()
        await looker.subscribe_retained(looker.topics.any_status, inbox)
        assert {topic for topic, _ in inbox.messages} == {
            looker.topics.status(f"s{index}") for index in range(30)}


async def test_an_unsubscribe_during_a_reconnect_reaches_the_broker(mqtt_broker, robot_name):
    """Between a reconnect's CONNACK and the SUBACK of its re-sent subscriptions the session
    is in progress but not marked connected: an unsubscribe then must still tell the broker,
    or it keeps sending what nobody asked for until the next reconnect."""
    async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as looker, \
            Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as sender:
        dropped, barrier = f"test/{robot_name}/dropped", f"test/{robot_name}/barrier"
        inbox = Inbox()
        await looker.subscribe(dropped, inbox)
        await looker.subscribe(barrier, inbox)
        assert looker._client is not None
        mqtt = looker._client._client
        dispatch = mqtt.on_message
        arrived: list[str] = []  # every topic the broker sent, matched or not

        def on_message(client, userdata, message) -> None:
            arrived.append(message.topic)
            dispatch(client, userdata, message)

        mqtt.on_message = on_message
        looker.connected.clear()  # the window of a reconnect: session in progress, not marked
        await looker.unsubscribe(dropped)
        looker.connected.set()
        await sender.publish(dropped, b"x", qos=1)
        await sender.publish(barrier, b"y", qos=1)  # same publisher, so it comes after
        await wait_for_async(lambda: barrier in arrived)
        assert dropped not in arrived


async def test_publish_while_disconnected_is_bounded(robot_name):
    from runtime.mqtt_server import free_port

    conn = Connection(f"mqtt://127.0.0.1:{free_port()}", robot=robot_name, connect_timeout=0)
    async with conn:
        await wait_for_async(lambda: conn.last_reason)  # the first attempt was refused
        assert await conn.publish(conn.topics.match, b"x", qos=0) is False
        assert conn.dropped == 1
        with pytest.raises(MQTTConnectionError, match=r"could not publish .* within 0\.2 s"):
            await conn.publish(conn.topics.match, b"x", qos=1, timeout=0.2)
        with pytest.raises(MQTTConnectionError, match=r"within 0\.2 s: connection refused"):
            await conn.wait_connected(0.2)
        with pytest.raises(MessageError, match="wildcards"):
            await conn.publish("runtime/+/x", b"")


async def test_a_refused_login_is_one_clear_error_and_retried(robot_name, tmp_path, caplog):
    broker = MosquittoTestBroker(anonymous=False)
    broker.start()
    try:
        password_file = tmp_path / "password"
        password_file.write_text("wrong\n")
        url = f"mqtt://alice@127.0.0.1:{broker.port}"
        caplog.set_level(logging.WARNING, logger="runtime.remote")
        async with Connection(url, robot=robot_name, password_file=password_file,
                              connect_timeout=0) as conn:
            with pytest.raises(MQTTConnectionError) as info:
                await conn.wait_connected(20)
            assert str(info.value).startswith(
                f"broker 127.0.0.1:{broker.port} refused user 'alice': not authori")
            await wait_for_async(lambda: conn.last_error is not None)
            # retried: refusal after refusal ...
            await wait_for_async(lambda: conn.failed_attempts >= 3)
            # ... and the log said it once
            attempts = [r for r in caplog.records if "refused user 'alice'" in r.getMessage()]
            assert len(attempts) == 1
    finally:
        broker.close()


def test_call_sync_from_plain_code(mqtt_broker, robot_name):
    """What command-line tools use: no event loop of their own."""

    async def serve(ready: asyncio.Event, stop: asyncio.Event) -> None:
        async with Connection(mqtt_broker.url, robot=robot_name, service="pinger") as conn:
            await conn.wait_connected(20)
            await Pinger().serve(conn)
            ready.set()
            await stop.wait()

    import threading

    loop = asyncio.new_event_loop()
    ready, stop = asyncio.Event(), asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(ready, stop),))
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(ready.wait(), loop).result(30)
        assert call_sync(mqtt_broker.url, "pinger", "ping", robot=robot_name, timeout=20) == "pong"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def test_broker_urls():
    assert BrokerAddress.parse("mqtt://10.0.0.2:1884") == BrokerAddress("10.0.0.2", 1884)
    assert BrokerAddress.parse("localhost") == BrokerAddress("localhost", 1883)
    address = BrokerAddress.parse("mqtt://dr%40ver:p%3Ass@host:1")
    assert (address.username, address.password) == ("dr@ver", "p:ss")
    assert "p:ss" not in repr(address)
    for bad, why in [("http://h:1", "scheme 'http'"), ("mqtt://h:99999", "bad port"),
                     ("mqtt://:1", "no host"), ("mqtt://h:1/x", "path")]:
        with pytest.raises(MQTTConnectionError, match=why):
            BrokerAddress.parse(bad)


def test_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert BrokerAddress.parse("mqtt://u@h", secret).password == "s3cret"
    with pytest.raises(MQTTConnectionError, match="cannot read MQTT password file"):
        BrokerAddress.parse("mqtt://u@h", tmp_path / "missing")


async def test_connection_refuses_bad_names_and_filters(robot_name):
    with pytest.raises(MessageError, match="client id"):
        Connection("mqtt://h", client_id="a/b")
    conn = Connection("mqtt://127.0.0.1:1", robot=robot_name, connect_timeout=0)
    for bad in ["a/#/b", "a/b+", "", "a#"]:
        with pytest.raises(MessageError, match="invalid topic filter"):
            await conn.subscribe(bad, lambda t, p: None)
