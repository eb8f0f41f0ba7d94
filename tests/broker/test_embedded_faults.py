"""amqtt 0.12.1's own faults, gone in the embedded broker (``runtime.mqtt_server``).

Each fault is shown twice: fixed with the workarounds (what ``runtime up`` runs), and present
with ``workarounds=False`` (amqtt as shipped), so the test is known to detect it. Clients here
are raw aiomqtt ones: Runtime's own ``Connection`` filters deliveries by its subscriptions and
would hide the leak.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import uuid

import aiomqtt
import pytest
from runtime.messages import ServiceStatus, decode
from runtime.remote import Connection

from tests.support.brokers import AmqttTestBroker
from tests.support.wait import wait_for_async


@pytest.fixture(params=[True, False], ids=["workarounds", "as-shipped"])
def embedded(request):
    broker = AmqttTestBroker(workarounds=request.param)
    broker.workarounds = request.param
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


def client(broker, **kwargs) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, identifier=f"t-{uuid.uuid4().hex[:8]}",
                          **kwargs)


async def test_retained_messages_go_only_to_matching_subscribers(embedded):
    async with client(embedded) as holder, client(embedded) as publisher:
        await publisher.publish("x/a", b"retained", qos=1, retain=True)
        for filter_ in ("x/a", "x/+", "#"):  # filters someone else holds
            await holder.subscribe(filter_, qos=1)
        async with client(embedded) as newcomer:
            await newcomer.subscribe("y/c", qos=1)
            await publisher.publish("y/c", b"marker", qos=1)
            received: list[str] = []
            async with asyncio.timeout(20):
                async for message in newcomer.messages:
                    received.append(message.topic.value)
                    if message.topic.value == "y/c":
                        break
    leaked = received.count("x/a")
    print(f"retained x/a received {leaked} times by a y/c subscriber")
    if embedded.workarounds:
        assert received == ["y/c"]
    else:
        assert leaked >= 2, f"amqtt as shipped no longer leaks? got {received}"


async def test_connect_and_subscribe_churn_drops_nobody(embedded, caplog):
    """Clients connecting while others (un)subscribe: amqtt iterated its subscription dict
    while awaiting, and "dictionary changed size during iteration" killed the connection."""
    caplog.set_level(logging.ERROR)
    async with client(embedded) as publisher:
        for i in range(20):
            await publisher.publish(f"c/{i}", b"r" * 1000, qos=1, retain=True)

        failures: list[BaseException] = []
        # as shipped, a dropped client's operation hangs until this timeout; with the
        # workarounds nothing hangs, and 12 clients churning on a loaded machine need longer
        timeout = 20 if embedded.workarounds else 3

        async def churn(worker: int) -> None:
            for round_ in range(8):
                if "dictionary changed size" in caplog.text:
                    return  # shown (as shipped): no need to wait out more dropped clients
                try:
                    async with client(embedded, timeout=timeout) as churner:
                        await churner.subscribe(f"c/{(worker + round_) % 20}", qos=1)
                        await churner.subscribe(f"w/{worker}/{round_}", qos=0)
                except aiomqtt.MqttError as exc:
                    failures.append(exc)

        await asyncio.gather(*(churn(worker) for worker in range(12)))
    broken = "dictionary changed size during iteration" in caplog.text
    if embedded.workarounds:
        assert not broken and failures == []
        async with client(embedded) as late:  # and the broker still serves
            await late.subscribe("c/3", qos=1)
            async with asyncio.timeout(20):
                message = await anext(aiter(late.messages))
            assert message.topic.value == "c/3"
    else:
        assert broken, "amqtt as shipped no longer races? (no error logged)"


HUNG = """
import asyncio, sys
from runtime.remote import Connection

async def main():
    async with Connection(sys.argv[1], robot=sys.argv[2], service="hung", keepalive=1,
                          connect_timeout=20) as c:
        await c.go_online()
        print("online", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_hung_clients_last_will_fires(embedded, robot_name):
    """SIGSTOP: the TCP connection stays up but nothing is sent; keepalive must drop it."""
    async with Connection(embedded.url, robot=robot_name, connect_timeout=20) as watcher:
        states: list[str] = []
        await watcher.subscribe(
            watcher.topics.status("hung"),
            lambda topic, payload: states.append(decode(ServiceStatus, payload).state), qos=1)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HUNG, embedded.url, robot_name, stdout=asyncio.subprocess.PIPE)
        try:
            assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"online"
            await wait_for_async(lambda: states[-1:] == ["online"])
            process.send_signal(signal.SIGSTOP)
            if embedded.workarounds:
                await wait_for_async(lambda: states[-1] == "offline", timeout=20)
            else:
                # keepalive 1 s: the fixed broker drops it after 1.5 s; give stock amqtt 6 s
                with pytest.raises(AssertionError):
                    await wait_for_async(lambda: states[-1] == "offline", timeout=6)
        finally:
            process.send_signal(signal.SIGCONT)
            process.kill()
            await process.wait()
