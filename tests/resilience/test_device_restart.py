"""``kill -9`` of the device service, then a new one (as a supervisor does): serial devices are
found again, nothing of the dead service is left in shared memory (docs/reliability.md)."""

from __future__ import annotations

import signal

from runtime import protocol
from runtime.buffer import BufferStore
from runtime.buffer.segment import SHM_DIR
from runtime.exception import BufferStoreError

from tests.resilience.device_stack import DeviceStack
from tests.support.wait import wait_for_async


def _device_segments(robot: str) -> list[str]:
    prefix = f"runtime.{robot}@device."
    return sorted(p.name for p in SHM_DIR.iterdir() if p.name.startswith(prefix))


async def test_a_killed_device_service_is_replaced_and_finds_its_devices(mosquitto_broker,
                                                                          robot_name):
    stack = await DeviceStack(mosquitto_broker.url, robot_name).start()
    try:
        uids = [protocol.make_uid(0, 1, 201), protocol.make_uid(10, 1, 202)]
        stack.plug("LimitSwitch", uids[0], pty="ttyRES0")
        stack.plug("YogiBear", uids[1], pty="ttyRES1")
        for uid in uids:
            await wait_for_async(lambda uid=uid: stack.announced(uid), timeout=30,
                                 message=stack.log)
        assert stack.service is not None
        stack.service.send_signal(signal.SIGKILL)
        stack.service.wait(10)
        assert len(_device_segments(robot_name)) == 2  # a killed service cannot unlink its own
        with BufferStore(robot_name) as store:
            for uid in uids:  # ... and nobody may trust them
                try:
                    store.open_device(uid)
                except BufferStoreError as exc:
                    assert "left over from a process that died" in exc.message
                else:
                    raise AssertionError("a dead service's buffer was attached")
        stack.restart_service()
        for uid in uids:  # found again by the new service (through its buffers)
            await wait_for_async(lambda uid=uid: stack.updates(uid) > 0, timeout=30,
                                 message=stack.log)
        # (``updates`` attaches, which refuses a segment without a live owner)
        assert len(_device_segments(robot_name)) == 2
        assert all(stack.announced(uid) for uid in uids)
    finally:
        await stack.stop()
