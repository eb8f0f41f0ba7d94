"""Device values to clients: device buffers -> ``device/<uid>/data`` at the configured rate.

Which buffers exist is learnt from the device service's retained ``device/<uid>/info``
messages (attach on info, detach on the empty payload of an unplug, detach everything when the
device service goes offline: a restarted device service recreates its buffers and republishes
every info). Every ``1 / rate`` seconds each attached buffer's update counter is compared with
the one seen last time; only a buffer that moved is read, and only the params whose value
differs from the last published one are sent. No attached device, no timer: an idle robot
costs nothing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from runtime.complaints import Complaints
from runtime.exception import BufferStoreError, MessageError, RuntimeBaseException
from runtime.messages import DeviceData, DeviceInfo, ServiceStatus
from runtime.remote import Connection

log = logging.getLogger(__name__)


class Tracked:
    """One attached device buffer and what was last published from it."""

    __slots__ = ("buffer", "count", "published", "readable", "uid")

    def __init__(self, uid: str, buffer: Any, readable: list[str]) -> None:
        self.uid = uid
        self.buffer = buffer
        self.readable = readable
        self.count = -1
        self.published: dict[str, Any] = {}


class DataPublisher:
    """Publishes the changed readable params of every device, at most ``rate`` times a second."""

    def __init__(self, buffers: Any, rate: float = 25.0) -> None:
        self.buffers = buffers
        self.period = 1.0 / rate
        self.devices: dict[str, Tracked] = {}
        self.published = 0  # messages sent (for tests and benchmarks)
        self._connection: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._complaints = Complaints(log)

    async def start(self, connection: Connection) -> None:
        """Follow device infos and the device service's status; start the publish loop."""
        self._connection = connection
        topics = connection.topics
        await connection.subscribe_typed(topics.any_device_info, DeviceInfo, self.on_info)
        await connection.subscribe_typed(topics.status("device"), ServiceStatus,
                                         self.on_device_service)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="device data")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for uid in list(self.devices):
            self.detach(uid)

    # -- which devices --------------------------------------------------------------------
    def on_info(self, topic: str, info: DeviceInfo | None) -> None:
        assert self._connection is not None
        try:
            uid = self._connection.topics.parse(topic).uid
        except MessageError as exc:
            self._complaints.report(topic, f"ignoring device info on {topic}: {exc.message}")
            return
        assert uid is not None
        if info is None:  # the info was cleared: the device left
            self.detach(uid)
            return
        self.attach(uid, [param.name for param in info.params if param.readable])

    def on_device_service(self, topic: str, status: ServiceStatus | None) -> None:
        if status is not None and status.state == "offline":
            for uid in list(self.devices):
                self.detach(uid)

    def attach(self, uid: str, readable: list[str]) -> None:
        """(Re)attach to the buffer of ``uid`` (a new info may mean a new segment)."""
        self.detach(uid)
        try:
            buffer = self.buffers.open_device(uid)
        except BufferStoreError as exc:
            log.warning("device %s announced but its buffer cannot be opened: %s", uid, exc)
            return
        # Only params the buffer has: an info from a device service with another catalog (or
        # from anyone on the broker) must not break the data of every device.
        known = {param.name for param in buffer.params if param.readable}
        unknown = [name for name in readable if name not in known]
        if unknown:
            log.warning("device %s: its info names params its %s buffer does not have, not "
                        "published: %s", uid, buffer.device_type.name, ", ".join(unknown[:10]))
        self.devices[uid] = Tracked(uid, buffer, [name for name in readable if name in known])
        self._wake.set()

    def detach(self, uid: str) -> None:
        tracked = self.devices.pop(uid, None)
        if tracked is not None:
            with contextlib.suppress(Exception):
                tracked.buffer.close()

    # -- publishing -----------------------------------------------------------------------
    def changes(self, tracked: Tracked) -> dict[str, Any]:
        """Params of ``tracked`` that changed since its last publish (empty if none)."""
        buffer = tracked.buffer
        count = buffer.update_count
        if count == tracked.count:
            return {}
        tracked.count = count
        values = buffer.read(tracked.readable)
        changed = {name: value for name, value in values.items()
                   if tracked.published.get(name, _MISSING) != value}
        tracked.published.update(changed)
        return changed

    async def publish_changes(self) -> int:
        """One round over every device; returns how many messages were sent."""
        assert self._connection is not None
        sent = 0
        for tracked in list(self.devices.values()):
            try:
                changed = self.changes(tracked)
            except BufferStoreError as exc:
                log.info("device %s: buffer gone (%s); detaching", tracked.uid, exc)
                self.detach(tracked.uid)
                continue
            except RuntimeBaseException as exc:  # one device's problem stops only its data
                log.warning("device %s: cannot read its values (%s); its data is not published "
                            "until its next info", tracked.uid, exc.message)
                self.detach(tracked.uid)
                continue
            if changed:
                message = DeviceData(ts=time.time(), params=changed)
                await self._connection.publish(self._connection.topics.device_data(tracked.uid),
                                               message)
                sent += 1
        self.published += sent
        return sent

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            if not self.devices:
                self._wake.clear()
                await self._wake.wait()
                next_tick = loop.time()
            try:
                await self.publish_changes()
            except Exception:
                log.exception("publishing device data failed; carrying on")
            next_tick += self.period
            now = loop.time()
            if next_tick < now:  # fell behind (a slow broker): skip, do not burst
                next_tick = now + self.period
            await asyncio.sleep(next_tick - now)


_MISSING = object()
