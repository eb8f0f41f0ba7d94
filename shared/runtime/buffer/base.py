"""What every buffer shares: the segment header, the waiter table and the seqlock.

Segment layout (little-endian)::

    0    magic "RTB1" | version u16 | kind u8 | ready u8
    8    owner pid u32 | type id u16 | pad
    16   created f64
    24   waiter-table generation u32 | pad            (see runtime.buffer.wake)
    64   waiter table: 8 slots of (pid u32, token u32, mask u32, pending u8, pad)
    192  body: one or more seqlocked regions (layouts in device.py and inputs.py)

Seqlock: each region starts with a u64 sequence. Its single writer makes it odd, writes, then
makes it even again; a reader copies the region and retries while the sequence was odd or moved.
So a reader never sees a torn value or half of a multi-parameter update, and a writer never
waits for a reader. Each region has exactly one writing process (documented per field), and
writers inside a process serialise on a lock, so the sequence itself never races.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from runtime.buffer.segment import Segment
from runtime.buffer.wake import WaiterTable
from runtime.exception import BufferStoreError

MAGIC = b"RTB1"
VERSION = 1
HEADER = struct.Struct("<4sHBBIHxxd")  # magic, version, kind, ready, pid, type id, created
BODY = 192
U64 = struct.Struct("<Q")
F64 = struct.Struct("<d")

KIND_DEVICE, KIND_GAMEPAD, KIND_KEYBOARD = 1, 2, 3
T = TypeVar("T")

_writer_locks: dict[str, threading.Lock] = {}
_writer_locks_guard = threading.Lock()


def writer_lock(name: str) -> threading.Lock:
    """One lock per segment and process, shared by every object mapping that segment."""
    with _writer_locks_guard:
        return _writer_locks.setdefault(name, threading.Lock())


class Buffer:
    """A mapped segment with header checks, a waiter table and seqlock helpers.

    Subclasses say where their update count and connected flag live and which waiters a change
    of the flag wakes (``COUNT_OFFSET``, ``CONNECTED_OFFSET``, ``CONNECTED_WAKES``).
    """

    KIND = 0
    COUNT_OFFSET = 0
    CONNECTED_OFFSET = 0
    CONNECTED_WAKES = 0

    def __init__(self, segment: Segment, what: str, type_id: int = 0) -> None:
        self.segment = segment
        self.what = what
        self.view = segment.view
        if segment.owner:
            HEADER.pack_into(self.view, 0, MAGIC, VERSION, self.KIND, 0, os.getpid(), type_id,
                             time.time())
        else:
            magic, version, kind, ready, _, _, _ = HEADER.unpack_from(self.view, 0)
            if magic != MAGIC or version != VERSION or kind != self.KIND or not ready:
                segment.close()
                raise BufferStoreError(
                    f"the buffer of {what} is not a ready version-{VERSION} buffer of this kind "
                    "(still being created, or written by another Runtime version)",
                    buffer=segment.name,
                )
        self.waiters = WaiterTable(self.view, segment.fileno())

    def _ready(self) -> None:
        """The owner calls this once the body is initialised: attachers may map it now."""
        self.view[7] = 1

    @property
    def update_count(self) -> int:
        """Bumped by every update of the values: a cheap "anything new?" for pollers."""
        self._check_open()
        return U64.unpack_from(self.view, self.COUNT_OFFSET)[0]

    @property
    def connected(self) -> bool:
        """Set and cleared by the buffer's owner only (see each subclass)."""
        return not self.closed and bool(self.view[self.CONNECTED_OFFSET])

    @connected.setter
    def connected(self, value: bool) -> None:
        self._check_open()
        if bool(self.view[self.CONNECTED_OFFSET]) != bool(value):
            self.view[self.CONNECTED_OFFSET] = 1 if value else 0
            self.waiters.notify(self.CONNECTED_WAKES)

    @property
    def owner_pid(self) -> int:
        return HEADER.unpack_from(self.view, 0)[4]

    @property
    def closed(self) -> bool:
        return self.segment.closed

    def replaced(self) -> bool:
        """True once the owner recreated (or removed) the segment: attach again to follow it."""
        return self.segment.replaced()

    def is_live(self) -> bool:
        """Is this mapping still its segment's current file, with the owner alive? (An owner's
        own buffer is live while open.) Attachers ask before trusting values that a dead or
        restarted owner would have frozen."""
        if self.segment.owner:
            return not self.closed
        return not self.replaced() and not self.segment.orphaned()

    def close(self) -> None:
        """Unmap (and unlink if we own it). Idempotent."""
        if not self.segment.closed:
            self.view = memoryview(b"")
            self.segment.close()

    def _check_open(self) -> None:
        if self.segment.closed:
            raise BufferStoreError(f"the buffer of {self.what} is closed", buffer=self.segment.name)

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("owner" if self.segment.owner else "attached")
        return f"<{type(self).__name__} {self.what} {state}>"


def begin_write(view: memoryview, offset: int) -> int:
    """Make the region's sequence odd; returns the even value that :func:`end_write` stores."""
    sequence = U64.unpack_from(view, offset)[0] | 1
    U64.pack_into(view, offset, sequence)
    return sequence + 1


def end_write(view: memoryview, offset: int, sequence: int) -> None:
    U64.pack_into(view, offset, sequence)


SPIN_LIMIT = 100_000


def _stuck(offset: int) -> BufferStoreError:
    return BufferStoreError(
        "a shared-memory buffer stayed mid-write: its writer died while writing", offset=offset
    )


def snapshot(view: memoryview, offset: int, size: int) -> bytes:
    """A consistent copy of a seqlocked region (retries while a writer is inside)."""
    unpack = U64.unpack_from
    for _ in range(SPIN_LIMIT):
        before = unpack(view, offset)[0]
        if before & 1:
            time.sleep(0)  # let a writer thread of this process finish (it may need the GIL)
            continue
        data = bytes(view[offset:offset + size])
        if unpack(view, offset)[0] == before:
            return data
    raise _stuck(offset)


def consistent(view: memoryview, offset: int, read: Callable[[], T]) -> T:
    """``read()`` retried until no write overlapped it."""
    unpack = U64.unpack_from
    for _ in range(SPIN_LIMIT):
        before = unpack(view, offset)[0]
        if before & 1:
            time.sleep(0)
            continue
        value = read()
        if unpack(view, offset)[0] == before:
            return value
    raise _stuck(offset)
