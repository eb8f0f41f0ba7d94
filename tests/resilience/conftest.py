"""Fixtures of the resilience tests (the device rig of tests/device, with a 1 s discovery)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.device.rig import DeviceRig


@pytest.fixture
async def rig(mosquitto_broker, robot_name) -> AsyncIterator[DeviceRig]:
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=1.0)
    try:
        yield rig
    finally:
        await rig.stop()
