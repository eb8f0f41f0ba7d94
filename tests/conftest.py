"""Fixtures every area shares: real MQTT brokers and a unique robot name per test.

- ``amqtt_broker``: the embedded amqtt broker on a free loopback port (own loop thread).
- ``mosquitto_broker``: a real Mosquitto subprocess on a free loopback port.
- ``mqtt_broker``: parametrized over both (ids ``amqtt`` and ``mosquitto``).
Each has ``.url``, ``.host``, ``.port``, ``.stop()`` and ``.start()`` (restart, same port).
They are function-scoped (a broker starts in ~50 ms): no state leaks between tests.
``robot_name`` isolates topics and shared-memory names of concurrent tests.
``rig`` (``tests/support/device_rig.py``): a device service with virtual devices on Mosquitto.
"""

from __future__ import annotations

import logging
import signal
import uuid
from collections.abc import Iterator

import pytest
from runtime.mqtt_server import quiet_amqtt

from tests.support.brokers import AmqttTestBroker, MosquittoTestBroker, TestBroker, make_broker
from tests.support.device_rig import (  # noqa: F401 (shared fixtures)
    rig,
    rig_discovery_timeout,
    serial_rig,
)

quiet_amqtt()
# Tests stop the processes they start with SIGINT (Ctrl-C) and expect a clean exit. A suite run
# as a background job of a non-interactive shell (`./run test &`, CI runners) inherits SIGINT
# *ignored*, and an ignored signal stays ignored in every child: they would never stop. Handled
# here, children start with the default disposition again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
logging.getLogger("runtime.remote.paho").setLevel(logging.WARNING)


@pytest.fixture
def amqtt_broker() -> Iterator[AmqttTestBroker]:
    broker = make_broker("amqtt")
    try:
        yield broker  # type: ignore[misc]
    finally:
        broker.close()


@pytest.fixture
def mosquitto_broker() -> Iterator[MosquittoTestBroker]:
    broker = make_broker("mosquitto")
    try:
        yield broker  # type: ignore[misc]
    finally:
        broker.close()


@pytest.fixture(params=["amqtt", "mosquitto"])
def mqtt_broker(request: pytest.FixtureRequest) -> Iterator[TestBroker]:
    broker = make_broker(request.param)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def robot_name() -> str:
    """A robot name no other test uses (``t`` + 8 hex digits)."""
    return f"t{uuid.uuid4().hex[:8]}"
