"""A real ``runtime service device`` process with virtual devices as real processes, watched from
outside through MQTT (retained infos, with their history) and the shared-memory buffers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

from runtime.buffer import BufferStore
from runtime.messages import DeviceInfo, decode
from runtime.remote import Connection

from tests.support.wait import wait_for_async

RUNTIME = [sys.executable, "-m", "runtime"]


class DeviceStack:
    def __init__(self, url: str, robot: str) -> None:
        self.url = url
        self.robot = robot
        self.dir = Path(tempfile.mkdtemp(prefix="rt-res-", dir="/tmp"))
        self.address = f"unix:{self.dir / 'vsd.sock'}"
        self.glob = str(self.dir / "ttyRES*")
        self.history: dict[str, list[bool]] = {}  #: uid -> announced (True) / cleared (False)
        self.devices: list[subprocess.Popen[bytes]] = []
        self.service: subprocess.Popen[bytes] | None = None
        self.watcher: Connection | None = None
        self.store = BufferStore(robot)

    async def start(self, watch: bool = True) -> DeviceStack:
        """Start the service; with ``watch``, follow the infos from now (else call ``watch``
        once the broker is up)."""
        (self.dir / "state").mkdir()
        with open(self.dir / "device.log", "wb") as log:  # the child keeps its own descriptor
            self.service = self._start_service(log)
        if watch:
            await self.watch()
        await wait_for_async(lambda: (self.dir / "vsd.sock").exists(), timeout=30,
                             message=self.log)
        return self

    async def watch(self) -> None:
        self.watcher = Connection(self.url, robot=self.robot)
        await self.watcher.start()
        await self.watcher.subscribe(self.watcher.topics.any_device_info, self._on_info, qos=1)

    def _start_service(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*RUNTIME, "service", "device", "--mqtt", self.url, "--robot", self.robot,
             "--state-dir", str(self.dir / "state"), "--observer", "poll",
             "--serial-glob", self.glob, "--virtual-listen", self.address],
            stdout=subprocess.DEVNULL, stderr=log)

    def restart_service(self) -> None:
        """Start the service again (after it died), appending to its log."""
        with open(self.dir / "device.log", "ab") as log:
            self.service = self._start_service(log)

    def log(self) -> str:
        return (self.dir / "device.log").read_text(errors="replace")

    def _on_info(self, topic: str, payload: bytes) -> None:
        assert self.watcher is not None
        uid = self.watcher.topics.parse(topic).uid
        if payload:
            decode(DeviceInfo, payload)  # a valid info, or the test fails loudly
        self.history.setdefault(str(uid), []).append(bool(payload))

    def announced(self, uid: int | str) -> bool:
        events = self.history.get(str(uid), [])
        return bool(events) and events[-1]

    def plug(self, device_type: str, uid: int, *, pty: str | None = None) -> subprocess.Popen:
        where = ["--pty", str(self.dir / pty)] if pty else ["--connect", self.address]
        process = subprocess.Popen([*RUNTIME, "virtual-device", device_type, "--uid", str(uid),
                                    *where], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        self.devices.append(process)
        return process

    def updates(self, uid: int) -> int:
        """The update count of the device's buffer (0 while it has none)."""
        try:
            buffer = self.store.open_device(uid)
        except Exception:
            return 0
        try:
            return buffer.update_count if buffer.connected else 0
        finally:
            self.store.forget(buffer)

    async def stop(self) -> None:
        for process in [*self.devices, self.service]:
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
        for process in [*self.devices, self.service]:
            if process is not None:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        if self.watcher is not None:
            await self.watcher.close()
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)
