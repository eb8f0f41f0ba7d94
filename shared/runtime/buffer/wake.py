"""Wake-ups between processes: "this buffer changed" without busy polling.

Each :class:`Waiter` binds a Linux *abstract* UNIX datagram socket (no file to clean up: the
name dies with the socket, so a crashed waiter leaves nothing behind) and registers
``(pid, token, event mask)`` in a small table in the header of every buffer it watches. A writer,
after its data is visible, sends one byte to each registered waiter whose mask matches.

Coalescing without lost wake-ups: each table slot has a ``pending`` byte and a ``changes``
counter (u16). For every matching write the writer bumps ``changes`` and, only when ``pending``
is 0, sets it to 1 and sends one byte: a burst of writes costs one wake-up and one syscall. A
waiter re-arms in this order: drain its socket, clear its ``pending`` bytes, then re-check its
level (has any ``changes`` counter moved since it last looked?). Only the level says "woken"; a
datagram is just the doorbell. A write that lands anywhere in that sequence is either seen by
the level check or finds ``pending`` cleared and rings again, so no change is lost. (The old
order, clear then drain, could swallow the datagram of a write made between the two steps and
leave ``pending`` set with nothing queued: a waiter that selects on ``fileno()`` was then never
woken again; issue 11 saw it after a 0.5 s burst of gamepad input, and
tests/buffer/test_wake.py forces it.) A dead waiter shows up as ``ECONNREFUSED`` on send and
its slot is freed; a dead writer just stops sending (waiters always wait with a timeout where
it matters).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import select
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING

from runtime.exception import BufferStoreError

if TYPE_CHECKING:
    from runtime.buffer.base import Buffer

WAKE_CURRENT = 1  #: new current values from a device (written by the device service)
WAKE_DESIRED = 2  #: new desired values or read requests (written by the executor)
WAKE_INPUT = 4  #: new gamepad/keyboard input or a change of its connected flag (broker)
WAKE_MODE = 8  #: the executor stated a new mode (its liveness segment; runtime.buffer.liveness)
WAKE_ALL = WAKE_CURRENT | WAKE_DESIRED | WAKE_INPUT | WAKE_MODE

GENERATION_OFFSET = 24  #: u32 in the segment header, bumped on every table change
TABLE_OFFSET = 64
SLOTS = 8
SLOT = struct.Struct("<III")  # pid, token, mask; then the pending byte at +12
SLOT_SIZE = 16
PENDING = 12
CHANGES = 14  #: u16 bumped by every matching write (the waiter's level)
TABLE_SIZE = SLOTS * SLOT_SIZE
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")

_process_lock = threading.Lock()  # fcntl locks do not exclude threads of one process
_fence_lock = threading.Lock()


def _fence() -> None:
    """A full memory barrier between a store and a later load (a locked instruction on x86,
    acquire/release pairs on ARM): without it a CPU may let the load pass the store, and both
    sides of the pending/changes handshake could miss each other."""
    _fence_lock.acquire()
    _fence_lock.release()
_sender: socket.socket | None = None


def _address(pid: int, token: int) -> bytes:
    return b"\0runtime-wake.%d.%d" % (pid, token)


def _send_socket() -> socket.socket:
    global _sender
    if _sender is None or _sender.fileno() < 0 or _sender_pid != os.getpid():
        _reset_sender()
    assert _sender is not None
    return _sender


_sender_pid = -1


def _reset_sender() -> None:
    global _sender, _sender_pid
    _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                            | socket.SOCK_CLOEXEC)
    _sender_pid = os.getpid()


class WaiterTable:
    """The waiter slots of one buffer, as seen by one process (cached between changes)."""

    def __init__(self, view: memoryview, fd: int) -> None:
        self._view = view
        self._fd = fd
        self._generation = -1
        self._targets: list[tuple[int, bytes, int]] = []  # (slot offset, address, mask)

    def notify(self, event: int) -> None:
        """Wake every waiter of ``event`` that has no wake-up pending (call after writing)."""
        view = self._view
        if _U32.unpack_from(view, GENERATION_OFFSET)[0] != self._generation:
            self._reload()
        fenced = False
        for offset, address, mask in self._targets:
            if not mask & event:
                continue
            changes = offset + CHANGES
            _U16.pack_into(view, changes, (_U16.unpack_from(view, changes)[0] + 1) & 0xFFFF)
            if not fenced:
                _fence()  # the bump is visible before we look at pending
                fenced = True
            if not view[offset + PENDING]:
                view[offset + PENDING] = 1
                try:
                    _send_socket().sendto(b"\1", address)
                except BlockingIOError:
                    # Nothing was queued (its queue or our send buffer is full): leave pending
                    # clear so the next write rings again instead of never.
                    view[offset + PENDING] = 0
                except (ConnectionRefusedError, FileNotFoundError):
                    self._free(offset, address)  # the waiter died

    def _reload(self) -> None:
        view = self._view
        self._generation = _U32.unpack_from(view, GENERATION_OFFSET)[0]
        targets = []
        for slot in range(SLOTS):
            offset = TABLE_OFFSET + slot * SLOT_SIZE
            pid, token, mask = SLOT.unpack_from(view, offset)
            if pid:
                targets.append((offset, _address(pid, token), mask))
        self._targets = targets

    def register(self, pid: int, token: int, mask: int) -> int:
        """Claim a slot; its offset. Slots of dead waiters are reused."""
        with self._locked():
            view = self._view
            for slot in range(SLOTS):
                offset = TABLE_OFFSET + slot * SLOT_SIZE
                used_pid, used_token, _ = SLOT.unpack_from(view, offset)
                if used_pid == 0 or not _alive(used_pid, used_token):
                    SLOT.pack_into(view, offset, pid, token, mask)
                    view[offset + PENDING] = 0
                    _U16.pack_into(view, offset + CHANGES, 0)
                    self._bump()
                    return offset
        raise BufferStoreError(
            f"too many processes wait on this buffer (at most {SLOTS})", slots=SLOTS
        )

    def unregister(self, offset: int, pid: int, token: int) -> None:
        with self._locked():
            if SLOT.unpack_from(self._view, offset)[:2] == (pid, token):
                SLOT.pack_into(self._view, offset, 0, 0, 0)
                self._bump()

    def _free(self, offset: int, address: bytes) -> None:
        with self._locked():
            pid, token, _ = SLOT.unpack_from(self._view, offset)
            if pid and _address(pid, token) == address:
                SLOT.pack_into(self._view, offset, 0, 0, 0)
                self._bump()

    def _bump(self) -> None:
        generation = (_U32.unpack_from(self._view, GENERATION_OFFSET)[0] + 1) & 0xFFFFFFFF
        _U32.pack_into(self._view, GENERATION_OFFSET, generation)

    @contextlib.contextmanager
    def _locked(self):  # type: ignore[no-untyped-def]
        with _process_lock:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, TABLE_SIZE, TABLE_OFFSET)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, TABLE_SIZE, TABLE_OFFSET)


def _alive(pid: int, token: int) -> bool:
    """Is the waiter (pid, token) still bound? ``connect`` tells without sending anything."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(_address(pid, token))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Waiter:
    """Waits until one of the watched buffers changes. One per waiting thread or event loop."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._token = secrets.randbits(32)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                                     | socket.SOCK_CLOEXEC)
        self._socket.bind(_address(self._pid, self._token))
        self._watched: dict[int, tuple[Buffer, int]] = {}
        self._seen: dict[int, int] = {}  # id(buffer) -> the changes counter we last saw

    def watch(self, buffer: Buffer, mask: int = WAKE_ALL) -> None:
        """Be woken by writes of ``mask`` events to ``buffer``."""
        if id(buffer) in self._watched:
            self.unwatch(buffer)
        offset = buffer.waiters.register(self._pid, self._token, mask)
        self._watched[id(buffer)] = (buffer, offset)
        self._seen[id(buffer)] = 0  # register() zeroed the counter

    def unwatch(self, buffer: Buffer) -> None:
        entry = self._watched.pop(id(buffer), None)
        self._seen.pop(id(buffer), None)
        if entry is not None and not buffer.closed:
            buffer.waiters.unregister(entry[1], self._pid, self._token)

    def fileno(self) -> int:
        """Readable when a wake-up may be due: then call ``wait(0)``, which says if it is."""
        return self._socket.fileno()

    def poll(self) -> bool:
        """Re-arm and say whether a watched buffer changed, without waiting: for a caller that
        watches :meth:`fileno` itself (the device service acts in the loop turn the doorbell
        rings, instead of resuming a coroutine turns later)."""
        return self._rearm()

    def _rearm(self) -> bool:
        """Drain the doorbell, clear our pending flags, then re-check the level: True if any
        watched buffer changed (for our mask) since we last looked. The order matters (see
        the module docstring)."""
        self._drain()
        watched = [(key, buffer, offset) for key, (buffer, offset) in self._watched.items()
                   if not buffer.closed]
        for _, buffer, offset in watched:
            buffer.view[offset + PENDING] = 0
        _fence()  # cleared before we read the counters
        changed = False
        for key, buffer, offset in watched:
            changes = _U16.unpack_from(buffer.view, offset + CHANGES)[0]
            if changes != self._seen.get(key):
                self._seen[key] = changes
                changed = True
        return changed

    def _drain(self) -> None:
        while True:
            try:
                self._socket.recv(64)
            except BlockingIOError:
                return

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a watched buffer changes (True) or ``timeout`` seconds pass (False)."""
        if self._rearm():
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            ready, _, _ = select.select([self._socket], [], [], remaining)
            if self._rearm():
                return True
            if not ready and remaining is not None and remaining <= 0:
                return False

    async def wait_async(self, timeout: float | None = None) -> bool:
        """:meth:`wait` for an asyncio loop (the socket is watched with ``add_reader``)."""
        if self._rearm():
            return True
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self._socket, _resolve, ready)
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                await asyncio.wait_for(ready, remaining)
            except TimeoutError:
                return self._rearm()
            finally:
                loop.remove_reader(self._socket)
            if self._rearm():
                return True

    def close(self) -> None:
        for buffer, _ in list(self._watched.values()):
            self.unwatch(buffer)
        self._socket.close()

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
