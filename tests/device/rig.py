"""A device service in the test's own event loop, real broker, real buffers, virtual devices.

The rig plays the other services' parts where a device test needs them: it publishes ``match``
and a live executor's status and advances the liveness counter like a running executor (unless
``play_executor=False``: then a real executor process is started with :class:`ExecutorProcess`),
owns a gamepad buffer like the broker service (live driver input), and calls the device RPC like
a client. A dying executor is never faked: tests SIGSTOP or SIGKILL a real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from runtime.buffer import BufferStore
from runtime.buffer.liveness import LivenessBeat, start_liveness
from runtime.exception import RPCError
from runtime.messages import DeviceInfo, Match, ServiceStatus, decode, encode
from runtime.protocol import MessageType, Packet
from runtime.remote import Client, Connection
from runtime.service.device import SmartDeviceManager
from runtime.virtual import Faults, VirtualDevice

from tests.support.wait import wait_for_async


class DeviceRig:
    def __init__(self, url: str, robot: str) -> None:
        self.url = url
        self.robot = robot
        self.socket_dir = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
        self.address = f"unix:{self.socket_dir / 'vsd.sock'}"
        self.infos: dict[str, DeviceInfo | None] = {}
        self.devices: list[tuple[VirtualDevice, asyncio.Task[None]]] = []

    async def start(self, observer: Any = None, play_executor: bool = True,
                    **manager_options: Any) -> DeviceRig:
        self.buffers = BufferStore(self.robot)
        self.connection = Connection(self.url, robot=self.robot, service="device")
        await self.connection.start()
        self.manager = SmartDeviceManager(self.buffers, observer, **manager_options)
        await self.manager.start(self.connection)
        await self.manager.open_virtual_devices(self.address)
        self.client_connection = Connection(self.url, robot=self.robot)
        await self.client_connection.start()
        await self.client_connection.subscribe(self.client_connection.topics.any_device_info,
                                               self._on_info, qos=1)
        self.client = Client(self.client_connection)
        await self.client.start()
        self.input_store = BufferStore(self.robot)
        self.beat: LivenessBeat | None = None
        if play_executor:
            self.beat = start_liveness(self.input_store)
            await self.executor_online()
        return self

    async def executor_online(self, started: float = 0.0) -> None:
        """Publish a running executor's retained status (started at ``started``)."""
        status = ServiceStatus(state="online", version="test", pid=1, started=started)
        await self.client_connection.publish(self.client_connection.topics.status("executor"),
                                             encode(status), qos=1, retain=True)
        await wait_for_async(lambda: self.manager.guard.executor_online
                             and self.manager.guard.executor_started == started)

    def _on_info(self, topic: str, payload: bytes) -> None:
        uid = topic.split("/")[-2]
        self.infos[uid] = decode(DeviceInfo, payload) if payload else None

    async def plug(self, device_type: str, uid: int | str | None = None,
                   faults: Faults = Faults(), **options: Any) -> VirtualDevice:
        device = VirtualDevice(device_type, uid, faults=faults, **options)
        task = asyncio.create_task(device.connect(self.address))
        self.devices.append((device, task))
        return device

    async def unplug(self, device: VirtualDevice) -> None:
        for entry in list(self.devices):
            if entry[0] is device:
                entry[1].cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await entry[1]
                self.devices.remove(entry)

    async def online(self, device: VirtualDevice) -> DeviceInfo:
        """Wait for the device's retained info; return it."""
        info = await wait_for_async(lambda: self.infos.get(str(device.uid)) is not None,
                                    message=f"{device} never announced")
        assert info
        announced = self.infos[str(device.uid)]
        assert announced is not None
        return announced

    async def set_mode(self, mode: str, since: float = 0.0) -> None:
        match = Match.model_validate({"mode": mode, "since": since})
        await self.client_connection.publish(self.client_connection.topics.match,
                                             encode(match), qos=1, retain=True)
        await wait_for_async(lambda: self.manager.guard.mode == mode
                             and self.manager.guard.mode_since == since)

    def live_input(self, ts: float | None = None) -> Any:
        """Own gamepad 0 like the broker service, with input stamped ``ts`` (default: an hour
        ahead, so it stays fresh for the whole test whatever the machine's load: tests of the
        freshness rule give their own stamps)."""
        gamepad = self.input_store.gamepad(0, create=True)
        gamepad.update(0, [0.0] * 4, time.time() + 3600 if ts is None else ts)
        return gamepad

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self.client.call("device", method, *args, **kwargs)

    async def stop(self) -> None:
        for _, task in self.devices:
            task.cancel()
        await asyncio.gather(*(task for _, task in self.devices), return_exceptions=True)
        await self.manager.stop()
        if self.beat is not None:
            self.beat.stop()
        await self.client_connection.close()
        await self.connection.close()
        self.input_store.close()
        self.buffers.close()
        with contextlib.suppress(OSError):
            for entry in self.socket_dir.iterdir():
                entry.unlink()
            os.rmdir(self.socket_dir)


class ExecutorProcess:
    """A real ``runtime service executor`` process running ``student_code`` (a source text)."""

    def __init__(self, rig: DeviceRig, student_code: str) -> None:
        self.rig = rig
        self.state_dir = Path(tempfile.mkdtemp(prefix="rt-exec-", dir="/tmp"))
        (self.state_dir / "studentcode.py").write_text(student_code)
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> ExecutorProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime", "service", "executor", "--mqtt", self.rig.url,
             "--robot", self.rig.robot, "--state-dir", str(self.state_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = self.process.pid
        await wait_for_async(lambda: self.rig.manager.guard.executor_online
                             and self.rig.manager.guard.liveness.silent_for() is not None,
                             timeout=30, message=f"executor {pid} never came online")

        deadline = time.monotonic() + 30
        while True:  # "online" may precede its RPC subscriptions
            try:
                await self.rig.client.call("executor", "get_mode", timeout=1.0)
                break
            except RPCError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"executor {pid} never answered") from None
        return self

    async def set_mode(self, mode: str) -> None:
        await self.rig.client.call("executor", "set_mode", mode)
        await wait_for_async(lambda: self.rig.manager.guard.mode == mode)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.state_dir, ignore_errors=True)


HEARTBEATS = (MessageType.HEARTBEAT_REQUEST, MessageType.HEARTBEAT_RESPONSE)


def commands(device: VirtualDevice) -> list[Packet]:
    """What the host sent the device, heartbeat answers left out (they come every 200 ms)."""
    return [p for p in device.received if p.type not in HEARTBEATS]

