"""The device service: finds Smart Devices, speaks their protocol, fills their buffers.

- ``observers.py``: ``EventObserver`` (udev) and ``PollingObserver`` (glob) report ports.
- ``identify.py``: which generation a new link speaks.
- ``session.py``: ``DeviceSession``, what a conversation is whatever the generation;
  ``client.py``: ``SmartDeviceClient`` (Hibike) and ``lowcar.py``: ``LowcarSession`` build on it.
- ``manager.py``: ``SmartDeviceManager``, every link and device, and the RPC interface.
- ``safety.py``: ``StopRules``, the stop rules (pure); ``guard.py``: ``MotorGuard`` applies them.
- ``announce.py``: ``InfoAnnouncer``, the retained device infos, whatever the broker does.
- ``app.py``: ``main(config)``, what ``runtime service device`` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.service.device.client import SmartDeviceClient
from runtime.service.device.manager import SmartDeviceManager
from runtime.service.device.observers import EventObserver, PollingObserver

if TYPE_CHECKING:
    from runtime.config import ServiceConfig


def main(config: ServiceConfig) -> int:
    """Run the device service until SIGINT/SIGTERM (``runtime service device``)."""
    from runtime.service.device.app import main as run

    return run(config)


__all__ = ["EventObserver", "PollingObserver", "SmartDeviceClient", "SmartDeviceManager", "main"]
