"""Functions run in spawned processes by the buffer tests (importable by ``spawn``)."""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.connection import Connection

from runtime.buffer import WAKE_DESIRED, BufferStore, Waiter

KOALA = 13 << 72 | 1 << 64 | 42
FLOATS = ("duty_cycle_a", "duty_cycle_b", "pid_ki_a", "pid_kd_a", "enc_a", "deadband_a",
          "pid_kp_a", "pid_kp_b", "pid_ki_b", "pid_kd_b", "enc_b", "deadband_b")


def own_device(robot: str, pipe: Connection) -> None:
    """Create a KoalaBear buffer, report current values, take writes on request, then exit."""
    with BufferStore(robot) as store:
        buffer = store.create_device(KOALA, "KoalaBear")
        buffer.update({"enc_a": 12.5, "motor_enabled_a": True, "drive_mode_b": 7})
        buffer.connected = True
        buffer.subscription = (0b1010, 40)
        pipe.send("ready")
        while (command := pipe.recv()) != "stop":
            if command == "take":
                pipe.send((buffer.take_writes(), buffer.take_reads()))
    pipe.send("closed")


def own_and_hang(robot: str, pipe: Connection) -> None:
    """Create buffers and wait to be killed (never closes them)."""
    store = BufferStore(robot)
    store.create_device(KOALA, "KoalaBear")
    store.gamepad(0, create=True)
    pipe.send(os.getpid())
    signal.pause()


def hammer(robot: str, seconds: float, pipe: Connection) -> None:
    """Write every float param with the same counter, as fast as possible, for ``seconds``."""
    with BufferStore(robot) as store:
        buffer = store.open_device(KOALA)
        gamepad = store.gamepad(1)
        pipe.send("go")
        end = time.monotonic() + seconds
        count = 0
        while time.monotonic() < end:
            count += 1
            value = float(count)
            buffer.update(dict.fromkeys(FLOATS, value))
            gamepad.update(count, [value / 1e7] * 4, value)
        pipe.send(count)


def set_desired(robot: str, values: dict, pipe: Connection) -> None:
    with BufferStore(robot) as store:
        store.open_device(KOALA).write(values)
    pipe.send("written")


def wait_once(robot: str, pipe: Connection) -> None:
    """Watch the device for desired writes; report what the wake-up showed."""
    with BufferStore(robot) as store, Waiter() as waiter:
        buffer = store.open_device(KOALA)
        waiter.watch(buffer, WAKE_DESIRED)
        pipe.send("watching")
        woken = waiter.wait(timeout=30)
        pipe.send((woken, buffer.desired("duty_cycle_a")))


def watch_and_hang(robot: str, pipe: Connection) -> None:
    store = BufferStore(robot)
    waiter = Waiter()
    waiter.watch(store.open_device(KOALA), WAKE_DESIRED)
    pipe.send(os.getpid())
    signal.pause()


def attach_and_exit(robot: str, pipe: Connection) -> None:
    """Attach and exit without closing: the segment must survive (no resource_tracker)."""
    store = BufferStore(robot)
    pipe.send(store.open_device(KOALA).get("enc_a"))


def burst_then_single(robot: str, seconds: float, singles: int, pipe: Connection) -> None:
    """Gamepad input as fast as it comes for ``seconds``, then one write per request."""
    with BufferStore(robot) as store:
        gamepad = store.gamepad(0)
        pipe.send("go")
        end = time.monotonic() + seconds
        count = 0
        while time.monotonic() < end:
            count += 1
            gamepad.update(count, [0.0] * 4, float(count))
        pipe.send(count)
        for i in range(singles):
            assert pipe.recv() == "write"
            gamepad.update(i, [0.5] * 4, 1e9 + i)
            pipe.send("written")
