"""Serial ports for real (pseudo-terminals opened with pyserial), observers, and leaks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path

from runtime import protocol
from runtime.buffer.segment import SHM_DIR
from runtime.service.device import EventObserver, PollingObserver
from runtime.virtual import Faults, VirtualDevice

from tests.support.wait import wait_for_async


async def _pty_device(link: Path, device_type: str, faults: Faults = Faults(), uid=None):
    device = VirtualDevice(device_type, uid, faults=faults)
    ready = asyncio.Event()
    task = asyncio.create_task(device.serve_pty(link, ready))
    await asyncio.wait_for(ready.wait(), 10)
    return device, task


def _fds_to(path: str) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                count += 1
    return count


async def test_a_device_on_a_serial_port_is_discovered_and_driven(serial_rig):
    rig, directory = serial_rig
    device, task = await _pty_device(directory / "ttyVSD0", "YogiBear")
    info = await rig.online(device)
    assert info.port == str(directory / "ttyVSD0")
    assert info.subscription.interval_ms == 40
    await rig.set_mode("auto")
    rig.input_store.open_device(device.uid).set("duty_cycle", -0.5)
    await wait_for_async(lambda: device.values["duty_cycle"] == -0.5)
    buffer = rig.buffers.open_device(device.uid)
    await wait_for_async(lambda: buffer.get("enc_pos") < -10)  # the simulated motor turns
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await wait_for_async(lambda: rig.infos.get(str(device.uid), "absent") is None)


async def test_a_port_that_is_not_a_smart_device_is_released(serial_rig):
    rig, directory = serial_rig
    link = directory / "ttyVSD1"
    device, task = await _pty_device(link, "KoalaBear", Faults(unresponsive=True))
    slave = os.path.realpath(link)
    await wait_for_async(lambda: str(link) in rig.manager.rejected)
    await wait_for_async(lambda: _fds_to(slave) == 1)  # only the simulator's own end is open
    pings = sum(p.type == protocol.MessageType.PING for p in device.received)
    assert pings >= 1
    scans = rig.manager.observer.scans
    await wait_for_async(lambda: rig.manager.observer.scans >= scans + 5)  # several rescans...
    assert str(link) not in rig.manager._ports  # ...and nothing re-probed it while plugged in
    assert sum(p.type == protocol.MessageType.PING for p in device.received) == pings
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await wait_for_async(lambda: str(link) not in rig.manager.rejected)  # unplugged: forgotten


class FakeMonitor:
    """A pyudev Monitor stand-in (no udev runs here): a socketpair's readability is the
    kernel's signal, ``poll`` hands out queued events."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.queue: list[object] = []

    def fileno(self) -> int:
        return self.reader.fileno()

    def emit(self, action: str, node: str) -> None:
        self.queue.append(type("Device", (), {"action": action, "device_node": node})())
        self.writer.send(b"x")

    def poll(self, timeout: float = 0) -> object | None:
        if not self.queue:
            with contextlib.suppress(BlockingIOError):
                self.reader.setblocking(False)
                self.reader.recv(4096)
            return None
        return self.queue.pop(0)


async def test_event_observer_batches_a_burst_into_one_scan():
    present: set[str] = {"/dev/ttyACM0", "/dev/ttyS0"}
    monitor = FakeMonitor()
    observer = EventObserver({"/dev/ttyACM*"}, batch=0.05, monitor=monitor,
                             scan=lambda: set(present))
    changes = observer.changes()
    assert await anext(changes) == ({"/dev/ttyACM0"}, set())
    present.update({"/dev/ttyACM1", "/dev/ttyACM2", "/dev/ttyUSB0"})
    present.discard("/dev/ttyACM0")
    for node in ("/dev/ttyACM1", "/dev/ttyACM2", "/dev/ttyUSB0"):
        for action in ("add", "change", "bind"):
            monitor.emit(action, node)
    monitor.emit("remove", "/dev/ttyACM0")
    added, removed = await asyncio.wait_for(anext(changes), 10)
    assert (added, removed) == ({"/dev/ttyACM1", "/dev/ttyACM2"}, {"/dev/ttyACM0"})
    assert observer.events == 10 and observer.scans == 2  # ten events, one scan
    await changes.aclose()


async def test_polling_observer_reports_additions_and_removals(tmp_path):
    observer = PollingObserver({str(tmp_path / "ttyACM*")}, interval=0.01)
    changes = observer.changes()
    (tmp_path / "ttyACM0").touch()
    assert await asyncio.wait_for(anext(changes), 10) == ({str(tmp_path / "ttyACM0")}, set())
    (tmp_path / "ttyACM0").unlink()
    assert await asyncio.wait_for(anext(changes), 10) == (set(), {str(tmp_path / "ttyACM0")})
    await changes.aclose()


async def test_32_devices_are_all_discovered(rig):
    devices = [await rig.plug("LimitSwitch") for _ in range(32)]
    for device in devices:
        await rig.online(device)
    assert len(await rig.call("list")) == 32


async def test_100_plug_cycles_leave_nothing_behind(rig):
    async def cycle():
        device = await rig.plug("KoalaBear", protocol.make_uid(13, 1, 5))
        await rig.online(device)
        await rig.unplug(device)
        await wait_for_async(lambda: rig.infos.get(str(device.uid), "absent") is None)

    await cycle()  # warm: process-wide sockets, caches
    fds = set(os.listdir("/proc/self/fd"))
    tasks = len(asyncio.all_tasks())
    mine = f"runtime.{rig.robot}@"  # other test runs may share /dev/shm

    def segments() -> set[str]:
        return {name for name in os.listdir(SHM_DIR) if name.startswith(mine)}

    before = segments()
    for _ in range(100):
        await cycle()
    await wait_for_async(lambda: len(asyncio.all_tasks()) <= tasks)
    assert set(os.listdir("/proc/self/fd")) == fds
    assert segments() == before
