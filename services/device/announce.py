"""``InfoAnnouncer``: the retained ``device/<uid>/info`` of every device, kept true on the broker.

Why a task of its own: a device must never depend on the broker. Publishing the info inline in a
device's session used to fail after 10 s while the broker was away ("could not publish info"),
and the device was removed for it. Here a device's session only *states* what its info is
(:meth:`announce`, :meth:`clear`), which never waits; one task publishes the latest state of
each uid while connected, and after every (re)connect publishes every info again, because a
restarted broker has lost its retained messages. A uid cleared while the broker was away gets its
empty retained payload when it returns.
"""

from __future__ import annotations

import asyncio
import logging

from runtime.exception import MQTTConnectionError
from runtime.messages import DeviceInfo, encode
from runtime.remote import Connection

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0


class InfoAnnouncer:
    """Publishes device infos (see the module docstring). ``start()`` once connected."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.infos: dict[str, bytes] = {}  #: uid -> encoded info of every connected device
        self._pending: dict[str, bytes] = {}  #: uid -> payload still to publish (b"": clear)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="device infos")

    async def stop(self) -> None:
        """Publish what is pending (briefly, if connected), then stop."""
        if self._task is None:
            return
        if self._pending and self.connection.connected.is_set():
            self._wake.set()
            for _ in range(50):
                if not self._pending:
                    break
                await asyncio.sleep(0.01)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    def announce(self, info: DeviceInfo) -> None:
        """``info`` is the device's info now: publish it (retained) as soon as possible."""
        payload = encode(info)
        self.infos[info.uid] = payload
        self._pending[info.uid] = payload
        self._wake.set()

    def clear(self, uid: str) -> None:
        """The device is gone: clear its retained info (empty payload)."""
        self.infos.pop(uid, None)
        self._pending[uid] = b""
        self._wake.set()

    def republish_all(self) -> None:
        """After a (re)connect: every info again (a restarted broker lost them)."""
        self._pending.update(self.infos)
        self._wake.set()

    def settled(self) -> bool:
        """Nothing left to publish (tests and ``stop`` wait on this)."""
        return not self._pending

    async def _run(self) -> None:
        connection = self.connection
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                if not connection.connected.is_set():
                    break  # the reconnect hook wakes us again
                uid, payload = next(iter(self._pending.items()))
                try:
                    await connection.publish(connection.topics.device_info(uid), payload,
                                             qos=1, retain=True, timeout=PUBLISH_TIMEOUT)
                except MQTTConnectionError as exc:
                    log.debug("device info of %s not published yet: %s", uid, exc.message)
                    break
                except Exception:
                    log.exception("publishing the info of device %s failed", uid)
                    self._pending.pop(uid, None)
                    continue
                self.published += 1
                if self._pending.get(uid) is payload:  # not changed meanwhile
                    del self._pending[uid]
