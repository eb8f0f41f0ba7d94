"""SIGSTOP/SIGCONT of each virtual device and of the device service (issue 11, resilience).

Real processes: ``runtime service device`` and ``runtime virtual-device`` (over its socket and
on a pseudo-terminal opened as a serial port), watched through MQTT and the shared memory. A
pause is 1.5 s, longer than the 1 s silence limit. Expectations (docs/reliability.md): a paused
device is dropped and back by itself after it resumes; a paused device service keeps every
device (no info is cleared) and their data flows again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest
from runtime import protocol

from tests.resilience.device_stack import DeviceStack
from tests.support.wait import wait_for_async

PAUSE = 1.5


@pytest.fixture
async def stack(mosquitto_broker, robot_name):
    stack = await DeviceStack(mosquitto_broker.url, robot_name).start()
    try:
        yield stack
    finally:
        await stack.stop()


def _uids() -> list[int]:
    return [protocol.make_uid(13, 1, 100), protocol.make_uid(0, 1, 101),
            protocol.make_uid(10, 1, 102)]


async def _plug_three(stack: DeviceStack) -> list[tuple[int, subprocess.Popen[bytes]]]:
    koala, switch, yogi = _uids()
    plugged = [(koala, stack.plug("KoalaBear", koala)),
               (switch, stack.plug("LimitSwitch", switch, pty="ttyRES0")),
               (yogi, stack.plug("YogiBear", yogi, pty="ttyRES1"))]
    for uid, _ in plugged:
        await wait_for_async(lambda uid=uid: stack.announced(uid), timeout=30,  # type: ignore[misc]
                             message=stack.log)
    return plugged


@pytest.mark.parametrize("which", ["socket", "pty"])
async def test_a_paused_virtual_device_is_back_after_it_resumes(stack, which):
    plugged = await _plug_three(stack)
    uid, process = plugged[0] if which == "socket" else plugged[1]
    others = [u for u, _ in plugged if u != uid]
    os.kill(process.pid, signal.SIGSTOP)
    try:
        await wait_for_async(lambda: not stack.announced(uid), message=stack.log)  # dropped
    finally:
        os.kill(process.pid, signal.SIGCONT)
    await wait_for_async(lambda: stack.announced(uid), message=stack.log)  # back by itself
    count = stack.updates(uid)
    await wait_for_async(lambda: stack.updates(uid) > count)  # streaming again
    assert all(stack.history[str(u)] == [True] for u in others)  # the others never blinked
    assert process.poll() is None


async def test_a_paused_device_service_keeps_every_device(stack):
    plugged = await _plug_three(stack)
    counts = {uid: stack.updates(uid) for uid, _ in plugged}
    assert stack.service is not None
    os.kill(stack.service.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(PAUSE)  # the fault itself: a 1.5 s pause, not a synchronisation
    finally:
        os.kill(stack.service.pid, signal.SIGCONT)
    for uid, _ in plugged:
        await wait_for_async(lambda uid=uid: stack.updates(uid) > counts[uid] + 5,
                             message=stack.log)
    assert all(stack.history[str(uid)] == [True] for uid, _ in plugged), stack.history
    assert "removed" not in stack.log()
