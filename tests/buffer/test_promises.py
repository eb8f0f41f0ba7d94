"""What docs/buffers.md promises, each shown with real processes and real shared memory:
a dead waiter's slot is freed, 8 waiter slots and a clear error for a ninth, a reader gives up
on a writer that died mid-write, and ownership and wake-ups work across PID namespaces."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest
from runtime.buffer import WAKE_DESIRED, BufferStore, Waiter, wake
from runtime.buffer.base import begin_write
from runtime.buffer.device import CURRENT
from runtime.buffer.segment import SHM_DIR
from runtime.exception import BufferStoreError

from tests.buffer import workers
from tests.buffer.workers import KOALA
from tests.support.wait import wait_for

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def robot():
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    leftovers = [entry for entry in os.listdir(SHM_DIR) if entry.startswith(f"runtime.{name}@")]
    for entry in leftovers:
        os.unlink(SHM_DIR / entry)
    assert not leftovers, f"segments left behind: {leftovers}"


def occupied(buffer) -> list[int]:
    """The pids registered in a buffer's waiter table."""
    pids = []
    for slot in range(wake.SLOTS):
        pid, _, _ = wake.SLOT.unpack_from(buffer.view, wake.TABLE_OFFSET + slot * wake.SLOT_SIZE)
        if pid:
            pids.append(pid)
    return pids


def test_a_dead_waiters_slot_is_freed_by_the_next_write(robot):
    with BufferStore(robot) as store:
        device = store.create_device(KOALA, "KoalaBear")
        parent, child = SPAWN.Pipe()
        process = SPAWN.Process(target=workers.watch_and_hang, args=(robot, child), daemon=True)
        process.start()
        pid = parent.recv()
        assert occupied(device) == [pid]
        os.kill(pid, signal.SIGKILL)
        process.join(30)
        assert occupied(device) == [pid]  # nobody knows yet
        device.set("duty_cycle_a", 0.1)  # the wake-up is refused: the slot is freed
        assert occupied(device) == []


def test_eight_waiters_fit_and_a_ninth_is_refused(robot):
    with BufferStore(robot) as store:
        device = store.create_device(KOALA, "KoalaBear")
        waiters = [Waiter() for _ in range(wake.SLOTS)]
        try:
            for waiter in waiters:
                waiter.watch(device, WAKE_DESIRED)
            with Waiter() as ninth:
                with pytest.raises(BufferStoreError,
                                   match=r"too many processes wait on this buffer \(at most 8\)"):
                    ninth.watch(device, WAKE_DESIRED)
                waiters.pop().close()  # one leaves: its slot is free again
                ninth.watch(device, WAKE_DESIRED)
                device.set("duty_cycle_a", 0.2)
                assert ninth.wait(5) and all(w.wait(5) for w in waiters)
        finally:
            for waiter in waiters:
                waiter.close()


def test_a_reader_gives_up_on_a_writer_that_died_mid_write(robot):
    with BufferStore(robot) as store:
        device = store.create_device(KOALA, "KoalaBear")
        device.update({"enc_a": 1.5})
        begin_write(device.view, CURRENT)  # ... and the writer dies before end_write
        reader = BufferStore(robot)
        try:
            with pytest.raises(BufferStoreError, match="stayed mid-write: its writer died"):
                reader.open_device(KOALA).get("enc_a")
        finally:
            reader.close()


CHILD = textwrap.dedent("""
    import sys
    from runtime.buffer import WAKE_DESIRED, BufferStore, Waiter
    robot, uid = sys.argv[1], int(sys.argv[2])
    store = BufferStore(robot)
    device = store.create_device(uid, "KoalaBear")
    device.update({"enc_a": 7.5})
    device.connected = True
    waiter = Waiter()
    waiter.watch(device, WAKE_DESIRED)
    print("pid", __import__("os").getpid(), flush=True)
    woken = waiter.wait(30)
    print("woken", woken, device.desired("duty_cycle_a"), flush=True)
    sys.stdin.readline()  # hold the segment until told (or killed)
""")


def test_ownership_and_wake_ups_work_across_pid_namespaces(robot):
    """The owner runs in a PID namespace of its own (as in a container sharing /dev/shm):
    its pid means nothing here, yet its segment counts as owned while it lives, its waiter is
    woken from here, and its segment is reclaimed once it is killed."""
    child = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", CHILD, robot,
         str(KOALA)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().split()[:1] == ["pid"]  # (1 or 2, in its namespace)
        with BufferStore(robot) as store:
            assert store.reclaim() == []  # alive, whatever its pid says
            device = store.open_device(KOALA)
            assert device.get("enc_a") == 7.5 and device.connected
            device.set("duty_cycle_a", 0.25)
            assert child.stdout.readline().split() == ["woken", "True", "0.25"]
            device.close()
            child.kill()  # unshare --kill-child takes the namespace's processes with it
            child.wait(30)
            reclaimed = wait_for(store.reclaim)  # once the kernel has dropped its lock
            assert len(reclaimed) == 1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
