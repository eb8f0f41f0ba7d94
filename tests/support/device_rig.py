"""The ``rig`` fixture (a device service with virtual devices on a real Mosquitto), defined once.

The device, compatibility, resilience and lowcar tests all want the same thing: a
:class:`~tests.device.rig.DeviceRig` started before the test and stopped after it. They differ
only in how long the service waits for a device to identify itself, so that is its own fixture,
``rig_discovery_timeout`` (1 s here); a module that needs longer overrides it.
``serial_rig`` is the same service watching the test's ``tmp_path`` for serial ports (``tty*``,
found by the polling observer and opened with pyserial as ``/dev/ttyACM*`` are); it yields
``(rig, tmp_path)``: a test links its pseudo-terminals there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
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


@pytest.fixture
async def serial_rig(mosquitto_broker: MosquittoTestBroker, robot_name: str, tmp_path: Path,
                     rig_discovery_timeout: float) -> AsyncIterator[tuple[DeviceRig, Path]]:
    """A device service that finds serial ports ``tmp_path/tty*``; ``(rig, tmp_path)``."""
    from runtime.service.device import PollingObserver

    from tests.device.rig import DeviceRig

    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(PollingObserver({str(tmp_path / "tty*")}, interval=0.05),
                    discovery_timeout=rig_discovery_timeout)
    await rig.manager.open_serial_devices()
    try:
        yield rig, tmp_path
    finally:
        await rig.stop()
