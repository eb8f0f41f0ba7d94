"""``online`` means ready, for each real service process, on both brokers.

A request published from inside the status callback, the instant ``online`` arrives, is
answered (issue 11: 0 of 15 were before); a service started before its broker says "waiting
for broker at <url>" and nothing about being ready until the broker is there.
"""

from __future__ import annotations

import asyncio

import pytest
from runtime.messages import ServiceStatus, decode
from runtime.remote import Client, Connection

from tests.resilience.services import ServiceProcess
from tests.support.wait import wait_for_async

#: one cheap method per service, called the moment it says online
CALLS = {"broker": ("list_aliases", {}), "device": ("list", []), "executor": ("get_mode", {})}
STUDENT_CODE = "def teleop_main():\n    x = undefined_name\n"


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_call_made_the_instant_a_service_is_online_is_answered(
    mqtt_broker, robot_name, tmp_path, name
):
    method, expected = CALLS[name]
    (tmp_path / "studentcode.py").write_text(STUDENT_CODE)
    async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as caller:
        client = Client(caller)
        await client.start()
        calls: list[asyncio.Task[object]] = []

        def on_status(topic: str, payload: bytes) -> None:
            if payload and decode(ServiceStatus, payload).state == "online" and not calls:
                calls.append(caller.spawn(client.call(name, method, timeout=30)))
                if name == "broker":  # the lint call of issue 11, on a fresh service
                    calls.append(caller.spawn(client.call(name, "lint", timeout=60)))

        await caller.subscribe(caller.topics.status(name), on_status, qos=1)
        async with ServiceProcess(name, mqtt_broker.url, robot_name, tmp_path) as service:
            await wait_for_async(lambda: calls, timeout=60, message=service.output)
            result = await calls[0]
            if name == "executor":
                assert result["mode"] == "idle"
            else:
                assert result == expected
            if name == "broker":
                messages = await calls[1]
                assert any(m["symbol"] == "undefined-variable" for m in messages)
            assert service.said(f"{name} service ready")


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_service_started_before_its_broker_waits_and_says_so(
    mosquitto_broker, robot_name, tmp_path, name
):
    """(On Mosquitto only: waiting does not depend on the broker, and each run costs 6 s.)"""
    mqtt_broker = mosquitto_broker
    await asyncio.to_thread(mqtt_broker.stop)
    async with ServiceProcess(name, mqtt_broker.url, robot_name, tmp_path) as service:
        await wait_for_async(lambda: service.said("waiting for broker at"), timeout=60,
                             message=service.output)
        assert service.said(f"waiting for broker at {mqtt_broker.url}")
        assert not service.said("ready")
        await asyncio.to_thread(mqtt_broker.start)
        await wait_for_async(lambda: service.said(f"{name} service ready"), timeout=60,
                             message=service.output)
        async with Connection(mqtt_broker.url, robot=robot_name, connect_timeout=20) as caller:
            method, _ = CALLS[name]
            assert await Client(caller).call(name, method, timeout=30) is not None
        assert service.process.returncode is None  # nothing crashed while it waited
