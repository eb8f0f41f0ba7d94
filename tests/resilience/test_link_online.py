"""``online`` means ready, for each real service process, on both brokers.

A request published from inside the status callback, the instant ``online`` arrives, is
answered (issue 11: 0 of 15 were before); a service started before its broker says "waiting
for broker at <url>" and nothing about being ready until the broker is there.
"""

from __future__ import annotations

import asyncio

from runtime.messages import ServiceStatus, decode
from runtime.remote import Client, Connection

from tests.resilience.services import ServiceProcess
from tests.support.wait import wait_for_async

#: one cheap method per service, called the moment it says online
CALLS: dict[str, tuple[str, object]] = {
    "broker": ("list_aliases", {}), "device": ("list", []), "executor": ("get_mode", {})}
STUDENT_CODE = "def teleop_main():\n    x = undefined_name\n"


async def test_a_call_made_the_instant_a_service_is_online_is_answered(
    mqtt_broker, robot_name, tmp_path
):
    """The three services start together; each is called from inside its status callback."""
    (tmp_path / "studentcode.py").write_text(STUDENT_CODE)
    async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as caller:
        client = Client(caller)
        await client.start()
        calls: dict[str, list[asyncio.Task[object]]] = {}

        def on_status(topic: str, payload: bytes) -> None:
            name = caller.topics.parse(topic).service
            state = decode(ServiceStatus, payload).state if payload else None
            if name in CALLS and state == "online" and name not in calls:
                calls[name] = [caller.spawn(client.call(name, CALLS[name][0], timeout=30))]
                if name == "broker":  # the lint call of issue 11, on a fresh service
                    calls[name].append(caller.spawn(client.call(name, "lint", timeout=60)))

        await caller.subscribe(caller.topics.any_status, on_status, qos=1)
        services = [ServiceProcess(name, mqtt_broker.url, robot_name, tmp_path)
                    for name in sorted(CALLS)]
        for service in services:
            await service.start()
        try:
            await wait_for_async(lambda: len(calls) == len(CALLS), timeout=60,
                                 message=lambda: "\n".join(s.output() for s in services))
            for service in services:
                name = service.name
                result = await calls[name][0]
                if name == "executor":
                    assert result["mode"] == "idle"
                else:
                    assert result == CALLS[name][1]
                # the log line is written just after "online" is published: a poll, not a race
                await wait_for_async(lambda s=service: s.said(f"{s.name} service ready"),
                                     timeout=30, message=service.output)
            messages = await calls["broker"][1]
            assert any(m["symbol"] == "undefined-variable" for m in messages)
        finally:
            for service in services:
                await service.stop()


async def test_a_service_started_before_its_broker_waits_and_says_so(
    mosquitto_broker, robot_name, tmp_path
):
    """(On Mosquitto only: waiting does not depend on the broker.)"""
    broker = mosquitto_broker
    await asyncio.to_thread(broker.stop)
    services = [ServiceProcess(name, broker.url, robot_name, tmp_path) for name in sorted(CALLS)]
    for service in services:
        await service.start()
    try:
        for service in services:
            await wait_for_async(lambda s=service: s.said("waiting for broker at"), timeout=60,
                                 message=service.output)
            assert service.said(f"waiting for broker at {broker.url}")
            assert not service.said("ready")
        await asyncio.to_thread(broker.start)
        async with Connection(broker.url, robot=robot_name, connect_timeout=20) as caller:
            for service in services:
                await wait_for_async(lambda s=service: s.said(f"{s.name} service ready"),
                                     timeout=60, message=service.output)
                method, _ = CALLS[service.name]
                assert await Client(caller).call(service.name, method, timeout=30) is not None
                assert service.process is not None
                assert service.process.returncode is None  # nothing crashed while it waited
    finally:
        for service in services:
            await service.stop()
