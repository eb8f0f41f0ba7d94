"""100 hotplug cycles of misbehaving virtual devices next to 16 healthy ones (issue 11).

Every fault mode of ``runtime.virtual.Faults`` (and a stall) in turn, plugged and unplugged
while 16 healthy devices stream at 40 ms. Expectations (docs/reliability.md): the healthy devices
lose no data (every DeviceData they sent is in their buffers), none is ever dropped, and nothing
leaks (file descriptors, shared-memory segments, asyncio tasks).
"""

from __future__ import annotations

import asyncio
import os
import random

from runtime import protocol
from runtime.buffer.segment import SHM_DIR
from runtime.protocol import MessageType
from runtime.virtual import Faults

from tests.support.wait import wait_for_async

HEALTHY = ("LimitSwitch", "Potentiometer", "LineFollower", "KoalaBear")
FAULTS = [
    ("unresponsive", Faults(unresponsive=True)),
    ("garbage", Faults(garbage=True)),
    ("bad-checksum", Faults(bad_checksum=True)),
    ("silent-after", Faults(silent_after=30)),
    ("lose-confirmations", Faults(lose_confirmations=2)),
    ("stall", Faults()),
]


async def _cycle(rig, index: int) -> None:
    name, faults = FAULTS[index % len(FAULTS)]
    uid = protocol.make_uid(13, 1, 10_000 + index % 7)  # uids come back, as real devices do
    device = await rig.plug("KoalaBear", uid, faults)
    if name == "unresponsive":
        await wait_for_async(lambda: any(p.type == MessageType.PING for p in device.received))
    else:
        await rig.online(device)
        if name == "stall":
            device.pause()  # unplugged while stalled
    await rig.unplug(device)
    if name != "unresponsive":
        await wait_for_async(lambda: rig.infos.get(str(uid), "absent") is None
                             and str(uid) not in rig.manager.devices)


async def test_100_faulty_hotplugs_next_to_16_healthy_devices(rig):
    healthy = []
    for i in range(16):
        healthy.append(await rig.plug(HEALTHY[i % len(HEALTHY)], None))
    for device in healthy:
        await rig.online(device)
    sessions = {str(d.uid): rig.manager.devices[str(d.uid)] for d in healthy}
    await _cycle(rig, 0)  # warm: process-wide sockets, caches
    fds = _fds()
    tasks = len(asyncio.all_tasks())
    mine = f"runtime.{rig.robot}@"

    def segments() -> set[str]:
        return {name for name in os.listdir(SHM_DIR) if name.startswith(mine)}

    before = segments()
    order = list(range(1, 101))
    random.Random(11).shuffle(order)  # the fault modes mixed, reproducibly
    for index in order:
        await _cycle(rig, index)

    # the healthy ones never blinked (checked before the freeze below: a device frozen for
    # longer than the 1 s silence limit is removed, as it should be, and a loaded machine may
    # take that long to check 16 buffers)
    assert all(rig.infos[str(d.uid)] is not None for d in healthy)
    assert all(rig.manager.devices[uid] is session for uid, session in sessions.items())
    buffers = {str(d.uid): rig.buffers.open_device(d.uid) for d in healthy}
    for device in healthy:  # freeze them, then every packet they sent must be in the buffer
        device.pause()
    for device in healthy:
        buffer = buffers[str(device.uid)]
        await wait_for_async(lambda d=device, b=buffer: b.update_count == d.data_sent,
                             message=lambda d=device, b=buffer:
                             f"{d}: sent {d.data_sent}, buffer has {b.update_count}")
        client = sessions[str(device.uid)]
        assert client.decoder.bad_frames == 0 and client.decoder.skipped_bytes == 0
    for device in healthy:
        device.resume()
    for buffer in buffers.values():
        rig.buffers.forget(buffer)
    await wait_for_async(lambda: len(asyncio.all_tasks()) <= tasks,
                         message=lambda: f"{len(asyncio.all_tasks())} tasks, {tasks} before")
    await wait_for_async(lambda: not _fds() - fds,
                         message=lambda: f"leaked: {[_target(fd) for fd in _fds() - fds]}")
    assert segments() == before


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"{fd} (closed meanwhile)"
