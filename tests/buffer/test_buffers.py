"""Shared-memory buffers across real (spawned) processes: values, writes, wake-ups, leaks."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import uuid

import pytest
from runtime.buffer import WAKE_CURRENT, WAKE_DESIRED, WAKE_INPUT, BufferStore, Waiter
from runtime.buffer.segment import SHM_DIR
from runtime.exception import BufferStoreError, ParameterError

from tests.buffer import workers
from tests.buffer.workers import KOALA

SPAWN = multiprocessing.get_context("spawn")
LIMIT_SWITCH = 0 << 72 | 2 << 64 | 99


@pytest.fixture
def robot():
    """A robot name no other test uses; its segments must all be gone afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    leftovers = [entry for entry in os.listdir(SHM_DIR) if entry.startswith(f"runtime.{name}@")]
    for entry in leftovers:
        os.unlink(SHM_DIR / entry)
    assert not leftovers, f"segments left behind: {leftovers}"


def start(target, *args):
    parent, child = SPAWN.Pipe()
    process = SPAWN.Process(target=target, args=(*args, child), daemon=True)
    process.start()
    return process, parent


def finish(process) -> None:
    process.join(30)
    assert process.exitcode == 0


def test_values_and_flags_are_visible_across_processes(robot):
    owner, pipe = start(workers.own_device, robot)
    assert pipe.recv() == "ready"
    with BufferStore(robot) as store:
        buffer = store.open_device(str(KOALA))
        assert buffer.get("enc_a") == 12.5
        assert buffer.read(["motor_enabled_a", "drive_mode_b"]) == {
            "motor_enabled_a": True, "drive_mode_b": 7}
        assert buffer.connected and buffer.update_count == 1
        assert buffer.subscription == (0b1010, 40)
        assert buffer.timestamp("enc_a") > 0 and buffer.timestamp("enc_b") == 0
        assert store.device_uids() == [str(KOALA)]

        buffer.write({"duty_cycle_a": 0.5, "motor_enabled_b": True})
        buffer.set("duty_cycle_a", -0.25)  # coalesced: only the latest value is sent
        buffer.request_read(["enc_b"])
        assert buffer.pending_writes == 1 << 0 | 1 << 14
        pipe.send("take")
        writes, reads = pipe.recv()
        assert writes == {"duty_cycle_a": -0.25, "motor_enabled_b": True}
        assert reads == 1 << 12
        assert buffer.pending_writes == 0
        pipe.send("take")
        assert pipe.recv() == ({}, 0)  # each write is taken once
        pipe.send("stop")
        assert pipe.recv() == "closed"
    finish(owner)


def test_no_torn_reads_under_a_hammering_writer(robot):
    with BufferStore(robot) as store:
        device = store.create_device(KOALA, "KoalaBear")
        gamepad = store.gamepad(1, create=True)
        writer, pipe = start(workers.hammer, robot, 3.0)
        assert pipe.recv() == "go"
        reads = torn = 0
        while not pipe.poll():
            values = device.read(workers.FLOATS)
            if len(set(values.values())) != 1:
                torn += 1
            buttons, axes = gamepad.buttons, gamepad.axes
            if len(set(axes)) != 1:
                torn += 1
            reads += 1
            del buttons
        writes = pipe.recv()
        finish(writer)
    assert torn == 0
    assert reads > 100 and writes > 100  # both sides really ran concurrently


def test_a_write_wakes_a_waiter_in_another_process(robot):
    with BufferStore(robot) as store:
        device = store.create_device(KOALA, "KoalaBear")
        waiting, pipe = start(workers.wait_once, robot)
        assert pipe.recv() == "watching"
        writer, writer_pipe = start(workers.set_desired, robot, {"duty_cycle_a": 0.75})
        assert writer_pipe.recv() == "written"
        assert pipe.recv() == (True, 0.75)  # woken, and the new value is already visible
        finish(writer)
        finish(waiting)
        assert device.take_writes() == {"duty_cycle_a": 0.75}


def test_wake_ups_coalesce_and_filter_by_event(robot):
    with BufferStore(robot) as store, Waiter() as waiter:
        device = store.create_device(KOALA, "KoalaBear")
        gamepad = store.gamepad(0, create=True)
        waiter.watch(device, WAKE_DESIRED)
        waiter.watch(gamepad, WAKE_INPUT)
        assert not waiter.wait(0)
        device.update({"enc_a": 1.0})  # current values: not what we watch
        assert not waiter.wait(0)
        for value in (0.1, 0.2, 0.3):
            device.set("duty_cycle_a", value)
        assert waiter.wait(0)
        assert not waiter.wait(0)  # three writes, one wake-up
        gamepad.update(1, [0, 0, 0, 0], 1.0)
        assert waiter.wait(0)
        gamepad.connected = False
        assert waiter.wait(0)
        waiter.unwatch(device)
        device.set("duty_cycle_a", 0.4)
        assert not waiter.wait(0)


async def test_async_wait_is_woken(robot):
    with BufferStore(robot) as store, Waiter() as waiter:
        device = store.create_device(KOALA, "KoalaBear")
        waiter.watch(device, WAKE_CURRENT)
        assert not await waiter.wait_async(0.01)
        device.update({"enc_a": 2.0})
        assert await waiter.wait_async(5)


def test_bad_writes_raise_clear_errors_and_write_nothing(robot):
    with BufferStore(robot) as store:
        device = store.create_device(KOALA, "KoalaBear")
        switch = store.create_device(LIMIT_SWITCH, "LimitSwitch")
        cases = [
            (device, {"duty_cycle_a": 1.5}, "out of bounds: it takes a number from -1 to 1"),
            (device, {"duty_cycle_a": "fast"}, "takes a number from -1 to 1, not str"),
            (device, {"motor_enabled_a": 1}, "takes True or False, not int"),
            (device, {"drive_mode_a": 256}, "out of bounds"),
            (device, {"duty_cycle_b": 0.5, "pid_kp_a": -1.0}, "pid_kp_a = -1.0 is out of bounds"),
            (device, {"speed": 1.0}, "KoalaBear has no param 'speed'"),
            (switch, {"switch0": True}, "switch0 cannot be written (it is read-only)"),
        ]
        for buffer, values, message in cases:
            with pytest.raises(ParameterError, match=re.escape(message)):
                buffer.write(values)
            assert buffer.pending_writes == 0, values  # all or nothing
        assert device.take_writes() == {}
        device.set("drive_mode_a", 3.0)  # a whole float is accepted for an integer param
        assert device.take_writes() == {"drive_mode_a": 3}


def test_missing_and_foreign_buffers_are_clear_errors(robot):
    with BufferStore(robot) as store:
        with pytest.raises(BufferStoreError, match="no shared-memory buffer for device"):
            store.open_device(KOALA)
        with pytest.raises(BufferStoreError, match="not a device uid"):
            store.open_device("koala")
        with pytest.raises(BufferStoreError, match="not KoalaBear"):
            store.create_device(LIMIT_SWITCH, "KoalaBear")
        with pytest.raises(BufferStoreError, match=r"gamepad index must be 0\.\.3"):
            store.gamepad(4)
        store.create_device(KOALA, "KoalaBear")
        with pytest.raises(BufferStoreError, match="already owned by a running process"):
            BufferStore(robot).create_device(KOALA, "KoalaBear")
        with BufferStore(robot + "-other") as other, pytest.raises(BufferStoreError):
            other.open_device(KOALA)  # another robot's namespace


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _segments(robot: str) -> set[str]:
    """This test's segments (other test runs may share /dev/shm)."""
    return {name for name in os.listdir(SHM_DIR) if name.startswith(f"runtime.{robot}@")}


def _cycle(robot: str, index: int) -> None:
    with BufferStore(robot) as owner, BufferStore(robot) as reader, Waiter() as waiter:
        device = owner.create_device(KOALA, "KoalaBear")
        attached = reader.open_device(KOALA)
        waiter.watch(attached)
        attached.set("duty_cycle_a", 0.5)
        device.update({"enc_a": float(index)})
        assert attached.get("enc_a") == index


def test_a_thousand_cycles_leak_nothing(robot):
    _cycle(robot, 0)  # creates the one process-wide socket that sends wake-ups, by design
    shm_before, fds_before = _segments(robot), _fds()
    for index in range(1000):
        _cycle(robot, index)
    assert _segments(robot) == shm_before
    assert _fds() == fds_before


def test_a_killed_owners_segments_are_reclaimed(robot):
    process, pipe = start(workers.own_and_hang, robot)
    pid = pipe.recv()
    names = _segments(robot)
    assert len(names) == 2
    os.kill(pid, signal.SIGKILL)
    process.join(30)
    with BufferStore(robot) as store:
        with pytest.raises(BufferStoreError, match="left over from a process that died"):
            store.open_device(KOALA)
        assert sorted(store.reclaim()) == sorted(names)
        assert store.reclaim() == []
    assert not _segments(robot)


def test_a_new_owner_replaces_a_dead_ones_segment(robot):
    process, pipe = start(workers.own_and_hang, robot)
    os.kill(pipe.recv(), signal.SIGKILL)
    process.join(30)
    with BufferStore(robot) as store:
        device = store.create_device(KOALA, "KoalaBear")
        assert device.update_count == 0
        store.gamepad(0, create=True)
        store.reclaim()  # live segments are never touched
        assert store.open_device(KOALA).update_count == 0


def test_processes_that_only_attach_never_unlink(robot):
    with BufferStore(robot) as store:
        device = store.create_device(KOALA, "KoalaBear")
        device.update({"enc_a": 4.0})
        for _ in range(2):
            process, pipe = start(workers.attach_and_exit, robot)
            assert pipe.recv() == 4.0
            finish(process)
        assert store.open_device(KOALA).get("enc_a") == 4.0


def test_gamepad_and_keyboard_values(robot):
    with BufferStore(robot) as broker, BufferStore(robot) as executor:
        pad = broker.gamepad(2, create=True)
        keyboard = broker.keyboard(create=True)
        assert not executor.gamepad(2).connected
        pad.update(1 << 0 | 1 << 16, [0.5, -0.5, 1.0, -1.0], 10.0)
        seen = executor.gamepad(2)
        assert seen.connected and seen.ts == 10.0
        assert seen.get("button_a") is True and seen.get("button_xbox") is True
        assert seen.get("button_b") is False and seen.get("joystick_left_y") == -0.5
        with pytest.raises(ParameterError, match="no button or axis 'trigger'"):
            seen.get("trigger")
        keyboard.update(1 << 0 | 1 << 46, 11.0)
        keys = executor.keyboard()
        assert keys.get("a") and keys.get("down_arrow") and not keys.get("b")
        with pytest.raises(ParameterError, match="no key 'enter'"):
            keys.get("enter")
        pad.connected = False
        assert not seen.connected
        assert [p.name for p in broker.gamepad_params()][16:] == [
            "button_xbox", "joystick_left_x", "joystick_left_y", "joystick_right_x",
            "joystick_right_y"]
