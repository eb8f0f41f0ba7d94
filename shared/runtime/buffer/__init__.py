"""Shared-memory parameter buffers: how co-located services exchange values in microseconds.

- :class:`BufferStore` opens/creates buffers by key, per robot (``store.py``).
- :class:`DeviceBuffer`: current values (device service writes) and desired values (executor
  writes) of one Smart Device (``device.py``).
- :class:`GamepadBuffer`, :class:`KeyboardBuffer`: driver input (broker writes; ``inputs.py``).
- :class:`Waiter`: sleep until a buffer changes, woken by the writer (``wake.py``).
- Segments, ownership and leak-proof cleanup: ``segment.py``; seqlock: ``base.py``.
See docs/buffers.md for the design.
"""

from runtime.buffer.base import Buffer
from runtime.buffer.device import DeviceBuffer
from runtime.buffer.inputs import AXES, BUTTONS, KEYS, GamepadBuffer, KeyboardBuffer
from runtime.buffer.store import BufferStore
from runtime.buffer.wake import WAKE_ALL, WAKE_CURRENT, WAKE_DESIRED, WAKE_INPUT, Waiter
from runtime.catalog import Parameter

__all__ = [
    "AXES",
    "BUTTONS",
    "KEYS",
    "WAKE_ALL",
    "WAKE_CURRENT",
    "WAKE_DESIRED",
    "WAKE_INPUT",
    "Buffer",
    "BufferStore",
    "DeviceBuffer",
    "GamepadBuffer",
    "KeyboardBuffer",
    "Parameter",
    "Waiter",
]
