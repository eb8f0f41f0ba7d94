"""``online`` means ready, retained state survives a broker restart, a late broker is waited for.

Against both real brokers: the service status is published only by ``go_online()`` (after the
subscriptions are acknowledged), ``on_connected`` hooks re-publish retained state after every
reconnect before ``online`` is published again, and ``go_online()`` waits for a broker that is
not up yet, saying so in the log.
"""

from __future__ import annotations

import asyncio
import logging

from runtime.messages import ServiceStatus, decode
from runtime.remote import Client, Connection, Handler, rpc

from tests.support.wait import wait_for_async


class Pinger(Handler):
    @rpc
    async def ping(self) -> str:
        return "pong"


def states(messages: list[bytes]) -> list[str]:
    return [decode(ServiceStatus, payload).state for payload in messages if payload]


async def test_a_call_made_the_moment_online_is_seen_is_answered(mqtt_broker, robot_name):
    """Each time a fresh service comes up, a request published from inside the status
    callback (no await before it) is answered: nothing says online before SUBACK."""
    async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as caller:
        client = Client(caller)
        await client.start()
        answers: list[asyncio.Task[object]] = []
        seen: list[bytes] = []

        def on_status(topic: str, payload: bytes) -> None:
            seen.append(payload)
            if payload and decode(ServiceStatus, payload).state == "online":
                answers.append(caller.spawn(client.call("pinger", "ping", timeout=10)))

        await caller.subscribe(caller.topics.status("pinger"), on_status, qos=1)
        for round_ in range(5):
            async with Connection(mqtt_broker.url, robot=robot_name, service="pinger",
                                  connect_timeout=20) as service:
                await Pinger().serve(service)
                assert states(seen).count("online") == round_  # nothing said before go_online
                await service.go_online()
                await wait_for_async(lambda n=round_ + 1: len(answers) == n)
                assert await answers[-1] == "pong"
            await wait_for_async(lambda: states(seen)[-1] == "offline")


async def test_hooks_republish_retained_state_after_a_broker_restart(mqtt_broker, robot_name):
    """A broker restart loses retained messages: the hook puts them back, before ``online``."""
    async with Connection(mqtt_broker.url, robot=robot_name, service="keeper",
                          connect_timeout=20) as service:
        order: list[str] = []

        async def republish() -> None:
            await service.publish(service.topics.match, b"state", qos=1, retain=True)
            order.append("hook")

        def own_status(topic: str, payload: bytes) -> None:
            if payload and decode(ServiceStatus, payload).state == "online":
                order.append("online")

        service.on_connected(republish)
        await service.subscribe(service.topics.status("keeper"), own_status, qos=1)
        await service.publish(service.topics.match, b"state", qos=1, retain=True)
        await service.go_online()
        await wait_for_async(lambda: order == ["online"])

        await asyncio.to_thread(mqtt_broker.stop)
        await wait_for_async(lambda: not service.connected.is_set(), timeout=20)
        await asyncio.to_thread(mqtt_broker.start)
        await wait_for_async(lambda: order[-1:] == ["online"] and len(order) == 3, timeout=20)
        assert order == ["online", "hook", "online"]

        async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as late:
            seen: dict[str, bytes] = {}
            await late.subscribe(late.topics.match, lambda t, p: seen.update({t: p}), qos=1)
            await late.subscribe(late.topics.status("keeper"),
                                 lambda t, p: seen.update({t: p}), qos=1)
            await wait_for_async(lambda: len(seen) == 2)
            assert seen[late.topics.match] == b"state"
            assert decode(ServiceStatus, seen[late.topics.status("keeper")]).state == "online"


async def test_a_failing_hook_is_logged_and_the_others_still_run(mqtt_broker, robot_name,
                                                                 caplog):
    async with Connection(mqtt_broker.url, robot=robot_name, service="keeper",
                          connect_timeout=20) as service:
        ran: list[str] = []

        def broken() -> None:
            raise RuntimeError("hook bug")

        service.on_connected(broken)
        remove = service.on_connected(lambda: ran.append("second"))
        await service.go_online()
        await asyncio.to_thread(mqtt_broker.stop)
        await wait_for_async(lambda: not service.connected.is_set(), timeout=20)
        await asyncio.to_thread(mqtt_broker.start)
        await wait_for_async(lambda: ran == ["second"], timeout=20)
        assert "on_connected hook" in caplog.text and "hook bug" in caplog.text
        remove()
        assert len(service._hooks) == 1


async def test_a_service_waits_for_a_broker_that_is_not_up_yet(mqtt_broker, robot_name, caplog):
    caplog.set_level(logging.INFO, logger="runtime.remote")
    await asyncio.to_thread(mqtt_broker.stop)
    async with Connection(mqtt_broker.url, robot=robot_name, service="late",
                          connect_timeout=0) as service:
        await Pinger().serve(service)
        going = asyncio.ensure_future(service.go_online())
        await wait_for_async(lambda: "waiting for broker at" in caplog.text)
        assert f"waiting for broker at {mqtt_broker.url}" in caplog.text
        assert not going.done()
        await asyncio.to_thread(mqtt_broker.start)
        await asyncio.wait_for(going, 20)
        assert "connected to MQTT broker" in caplog.text
        async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as caller:
            assert await Client(caller).call("late", "ping", timeout=10) == "pong"
