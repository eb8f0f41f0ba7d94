"""The buffer of one Smart Device: current values in, desired values out.

Body layout (offsets from ``BODY``; 16 value slots of 8 bytes whatever the device type, each
packed with its param's wire format)::

    current region, written ONLY by the device service (from DeviceData):
      0    sequence u64 | update count u64 | last update f64
      24   connected u8 | pad | subscription params u16 | subscription interval ms u16
      32   current values 16 x 8 bytes
      160  current timestamps 16 x f64
    desired region, written ONLY by the executor (student code's set_value, stop zeroing):
      288  sequence u64
      296  desired values 16 x 8 bytes
      424  desired timestamps 16 x f64
      552  write sequence numbers 16 x u32 | read request numbers 16 x u32
    taken marks, written ONLY by the device service:
      680  write numbers taken 16 x u32 | read numbers taken 16 x u32
    wanted params, written ONLY by the executor (student reads):
      808  params bitmap u32 | pad

A param that student code reads is "wanted": the executor sets its bit (never clears it) and
the device service keeps every wanted param in the device's subscription for as long as the
device stays connected (a reconnected device has a new buffer, so its reads ask again). One
aligned 4-byte store per change, one writer: no seqlock needed.

A pending write is a param whose write number differs from the number the device service took
last: the executor never clears anything the device service writes and vice versa, so there is
one writer per field and no lost update. Setting a param twice before it is taken sends only the
latest value (coalescing).
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runtime.buffer.base import (
    BODY,
    F64,
    KIND_DEVICE,
    U64,
    Buffer,
    begin_write,
    consistent,
    end_write,
    snapshot,
    writer_lock,
)
from runtime.buffer.segment import Segment
from runtime.buffer.wake import WAKE_CURRENT, WAKE_DESIRED
from runtime.catalog import FLOAT32_MAX, DeviceType, Parameter, integer_range
from runtime.exception import ParameterError

SLOTS = 16
CURRENT = BODY
CURRENT_SIZE = 288
COUNT = CURRENT + 8
LAST_UPDATE = CURRENT + 16
CONNECTED = CURRENT + 24
SUBSCRIPTION = CURRENT + 28
VALUES = CURRENT + 32
STAMPS = CURRENT + 160
DESIRED = CURRENT + 288
DESIRED_SIZE = 392
DESIRED_VALUES = DESIRED + 8
DESIRED_STAMPS = DESIRED + 136
WRITE_NUMBERS = DESIRED + 264
READ_NUMBERS = DESIRED + 328
TAKEN_WRITES = DESIRED + 392
TAKEN_READS = TAKEN_WRITES + 64
WANTED = TAKEN_READS + 64
SIZE = WANTED + 8

NUMBERS = struct.Struct("<16I")
SUB = struct.Struct("<HH")
U32 = struct.Struct("<I")
MASK32 = 0xFFFFFFFF
Value = bool | int | float


class DeviceBuffer(Buffer):
    """Current and desired values of one device; see the module docstring for who writes what."""

    KIND = KIND_DEVICE
    COUNT_OFFSET = COUNT
    CONNECTED_OFFSET = CONNECTED  #: the device talks to the device service (which sets it)
    CONNECTED_WAKES = WAKE_CURRENT

    def __init__(self, segment: Segment, uid: str, device_type: DeviceType) -> None:
        super().__init__(segment, f"device {uid} ({device_type.name})", device_type.id)
        self.uid = uid
        self.device_type = device_type
        self.params: tuple[Parameter, ...] = device_type.params
        self.label = f"{device_type.name}[{uid}]"  # errors say "<label>.<param> ..."
        self._lock: threading.Lock = writer_lock(segment.name)
        self._slots = {p.name: (struct.Struct("<" + p.struct_format), p) for p in self.params}
        self._checks = {p.name: _fast_check(p) for p in self.params}
        self._taken_writes = [0] * SLOTS
        self.asked: set[str] = set()  #: params this process already made wanted (executor)
        if segment.owner:
            self._ready()
        else:
            self._taken_writes = list(NUMBERS.unpack_from(self.view, TAKEN_WRITES))

    # -- current values: the device service writes, everyone reads --------------------------

    def update(self, values: Mapping[str, Value], ts: float | None = None) -> None:
        """Store values a device reported (device service only); wakes WAKE_CURRENT waiters."""
        self._check_open()
        ts = time.time() if ts is None else ts
        view = self.view
        slots = self._slots
        sequence = begin_write(view, CURRENT)
        try:
            for name, value in values.items():
                layout, param = slots[name]
                layout.pack_into(view, VALUES + 8 * param.index, value)
                F64.pack_into(view, STAMPS + 8 * param.index, ts)
            U64.pack_into(view, COUNT, U64.unpack_from(view, COUNT)[0] + 1)
            F64.pack_into(view, LAST_UPDATE, ts)
        finally:
            end_write(view, CURRENT, sequence)
        self.waiters.notify(WAKE_CURRENT)

    def get(self, param: str) -> Value:
        """The current value of a readable param (a consistent read, never torn)."""
        layout, spec = self._readable(param)
        view = self.view
        offset = VALUES + 8 * spec.index
        return consistent(view, CURRENT, lambda: layout.unpack_from(view, offset)[0])

    def read(self, names: Iterable[str] | None = None) -> dict[str, Value]:
        """A consistent snapshot of several current values (default: every readable param)."""
        self._check_open()
        chosen = ([self._readable(name) for name in names] if names is not None
                  else [self._slots[p.name] for p in self.params if p.readable])
        data = snapshot(self.view, CURRENT, CURRENT_SIZE)
        base = VALUES - CURRENT
        return {param.name: layout.unpack_from(data, base + 8 * param.index)[0]
                for layout, param in chosen}

    def timestamp(self, param: str) -> float:
        """When the current value of ``param`` last changed (0.0: never)."""
        spec = self._param(param)
        view = self.view
        offset = STAMPS + 8 * spec.index
        return consistent(view, CURRENT, lambda: F64.unpack_from(view, offset)[0])

    @property
    def last_update(self) -> float:
        self._check_open()
        return F64.unpack_from(self.view, LAST_UPDATE)[0]

    @property
    def subscription(self) -> tuple[int, int]:
        """The device's subscription as it last confirmed it: (params bitmap, interval ms)."""
        self._check_open()
        view = self.view
        return consistent(view, CURRENT, lambda: SUB.unpack_from(view, SUBSCRIPTION))

    @subscription.setter
    def subscription(self, value: tuple[int, int]) -> None:
        self._check_open()
        sequence = begin_write(self.view, CURRENT)
        SUB.pack_into(self.view, SUBSCRIPTION, *value)
        end_write(self.view, CURRENT, sequence)

    # -- desired values: the executor writes, the device service takes ------------------------

    def set(self, param: str, value: Any) -> None:
        """Ask for ``param = value`` on the device (executor); checked, then pending."""
        self.write({param: value})

    def write(self, values: Mapping[str, Any]) -> None:
        """Several desired values at once: all checked first, then written as one update."""
        self._check_open()
        checked = [(self._writeable(name), self._checks[name](value, self.label))
                   for name, value in values.items()]
        ts = time.time()
        view = self.view
        with self._lock:
            sequence = begin_write(view, DESIRED)
            try:
                for (layout, param), value in checked:
                    index = param.index
                    layout.pack_into(view, DESIRED_VALUES + 8 * index, value)
                    F64.pack_into(view, DESIRED_STAMPS + 8 * index, ts)
                    number = WRITE_NUMBERS + 4 * index
                    U32.pack_into(view, number, (U32.unpack_from(view, number)[0] + 1) & MASK32)
            finally:
                end_write(view, DESIRED, sequence)
        self.waiters.notify(WAKE_DESIRED)

    def desired(self, param: str) -> Value:
        """The last desired value of a writeable param."""
        layout, spec = self._writeable(param)
        view = self.view
        offset = DESIRED_VALUES + 8 * spec.index
        return consistent(view, DESIRED, lambda: layout.unpack_from(view, offset)[0])

    def request_read(self, params: Iterable[str]) -> None:
        """Ask the device service to send a DeviceRead for these readable params."""
        indices = [self._readable(name)[1].index for name in params]
        view = self.view
        with self._lock:
            sequence = begin_write(view, DESIRED)
            numbers = list(NUMBERS.unpack_from(view, READ_NUMBERS))
            for index in indices:
                numbers[index] = (numbers[index] + 1) & 0xFFFFFFFF
            NUMBERS.pack_into(view, READ_NUMBERS, *numbers)
            end_write(view, DESIRED, sequence)
        self.waiters.notify(WAKE_DESIRED)

    def want(self, params: Iterable[str]) -> int:
        """Mark readable params as wanted in the subscription (executor); the new bitmap."""
        bits = 0
        for name in params:
            bits |= 1 << self._readable(name)[1].index
        view = self.view
        with self._lock:
            wanted = U32.unpack_from(view, WANTED)[0] | bits
            U32.pack_into(view, WANTED, wanted)
        self.waiters.notify(WAKE_DESIRED)
        return wanted

    @property
    def wanted(self) -> int:
        """Bitmap of the params student code wants subscribed (device service reads it)."""
        self._check_open()
        return U32.unpack_from(self.view, WANTED)[0]

    def take_writes(self) -> dict[str, Value]:
        """Pending desired values since the last take, each taken once (device service only)."""
        self._check_open()
        data = snapshot(self.view, DESIRED, DESIRED_SIZE)
        numbers = NUMBERS.unpack_from(data, WRITE_NUMBERS - DESIRED)
        taken = self._taken_writes
        if list(numbers) == taken:
            return {}
        values = {}
        for layout, param in self._slots.values():
            index = param.index
            if numbers[index] != taken[index]:
                values[param.name] = layout.unpack_from(data, 8 + 8 * index)[0]
        self._taken_writes = list(numbers)
        NUMBERS.pack_into(self.view, TAKEN_WRITES, *numbers)
        return values

    def take_reads(self) -> int:
        """Bitmap of params with a pending read request (device service only)."""
        self._check_open()
        numbers = consistent(self.view, DESIRED,
                             lambda: NUMBERS.unpack_from(self.view, READ_NUMBERS))
        taken = NUMBERS.unpack_from(self.view, TAKEN_READS)
        bitmap = sum(1 << i for i in range(SLOTS) if numbers[i] != taken[i])
        if bitmap:
            NUMBERS.pack_into(self.view, TAKEN_READS, *numbers)
        return bitmap

    @property
    def pending_writes(self) -> int:
        """Bitmap of desired values not yet taken by the device service."""
        self._check_open()
        numbers = consistent(self.view, DESIRED,
                             lambda: NUMBERS.unpack_from(self.view, WRITE_NUMBERS))
        taken = NUMBERS.unpack_from(self.view, TAKEN_WRITES)
        return sum(1 << i for i in range(SLOTS) if numbers[i] != taken[i])

    # -- lookups -----------------------------------------------------------------------------

    def _param(self, name: str) -> Parameter:
        self._check_open()
        entry = self._slots.get(name)
        if entry is None:
            self.device_type.param(name)  # raises the "has no param; its params are" error
            raise ParameterError(f"{self.label} has no param {name!r}")
        return entry[1]

    def _readable(self, name: str) -> tuple[struct.Struct, Parameter]:
        param = self._param(name)
        if not param.readable:
            raise ParameterError(
                f"{self.label}: {name} cannot be read (it is write-only); readable params: "
                + ", ".join(p.name for p in self.params if p.readable),
                device=self.uid, param=name,
            )
        return self._slots[name]

    def _writeable(self, name: str) -> tuple[struct.Struct, Parameter]:
        param = self._param(name)
        if not param.writeable:
            raise ParameterError(
                f"{self.label}: {name} cannot be written (it is read-only); writeable params: "
                + (", ".join(p.name for p in self.params if p.writeable) or "none"),
                device=self.uid, param=name,
            )
        return self._slots[name]


def _fast_check(param: Parameter) -> Callable[[Any, str], Value]:
    """A validator that accepts the common, valid case in a few operations and otherwise
    defers to ``Parameter.check_value`` (which normalises or raises the clear error)."""
    slow = param.check_value
    if param.type == "bool":
        def check_bool(value: Any, device: str) -> Value:
            return value if value is True or value is False else slow(value, device)
        return check_bool
    if param.type == "float":
        low = -FLOAT32_MAX if param.lower is None else param.lower
        high = FLOAT32_MAX if param.upper is None else param.upper

        def check_float(value: Any, device: str) -> Value:
            if type(value) is float and low <= value <= high:
                return value
            return slow(value, device)
        return check_float
    span = integer_range(param.type)
    assert span is not None
    low_int = span[0] if param.lower is None else max(span[0], param.lower)
    high_int = span[1] if param.upper is None else min(span[1], param.upper)

    def check_int(value: Any, device: str) -> Value:
        if type(value) is int and low_int <= value <= high_int:
            return value
        return slow(value, device)
    return check_int
