"""Finding serial ports as they come and go: udev events, or polling a glob of paths.

Both observers report *changes* as ``(added, removed)`` sets of port paths through an async
iterator, starting with everything already present. The udev observer batches a burst of events
(a USB hub with four devices plugged at once sends dozens) into one
``serial.tools.list_ports.comports()`` scan, so the cost is one scan per burst, not per event.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PATTERNS = frozenset({"/dev/ttyACM*"})
Changes = tuple[set[str], set[str]]


class Observer:
    """Base: keeps the current set of ports and yields differences after each scan."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_PATTERNS) -> None:
        self.patterns = frozenset(patterns)
        self.ports: set[str] = set()
        self.scans = 0

    def matches(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern) for pattern in self.patterns)

    def scan(self) -> set[str]:
        raise NotImplementedError

    def diff(self) -> Changes:
        """Scan now; what appeared and what vanished since the last scan."""
        self.scans += 1
        current = self.scan()
        added, removed = current - self.ports, self.ports - current
        self.ports = current
        return added, removed

    def changes(self) -> AsyncIterator[Changes]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the observer holds (sockets)."""


class PollingObserver(Observer):
    """Globs ``patterns`` every ``interval`` seconds (for systems without udev, and ptys)."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_PATTERNS, interval: float = 1.0) -> None:
        super().__init__(patterns)
        self.interval = interval

    def scan(self) -> set[str]:
        found: set[str] = set()
        for pattern in self.patterns:
            found.update(glob.glob(pattern))
        return found

    async def changes(self) -> AsyncIterator[Changes]:
        while True:
            added, removed = self.diff()
            if added or removed:
                yield added, removed
            await asyncio.sleep(self.interval)


def comports_scan() -> set[str]:
    """Serial ports the system knows (USB CDC-ACM devices among them)."""
    from serial.tools import list_ports

    return {port.device for port in list_ports.comports()}


class EventObserver(Observer):
    """Watches udev ``tty`` events; each burst of events costs one port scan.

    ``monitor`` is a ``pyudev.Monitor`` (default: the udev netlink monitor, subsystem tty);
    ``scan`` lists ports (default ``comports()``, filtered by ``patterns``). Both can be given,
    which is how the batching logic is tested on machines without udev.
    """

    def __init__(
        self,
        patterns: Iterable[str] = DEFAULT_PATTERNS,
        *,
        batch: float = 0.05,
        monitor: Any = None,
        scan: Callable[[], set[str]] = comports_scan,
    ) -> None:
        super().__init__(patterns)
        self.batch = batch
        self._scan = scan
        self._monitor = monitor
        self._pending = asyncio.Event()
        self.events = 0

    @staticmethod
    def available() -> bool:
        """Whether udev runs here (its netlink events reach us only if udevd is up)."""
        import os

        return os.path.isdir("/run/udev")

    def scan(self) -> set[str]:
        return {path for path in self._scan() if self.matches(path)}

    def _open_monitor(self) -> Any:
        if self._monitor is None:
            import pyudev

            context = pyudev.Context()
            self._monitor = pyudev.Monitor.from_netlink(context)
            self._monitor.filter_by(subsystem="tty")
            self._monitor.start()
        return self._monitor

    def on_event(self, device: Any) -> None:
        """One udev event (any action): schedule a scan after the burst settles."""
        self.events += 1
        log.debug("udev %s %s", getattr(device, "action", "?"), getattr(device, "device_node", "?"))
        self._pending.set()

    def _drain(self) -> None:
        monitor = self._monitor
        while True:
            device = monitor.poll(timeout=0)
            if device is None:
                return
            self.on_event(device)

    async def changes(self) -> AsyncIterator[Changes]:
        monitor = self._open_monitor()
        loop = asyncio.get_running_loop()
        fileno = monitor.fileno() if hasattr(monitor, "fileno") else None
        if fileno is not None:
            loop.add_reader(fileno, self._drain)
        try:
            added, removed = self.diff()
            if added or removed:
                yield added, removed
            while True:
                await self._pending.wait()
                await asyncio.sleep(self.batch)  # let the rest of the burst arrive
                self._pending.clear()
                added, removed = self.diff()
                if added or removed:
                    yield added, removed
        finally:
            if fileno is not None:
                loop.remove_reader(fileno)

    def close(self) -> None:
        self._monitor = None
