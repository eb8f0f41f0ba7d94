"""``SmartDeviceManager``: every device of the robot, run concurrently, plus the RPC interface.

It opens ports as an observer reports them (or accepts virtual devices on a socket), identifies
each device, subscribes its default params, publishes its retained ``device/<uid>/info``, and
clears the info when the device goes. It also enforces the stop rules on its own, so the robot
stops even if the executor is stuck or dead: on ``match`` idle/estop every device gets its motor
params zeroed and a Disable; in teleop without live driver input, motor params are held at 0
until input returns.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runtime.buffer import BufferStore, GamepadBuffer, KeyboardBuffer
from runtime.catalog import Catalog, default_catalog
from runtime.exception import BufferStoreError, DeviceError, MessageError
from runtime.messages import (
    DeviceInfo,
    Match,
    ParamInfo,
    ServiceStatus,
    SubscriptionInfo,
    decode,
)
from runtime.remote import Connection, Handler, rpc
from runtime.service.device.client import DeviceGone, SmartDeviceClient
from runtime.service.device.observers import Observer

log = logging.getLogger(__name__)

BAUD_RATE = 115200
RUNNING_MODES = ("auto", "teleop")
INPUT_KEYS = ("0", "1", "2", "3", "keyboard")
INPUT_FRESH = 0.5  #: seconds: older driver input counts as none (docs/contract.md, Safety)


class SmartDeviceManager(Handler):
    """The device service (see the module docstring). RPC service name: ``device``."""

    service_name = "device"

    def __init__(
        self,
        buffers: BufferStore,
        observer: Observer | None = None,
        poll_interval: float = 0.04,
        discovery_timeout: float = 10.0,
        *,
        catalog: Catalog | None = None,
        silence_limit: float = 1.0,
        subscription_interval: float = 0.04,
    ) -> None:
        self.buffers = buffers
        self.observer = observer
        self.poll_interval = poll_interval
        self.discovery_timeout = discovery_timeout
        self.silence_limit = silence_limit
        self.subscription_interval = subscription_interval
        self.catalog = catalog or default_catalog()
        self.devices: dict[str, SmartDeviceClient] = {}
        self.mode = "idle"
        self.executor_online = False  #: from its retained status; motors stay at 0 without it
        self.executor_started = 0.0  #: when the running executor started (its status)
        self.mode_since = 0.0  #: when the current mode began (``match.since``)
        self.connection: Connection | None = None
        self.rejected: set[str] = set()  # ports that are not Smart Devices (until re-plugged)
        self._ports: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inputs: dict[str, GamepadBuffer | KeyboardBuffer] = {}
        self._device_tasks: set[asyncio.Task[Any]] = set()
        self._motors_allowed = False
        self._servers: list[asyncio.AbstractServer] = []

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, connection: Connection) -> None:
        """Serve RPC, follow the match mode, watch driver input for the stop rules."""
        self.connection = connection
        await self.serve(connection)
        await connection.subscribe(connection.topics.match, self._on_match, qos=1)
        await connection.subscribe(connection.topics.status("executor"), self._on_executor,
                                   qos=1)
        self._spawn(self._safety_loop(), "device safety")

    async def stop(self) -> None:
        """Disable and release every device, stop listening."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        clients = list(self.devices.values())
        for client in clients:
            with contextlib.suppress(DeviceError):
                await client.disable()
        await asyncio.gather(*(c.close("the device service stopped") for c in clients),
                             return_exceptions=True)
        await asyncio.gather(*self._device_tasks, return_exceptions=True)
        for buffer in self._inputs.values():
            self.buffers.forget(buffer)
        self._inputs.clear()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
        try:
            await self.run_device(reader, writer, port)
        finally:
            if self._ports.get(port) is asyncio.current_task():
                del self._ports[port]

    async def open_virtual_devices(self, vsd_addr: str) -> asyncio.AbstractServer:
        """Accept virtual smart devices on ``unix:PATH`` or ``tcp:HOST:PORT``."""
        kind, _, where = vsd_addr.partition(":")

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.run_device(reader, writer)

        if kind == "unix" and where:
            path = Path(where)
            if path.is_socket():
                path.unlink()
            server = await asyncio.start_unix_server(accept, path=str(path))
            os.chmod(path, 0o660)
        elif kind == "tcp" and where.rpartition(":")[2].isdigit():
            host, _, port = where.rpartition(":")
            server = await asyncio.start_server(accept, host=host or "127.0.0.1", port=int(port))
        else:
            raise DeviceError(
                f"bad virtual device address {vsd_addr!r}: expected unix:PATH or tcp:HOST:PORT",
                address=vsd_addr,
            )
        self._servers.append(server)
        log.info("accepting virtual smart devices on %s", vsd_addr)
        return server

    async def run_device(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         port: str | None = None) -> None:
        """Identify one device and serve it until it goes; never raises."""
        client = SmartDeviceClient(reader, writer, port, catalog=self.catalog,
                                   silence_limit=self.silence_limit,
                                   motors_allowed=lambda: self._motors_allowed,
                                   poll_interval=self.poll_interval)
        uid: str | None = None
        reason = "the device service stopped"
        task = asyncio.current_task()
        if task is not None:
            self._device_tasks.add(task)
            task.add_done_callback(self._device_tasks.discard)
        try:
            try:
                await client.discover(self.buffers, timeout=self.discovery_timeout)
            except (DeviceError, BufferStoreError) as exc:
                log.warning("%s", exc.message)
                if port is not None:
                    self.rejected.add(port)
                return
            uid = str(client.uid)
            previous = self.devices.get(uid)
            if previous is not None:
                await previous.close("it reconnected on another port")
            self.devices[uid] = client
            try:
                await client.subscribe(interval=self.subscription_interval)
            except DeviceError as exc:  # keep it: reads, writes and heartbeats still work
                log.warning("%s; its values will not stream", exc.message)
            if not self._motors_allowed:
                await client.hold_motors(True)
                await client.disable()
            await self._publish_info(client)
            log.info("%s connected on %s", client.name, client.port)
            reason = await client.closed()
        except (DeviceGone, DeviceError) as exc:
            reason = exc.message
        except asyncio.CancelledError:
            reason = "its port was removed"
            raise
        except Exception as exc:
            log.exception("%s on %s failed", client.name, client.port)
            reason = f"internal error: {exc}"
        finally:
            if uid is not None and self.devices.get(uid) is client:
                del self.devices[uid]
                with contextlib.suppress(Exception):
                    await self._clear_info(uid)
                log.info("%s on %s removed: %s", client.name, client.port, reason)
            await asyncio.shield(client.close(reason))

    # -- info --------------------------------------------------------------------------------------

    def info(self, client: SmartDeviceClient) -> DeviceInfo:
        device_type = client.device_type
        assert device_type is not None
        params, interval = client.subscription
        return DeviceInfo(
            uid=str(client.uid),
            type=device_type.name,
            type_id=device_type.id,
            port=client.port,
            params=[ParamInfo(name=p.name, type=p.type, readable=p.readable,
                              writeable=p.writeable, lower=p.lower, upper=p.upper)
                    for p in device_type.params],
            subscription=SubscriptionInfo(params=device_type.names(params), interval_ms=interval),
        )

    async def _publish_info(self, client: SmartDeviceClient) -> None:
        if self.connection is not None:
            await self.connection.publish(self.connection.topics.device_info(client.uid),
                                          self.info(client), qos=1, retain=True)

    async def _clear_info(self, uid: str) -> None:
        if self.connection is not None:
            await self.connection.publish(self.connection.topics.device_info(uid), b"",
                                          qos=1, retain=True, timeout=2.0)

    # -- stop rules --------------------------------------------------------------------------------

    async def _on_match(self, topic: str, payload: bytes) -> None:
        if not payload:
            return
        try:
            match = decode(Match, payload)
        except MessageError as exc:
            log.warning("ignoring a bad match message on %s: %s", topic, exc.message)
            return
        previous, self.mode = self.mode, match.mode
        self.mode_since = match.since
        if match.mode not in RUNNING_MODES and previous != match.mode:
            await self._apply_stop_rules(disable=True)

    async def _on_executor(self, topic: str, payload: bytes) -> None:
        """A dead executor cannot stop what it started: its motors stop here."""
        online = False
        if payload:
            try:
                status = decode(ServiceStatus, payload)
            except MessageError as exc:
                log.warning("ignoring a bad executor status on %s: %s", topic, exc.message)
                return
            online = status.state == "online"
            if online:
                self.executor_started = status.started
        if online != self.executor_online:
            self.executor_online = online
            if not online and self.mode in RUNNING_MODES:
                log.warning("the executor went offline in %s: stopping the motors", self.mode)
                await self._apply_stop_rules(disable=True)

    def _input_live(self) -> bool:
        """Is a driver station sending input? Its buffer says connected *and* its last input
        is fresh, so a broker service that died (and cannot clear the flag) counts as none."""
        now = time.time()
        return any(buffer.connected and now - buffer.ts < INPUT_FRESH
                   for buffer in self._input_buffers())

    def _input_buffers(self) -> list[GamepadBuffer | KeyboardBuffer]:
        """The input buffers, (re)attached when missing or replaced by a restarted broker."""
        found = []
        for key in INPUT_KEYS:
            buffer = self._inputs.get(key)
            if buffer is None or not buffer.is_live():
                if buffer is not None:
                    self.buffers.forget(self._inputs.pop(key))
                try:
                    buffer = (self.buffers.keyboard() if key == "keyboard"
                              else self.buffers.gamepad(int(key)))
                except BufferStoreError:
                    continue
                self._inputs[key] = buffer
            found.append(buffer)
        return found

    def motors_allowed(self) -> bool:
        """May motors move now? Only while the executor is online and the mode is its own (a
        retained ``match`` outlives a dead executor, and a restarted one says "idle" only a
        moment after "online"), in auto, or in teleop with live driver input."""
        if not self.executor_online or self.mode_since < self.executor_started:
            return False  # no executor, or a match left by an executor that has restarted
        if self.mode == "auto":
            return True
        return self.mode == "teleop" and self._input_live()

    async def _apply_stop_rules(self, disable: bool = False) -> None:
        allowed = self.motors_allowed()
        changed = allowed != self._motors_allowed
        self._motors_allowed = allowed
        if not (changed or disable):
            return
        if changed:
            log.info("motors %s (mode %s)", "enabled" if allowed else "held at 0", self.mode)
        for client in list(self.devices.values()):
            try:
                await client.hold_motors(not allowed)
                if disable:
                    await client.disable()
            except DeviceError as exc:
                log.warning("%s", exc.message)

    async def _safety_loop(self) -> None:
        while True:
            try:
                await self._apply_stop_rules()
            except Exception:
                log.exception("applying the stop rules failed")
            await asyncio.sleep(self.poll_interval)

    # -- RPC ---------------------------------------------------------------------------------------

    def _clients(self, uids: str | Iterable[str] | None) -> list[SmartDeviceClient]:
        if uids is None:
            return list(self.devices.values())
        wanted = [uids] if isinstance(uids, str | int) else list(uids)
        return [self._client(uid) for uid in wanted]

    def _client(self, uid: Any) -> SmartDeviceClient:
        client = self.devices.get(str(uid))
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
        await self._publish_info(client)
        assert client.device_type is not None
        return {"params": client.device_type.names(bitmap), "interval_ms": interval_ms}

    @rpc
    async def heartbeat(self, uid: str, heartbeat_id: int | None = None,
                        timeout: float = 1) -> float:
        """Round trip of one heartbeat, in seconds."""
        return await self._client(uid).heartbeat(heartbeat_id, timeout)
