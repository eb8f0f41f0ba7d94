"""Fixtures of the device service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.device.rig import DeviceRig


@pytest.fixture
async def rig(mosquitto_broker, robot_name) -> AsyncIterator[DeviceRig]:
    """A device service with fast timeouts (discovery 1 s) on a real Mosquitto."""
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=1.0)
    try:
        yield rig
    finally:
        await rig.stop()
