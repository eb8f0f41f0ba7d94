"""Fixtures of the compatibility tests: a device service with virtual devices (tests/device)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.device.rig import DeviceRig


@pytest.fixture
async def rig(mosquitto_broker, robot_name) -> AsyncIterator[DeviceRig]:
    """A device service on a real Mosquitto, virtual devices plugged in by the test."""
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=1.0)
    try:
        yield rig
    finally:
        await rig.stop()
