"""``SmartDeviceManager``: every device of the robot, run concurrently, plus the RPC interface.

It opens ports as an observer reports them (or accepts virtual devices on a socket) and serves
each *link* (a port or a connection) for as long as it exists: identify the device, subscribe its
default params, announce its retained ``device/<uid>/info``; when the device goes silent, clear
the info and ping the same link again with backoff, so a device that resets or stalls comes back
by itself. It also enforces the stop rules (``safety.StopRules``) on its own, so the robot stops
even if the executor is stuck or dead (``guard.MotorGuard``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, TypeAlias

from runtime import transport
from runtime.address import Address, AddressError
from runtime.backoff import Backoff
from runtime.buffer import BufferStore
from runtime.buffer.liveness import LivenessMonitor
from runtime.catalog import Catalog, default_catalog
from runtime.exception import BufferStoreError, DeviceError
from runtime.messages import DeviceInfo, ParamInfo, SubscriptionInfo
from runtime.protocol.uid import Generation, Uid, UidError, parse_short
from runtime.remote import Connection, Handler, rpc
from runtime.service.device.announce import InfoAnnouncer
from runtime.service.device.client import DeviceGone, SmartDeviceClient, _peer_name
from runtime.service.device.guard import PERIOD as SAFETY_PERIOD
from runtime.service.device.guard import MotorGuard
from runtime.service.device.identify import Identity, NotASmartDevice, identify
from runtime.service.device.lowcar import LowcarSession
from runtime.service.device.observers import Observer
from runtime.service.device.safety import StopRules
from runtime.service.device.session import SAFETY_PASS
from runtime.service.device.studentlog import DeviceConsole
from runtime.tasks import TaskSet

MAX_HEARTBEAT_TIMEOUT = 60.0  #: seconds a ``heartbeat`` RPC may wait for its answer

log = logging.getLogger(__name__)

#: One device's conversation, in its generation's protocol (the manager drives both alike).
Session: TypeAlias = SmartDeviceClient | LowcarSession

BAUD_RATE = 115200
REPROBE_FIRST = 0.1  #: seconds before the second Ping of a link whose device went silent
REPROBE_BACKOFF = 2.0  #: each later wait doubles, up to 1 s (a returning device is back in < 2 s)


class SmartDeviceManager(Handler):
    """The device service (see the module docstring). RPC service name: ``device``."""

    service_name = "device"

    def __init__(
        self,
        buffers: BufferStore,
        observer: Observer | None = None,
        poll_interval: float = SAFETY_PASS,
        discovery_timeout: float = 10.0,
        *,
        catalog: Catalog | None = None,
        silence_limit: float = 1.0,
        subscription_interval: float = 0.04,
        rules: StopRules | None = None,
        liveness: LivenessMonitor | None = None,
        safety_period: float = SAFETY_PERIOD,
        console: DeviceConsole | None = None,
    ) -> None:
        self.buffers = buffers
        self.observer = observer
        self.poll_interval = poll_interval
        self.discovery_timeout = discovery_timeout
        self.silence_limit = silence_limit
        self.subscription_interval = subscription_interval
        self.catalog = catalog or default_catalog()
        #: device LOG lines that concern the student, to ``log/student`` (``studentlog``)
        self.console = console or DeviceConsole()
        self.devices: dict[str, Session] = {}
        #: the stop rules, applied to every device (``guard.MotorGuard``)
        self.guard = MotorGuard(buffers, self.devices.values, rules, liveness, safety_period)
        self.connection: Connection | None = None
        self.announcer: InfoAnnouncer | None = None
        self.rejected: set[str] = set()  # ports that are not Smart Devices (until re-plugged)
        self._ports: dict[str, asyncio.Task[None]] = {}
        self._tasks = TaskSet(log)
        self._device_tasks = TaskSet(log)  # one per link being served
        self._released: dict[str, asyncio.Event] = {}  # uid -> set when its link lets it go
        self._servers: list[asyncio.AbstractServer] = []
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, connection: Connection) -> None:
        """Serve RPC, follow the match mode, watch driver input for the stop rules."""
        self.connection = connection
        self.announcer = InfoAnnouncer(connection)
        connection.on_connected(self.announcer.republish_all)
        self.announcer.start()
        await self.serve(connection)
        await self.guard.follow(connection)
        self._spawn(self.guard.run(), "device safety")
        self._spawn(self.console.run(connection), "device lines to the student console")

    async def stop(self) -> None:
        """Disable and release every device, stop listening."""
        self._stopping = True
        for server in self._servers:
            server.close()
        await self._tasks.cancel_all()
        clients = list(self.devices.values())
        for client in clients:
            with contextlib.suppress(DeviceError):
                await client.disable()
        await self._device_tasks.cancel_all()
        await asyncio.gather(*(c.close("the device service stopped") for c in clients),
                             return_exceptions=True)
        if self.announcer is not None:
            await self.announcer.stop()
        self.guard.close()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro, name=name)

    # -- opening devices -------------------------------------------------------------------------

    async def open_serial_devices(self, **options: Any) -> None:
        """Open every port the observer reports, for as long as it runs (a task)."""
        if self.observer is None:
            raise DeviceError("no observer: give SmartDeviceManager an observer to open ports")
        self._spawn(self._follow_observer(options), "serial observer")

    async def _follow_observer(self, options: dict[str, Any]) -> None:
        assert self.observer is not None
        async for added, removed in self.observer.changes():
            for port in removed:
                self.rejected.discard(port)
                task = self._ports.pop(port, None)
                if task is not None:
                    task.cancel()
            for port in sorted(added):
                if port not in self._ports and port not in self.rejected:
                    self._ports[port] = self._spawn(self._open_port(port, options),
                                                    f"port {port}")

    async def _open_port(self, port: str, options: dict[str, Any]) -> None:
        """Serve ``port`` while it is present: a link that ends (its device reset, the far end
        of a pseudo-terminal replaced) is opened again with backoff, unless the port was
        rejected (not a Smart Device, or unopenable) until it is unplugged."""
        pauses = Backoff(first=REPROBE_FIRST, maximum=1.0)
        try:
            while not self._stopping and port not in self.rejected:
                opened_at = time.monotonic()
                await self._serve_port(port, options)
                if self.observer is not None and port not in self.observer.scan():
                    return  # gone: the observer reports it when it comes back
                if time.monotonic() - opened_at > 2.0:
                    pauses.reset()  # it served a while: a fresh failure, not a repeated one
                await pauses.sleep()
        finally:
            if self._ports.get(port) is asyncio.current_task():
                del self._ports[port]

    async def _serve_port(self, port: str, options: dict[str, Any]) -> None:
        import serial_asyncio_fast

        try:
            reader, writer = await serial_asyncio_fast.open_serial_connection(
                url=port, baudrate=options.get("baudrate", BAUD_RATE),
                **{k: v for k, v in options.items() if k != "baudrate"},
            )
        except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
            log.warning("cannot open serial port %s: %s", port, exc)
            self.rejected.add(port)
            return
        await self.run_device(reader, writer, port)

    async def open_virtual_devices(self, vsd_addr: str | Address) -> asyncio.AbstractServer:
        """Accept virtual smart devices on ``unix:PATH`` or ``tcp:HOST:PORT``."""

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.run_device(reader, writer)

        try:
            address = Address.parse(vsd_addr, ("unix", "tcp"))
        except AddressError as exc:
            raise DeviceError(f"bad virtual device address: {exc.message}",
                              address=str(vsd_addr)) from None
        server = await transport.listen(address, accept)
        self._servers.append(server)
        log.info("accepting virtual smart devices on %s", address)
        return server

    async def run_device(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         port: str | None = None) -> None:
        """Serve one link (a serial port or a virtual device's connection) until it closes or
        its port is removed; never raises. Each device on it is first identified, Hibike or
        lowcar (``identify.py``), and then spoken to in its generation. A device that goes
        silent (or, lowcar, resets) is dropped and the same link is probed again (backoff from
        0.1 s to 1 s) for as long as it exists."""
        task = asyncio.current_task()
        if task is not None:
            self._device_tasks.add(task)
        first = True
        client: Session | None = None
        where = port or _peer_name(writer)
        try:
            while not self._stopping:
                identity = await self._identify(reader, writer, where, port, first)
                if identity is None:
                    return
                try:
                    client = self._session(reader, writer, where, port, identity)
                except DeviceError as exc:  # an unknown device type
                    log.warning("%s", exc.message)
                    if port is not None:
                        self.rejected.add(port)
                    return
                if not await self._serve_device(client, first, port, identity) \
                        or client.transport_lost:
                    return
                first = False
        finally:
            if client is not None:
                await asyncio.shield(client.close("its link ended"))
            writer.close()

    async def _identify(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        where: str, port: str | None, first: bool) -> Identity | None:
        """Which generation answers on the link (None: nothing, or the link closed). A new
        link is given ``discovery_timeout``; a link probed again is probed while it lasts."""
        try:
            if first:
                return await identify(reader, writer, where, timeout=self.discovery_timeout)
            return await identify(reader, writer, where, timeout=None, retry=REPROBE_FIRST,
                                  backoff=REPROBE_BACKOFF)
        except NotASmartDevice as exc:
            log.warning("%s", exc.message)
            if port is not None:  # a serial port: left alone until it is re-plugged
                self.rejected.add(port)
        except DeviceError as exc:  # the link closed
            log.info("%s", exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("identifying %s failed", where)
        return None

    def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str,
                 port: str | None, identity: Identity) -> Session:
        """The conversation for the generation that answered."""
        if identity.generation is Generation.LOWCAR:
            return LowcarSession(reader, writer, where, identity, catalog=self.catalog,
                                 silence_limit=self.silence_limit,
                                 motors_allowed=lambda: self.guard.allowed,
                                 poll_interval=self.poll_interval, on_log=self._device_said)
        return SmartDeviceClient(reader, writer, port, catalog=self.catalog,
                                 silence_limit=self.silence_limit,
                                 motors_allowed=lambda: self.guard.allowed,
                                 poll_interval=self.poll_interval)

    def _device_said(self, session: LowcarSession, text: str) -> None:
        """A lowcar LOG line: to the student console if it concerns the student."""
        self.console.line(session.uid, session.device_type.name, text, self.guard.mode)

    async def _serve_device(self, client: Session, first: bool, port: str | None,
                            identity: Identity) -> bool:
        """One device's session on a link; True if the link may serve another one."""
        uid: str | None = None
        reason = "the device service stopped"
        keep_link = True
        try:
            try:
                if isinstance(client, SmartDeviceClient):  # lowcar: the ACK said it all
                    await client.identify(interval=1.0, timeout=self.discovery_timeout,
                                          identified=identity.response)
                await self._claim(client)
                client.attach(self.buffers)
            except DeviceGone as exc:
                reason = exc.message
                return False
            except (DeviceError, BufferStoreError) as exc:
                log.warning("%s", exc.message)
                if port is not None:  # a serial port: left alone until it is re-plugged
                    self.rejected.add(port)
                return False
            uid = str(client.uid)
            self.devices[uid] = client

            async def subscription_changed(client: Session = client) -> None:
                self._announce(client)  # the info shows the widened subscription

            client.subscription_changed = subscription_changed
            try:
                await client.subscribe(interval=self.subscription_interval)
            except DeviceGone:
                raise
            except DeviceError as exc:  # keep it: reads, writes and heartbeats still work
                log.warning("%s; its values will not stream", exc.message)
            held = ""
            verdict = self.guard.verdict
            if not verdict.allowed:
                await client.hold_motors(True)
                if isinstance(client, SmartDeviceClient):  # a fresh lowcar device is disabled
                    await client.disable()  # until its ACK, and its motors are at 0: no RST
                held = f" (motors held at 0 and disabled: {verdict})"
            self._announce(client)
            log.info("%s connected on %s%s", client.name, client.port, held)
            reason = await client.closed()
        except (DeviceGone, DeviceError) as exc:
            reason = exc.message
        except asyncio.CancelledError:
            reason = "its port was removed"
            keep_link = False
            raise
        except Exception as exc:
            log.exception("%s on %s failed", client.name, client.port)
            reason = f"internal error: {exc}"
            keep_link = False
        finally:
            served = uid is not None and self.devices.get(uid) is client
            if served:
                assert uid is not None
                del self.devices[uid]
                if self.announcer is not None:
                    self.announcer.clear(uid)
                again = keep_link and not client.transport_lost and not self._stopping
                log.info("%s on %s removed: %s%s", client.name, client.port, reason,
                         "; pinging its link again" if again else "")
            await asyncio.shield(client.close(reason, keep_transport=keep_link))
            if served:  # its buffer is released now: a refused link may take the uid
                released = self._released.pop(str(uid), None)
                if released is not None:
                    released.set()
        return keep_link

    async def _claim(self, client: Session) -> None:
        """Wait while another link serves a device with the same uid (said once, naming both
        links); the refused link is served as soon as the first one lets the uid go."""
        uid = str(client.uid)
        other = self.devices.get(uid)
        if other is None:
            return
        log.warning("%s on %s has the same uid as the device on %s, which keeps it: %s is "
                    "refused until that one leaves (two devices flashed with one uid?)",
                    client.name, client.port, other.port, client.port)
        while uid in self.devices:
            released = self._released.setdefault(uid, asyncio.Event())
            waits = [asyncio.ensure_future(released.wait()),
                     asyncio.ensure_future(client.closed())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
            if client.gone:
                raise DeviceGone(f"{client.name} on {client.port} left while refused",
                                 port=client.port)
        log.info("%s on %s: the other link let uid %s go; serving it here", client.name,
                 client.port, uid)

    # -- info --------------------------------------------------------------------------------------

    def info(self, client: Session) -> DeviceInfo:
        device_type = client.device_type
        assert device_type is not None
        params, interval = client.subscription
        return DeviceInfo(
            uid=str(client.uid),
            type=device_type.name,
            type_id=device_type.id,
            generation=device_type.generation.value,
            port=client.port,
            params=[ParamInfo(name=p.name, type=p.type, readable=p.readable,
                              writeable=p.writeable, lower=p.lower, upper=p.upper)
                    for p in device_type.params],
            subscription=SubscriptionInfo(params=device_type.names(params), interval_ms=interval),
        )

    def _announce(self, client: Session) -> None:
        """Its retained info, published now or as soon as the broker is back (never waits)."""
        if self.announcer is not None:
            self.announcer.announce(self.info(client))

    async def _publish_info(self, client: Session) -> None:
        """``subscription_changed`` hook: the info again (its subscription grew)."""
        self._announce(client)

    # -- RPC ---------------------------------------------------------------------------------------

    def _clients(self, uids: str | Iterable[str] | None) -> builtins.list[Session]:
        if uids is None:
            return list(self.devices.values())
        wanted = [uids] if isinstance(uids, str | int) else list(uids)
        return [self._client(uid) for uid in wanted]

    def _client(self, uid: Any) -> Session:
        """The device a uid names (any form ``Uid.parse`` takes, or ``"<type>_<id>"``)."""
        client = None
        with contextlib.suppress(UidError):
            client = self.devices.get(str(Uid.parse(uid)))
        short = parse_short(uid)
        if client is None and short is not None:
            client = next((c for c in self.devices.values()
                           if c.uid is not None and Uid.parse(c.uid).matches_short(*short)),
                          None)
        if client is None:
            raise DeviceError(
                f"no device with uid {uid} is connected; connected: "
                + (", ".join(f"{c.name}" for c in self.devices.values()) or "none"),
                uid=str(uid),
            )
        return client

    @rpc
    def list(self) -> list[dict[str, Any]]:  # below, `list` is this method: builtins.list
        """Every connected device: its info plus current values."""
        result = []
        for client in self.devices.values():
            entry = self.info(client).to_wire()
            with contextlib.suppress(Exception):
                entry["values"] = client.buffer.read() if client.buffer else {}
                # a value the device never sent reads as 0: say so (``runtime devices``)
                entry["never_received"] = [name for name in entry["values"]
                                           if client.buffer and not client.buffer.timestamp(name)]
            result.append(entry)
        return result

    @rpc
    async def ping(self, uids: str | builtins.list[str] | None = None) -> builtins.list[str]:
        """Ping devices (each answers with a SubscriptionResponse); the uids pinged."""
        clients = self._clients(uids)
        for client in clients:
            await client.ping()
        return [str(c.uid) for c in clients]

    @rpc
    async def disable(self, uids: str | builtins.list[str] | None = None) -> builtins.list[str]:
        """Motors to 0 and Disable; the uids disabled."""
        clients = self._clients(uids)
        for client in clients:
            await client.disable()
        return [str(c.uid) for c in clients]

    @rpc
    async def read(self, uid: str, params: builtins.list[str] | None = None) -> dict[str, Any]:
        """Ask the device for fresh values and return them (it has 1 s to answer)."""
        values = await self._client(uid).read(params, timeout=1.0)
        assert values is not None
        return values

    @rpc
    async def subscribe(self, uid: str, params: builtins.list[str] | None = None,
                        interval: float | None = None) -> dict[str, Any]:
        """Change a device's subscription (interval in seconds); what the device confirmed."""
        client = self._client(uid)
        bitmap, interval_ms = await client.subscribe(params, interval)
        self._announce(client)
        assert client.device_type is not None
        return {"params": client.device_type.names(bitmap), "interval_ms": interval_ms}

    @rpc
    async def heartbeat(self, uid: str, heartbeat_id: int | None = None,
                        timeout: float = 1) -> float:
        """Round trip of one heartbeat, in seconds. ``timeout``: seconds, above 0 and at most
        60 (``DeviceError`` otherwise: a negative one used to time out at once, unexplained)."""
        if not 0 < timeout <= MAX_HEARTBEAT_TIMEOUT:
            raise DeviceError(f"heartbeat timeout must be above 0 and at most "
                              f"{MAX_HEARTBEAT_TIMEOUT:g} s, not {timeout!r}", uid=uid)
        return await self._client(uid).heartbeat(heartbeat_id, timeout)
