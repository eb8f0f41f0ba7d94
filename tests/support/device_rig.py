"""The ``rig`` fixture (a device service with virtual devices on a real Mosquitto), defined once.

The device, compatibility, resilience and lowcar tests all want the same thing: a
:class:`~tests.device.rig.DeviceRig` started before the test and stopped after it. They differ
only in how long the service waits for a device to identify itself, so that is its own fixture,
``rig_discovery_timeout`` (1 s here); a module that needs longer overrides it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.device.rig import DeviceRig
    from tests.support.brokers import MosquittoTestBroker


@pytest.fixture
def rig_discovery_timeout() -> float:
    """Seconds the device service waits for a new port to identify (short: tests plug on time)."""
    return 1.0


@pytest.fixture
async def rig(mosquitto_broker: MosquittoTestBroker, robot_name: str,
              rig_discovery_timeout: float) -> AsyncIterator[DeviceRig]:
    """A device service on a real Mosquitto, virtual devices plugged in by the test."""
    from tests.device.rig import DeviceRig  # imported here: most tests never start a device service

    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=rig_discovery_timeout)
    try:
        yield rig
    finally:
        await rig.stop()
