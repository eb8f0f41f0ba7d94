"""Wake-ups between processes: "this buffer changed" without busy polling.

Each :class:`Waiter` binds a Linux *abstract* UNIX datagram socket (no file to clean up: the
name dies with the socket, so a crashed waiter leaves nothing behind) and registers
``(pid, token, event mask)`` in a small table in the header of every buffer it watches. A writer,
after its data is visible, sends one byte to each registered waiter whose mask matches.

Coalescing: each table slot has a ``pending`` byte. The writer sends only when it is 0 and sets
it to 1; the waiter clears it *before* draining its socket and returning. Whatever was written
before the clear is visible to the reader that follows the wake-up, and whatever is written after
it sends a new datagram, so no change is lost and a burst of writes costs one wake-up and one
syscall. A dead waiter shows up as ``ECONNREFUSED`` on send and its slot is freed; a dead writer
just stops sending (waiters always wait with a timeout where it matters).
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
from typing import TYPE_CHECKING

from runtime.exception import BufferStoreError

if TYPE_CHECKING:
    from runtime.buffer.base import Buffer

WAKE_CURRENT = 1  #: new current values from a device (written by the device service)
WAKE_DESIRED = 2  #: new desired values or read requests (written by the executor)
WAKE_INPUT = 4  #: new gamepad/keyboard input or a change of its connected flag (broker)
WAKE_ALL = WAKE_CURRENT | WAKE_DESIRED | WAKE_INPUT

GENERATION_OFFSET = 24  #: u32 in the segment header, bumped on every table change
TABLE_OFFSET = 64
SLOTS = 8
SLOT = struct.Struct("<III")  # pid, token, mask; then the pending byte at +12
SLOT_SIZE = 16
PENDING = 12
TABLE_SIZE = SLOTS * SLOT_SIZE
_U32 = struct.Struct("<I")

_process_lock = threading.Lock()  # fcntl locks do not exclude threads of one process
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
        self._targets: list[tuple[int, bytes, int]] = []  # (pending offset, address, mask)

    def notify(self, event: int) -> None:
        """Wake every waiter of ``event`` that has no wake-up pending (call after writing)."""
        view = self._view
        if _U32.unpack_from(view, GENERATION_OFFSET)[0] != self._generation:
            self._reload()
        for pending, address, mask in self._targets:
            if mask & event and not view[pending]:
                view[pending] = 1
                try:
                    _send_socket().sendto(b"\1", address)
                except BlockingIOError:
                    pass  # its queue is full: it has wake-ups enough
                except (ConnectionRefusedError, FileNotFoundError):
                    self._free(pending - PENDING, address)  # the waiter died

    def _reload(self) -> None:
        view = self._view
        self._generation = _U32.unpack_from(view, GENERATION_OFFSET)[0]
        targets = []
        for slot in range(SLOTS):
            offset = TABLE_OFFSET + slot * SLOT_SIZE
            pid, token, mask = SLOT.unpack_from(view, offset)
            if pid:
                targets.append((offset + PENDING, _address(pid, token), mask))
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


class Waiter:
    """Waits until one of the watched buffers changes. One per waiting thread or event loop."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._token = secrets.randbits(32)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                                     | socket.SOCK_CLOEXEC)
        self._socket.bind(_address(self._pid, self._token))
        self._watched: dict[int, tuple[Buffer, int]] = {}

    def watch(self, buffer: Buffer, mask: int = WAKE_ALL) -> None:
        """Be woken by writes of ``mask`` events to ``buffer``."""
        if id(buffer) in self._watched:
            self.unwatch(buffer)
        offset = buffer.waiters.register(self._pid, self._token, mask)
        self._watched[id(buffer)] = (buffer, offset)

    def unwatch(self, buffer: Buffer) -> None:
        entry = self._watched.pop(id(buffer), None)
        if entry is not None and not buffer.closed:
            buffer.waiters.unregister(entry[1], self._pid, self._token)

    def fileno(self) -> int:
        return self._socket.fileno()

    def _rearm(self) -> bool:
        """Clear our pending flags, then drain: True if a wake-up was waiting."""
        for buffer, offset in self._watched.values():
            if not buffer.closed:
                buffer.view[offset + PENDING] = 0
        woken = False
        while True:
            try:
                self._socket.recv(64)
            except BlockingIOError:
                return woken
            woken = True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a watched buffer changes (True) or ``timeout`` seconds pass (False)."""
        if self._rearm():
            return True
        ready, _, _ = select.select([self._socket], [], [], timeout)
        if not ready:
            return False
        self._rearm()
        return True

    async def wait_async(self, timeout: float | None = None) -> bool:
        """:meth:`wait` for an asyncio loop (the socket is watched with ``add_reader``)."""
        if self._rearm():
            return True
        loop = asyncio.get_running_loop()
        ready = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self._socket, wake)
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(self._socket)
        self._rearm()
        return True

    def close(self) -> None:
        for buffer, _ in list(self._watched.values()):
            self.unwatch(buffer)
        self._socket.close()

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
