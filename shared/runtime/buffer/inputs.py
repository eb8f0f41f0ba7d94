"""Driver-station input buffers: gamepads (17 buttons, 4 axes) and the keyboard (64-bit keys).

Written ONLY by the broker service (from ``input/gamepad/<i>`` and ``input/keyboard``), read by
the executor (student ``Gamepad``/``Keyboard``) and the device service (teleop without live input
stops the motors). Body layout (offsets from ``BODY``)::

    0   sequence u64 | update count u64 | ts f64 | connected u8 | pad
    32  gamepad: buttons u32 | pad | axes 4 x f64        keyboard: keys u64
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from runtime.buffer.base import (
    BODY,
    KIND_GAMEPAD,
    KIND_KEYBOARD,
    U64,
    Buffer,
    begin_write,
    consistent,
    end_write,
    writer_lock,
)
from runtime.buffer.segment import Segment
from runtime.buffer.wake import WAKE_INPUT
from runtime.catalog import Parameter
from runtime.exception import ParameterError

BUTTONS = (
    "button_a", "button_b", "button_x", "button_y", "l_bumper", "r_bumper", "l_trigger",
    "r_trigger", "button_back", "button_start", "l_stick", "r_stick", "dpad_up", "dpad_down",
    "dpad_left", "dpad_right", "button_xbox",
)
AXES = ("joystick_left_x", "joystick_left_y", "joystick_right_x", "joystick_right_y")
KEYS = (
    *"abcdefghijklmnopqrstuvwxyz", *"123456789", "0", ",", ".", "/", ";", "'", "[", "]",
    "left_arrow", "right_arrow", "up_arrow", "down_arrow",
)
# Built without validation: a gamepad's 17 buttons exceed a Smart Device's 16 wire params.
GAMEPAD_PARAMS: tuple[Parameter, ...] = (
    *(Parameter.model_construct(name=name, type="bool", readable=True, index=i)
      for i, name in enumerate(BUTTONS)),
    *(Parameter.model_construct(name=name, type="float", readable=True, lower=-1.0, upper=1.0,
                                index=i) for i, name in enumerate(AXES)),
)
GAMEPADS = 4
COUNT = BODY + 8
HEAD = struct.Struct("<QQdB")  # sequence, count, ts, connected
CONNECTED = BODY + 24
GAMEPAD = struct.Struct("<I4xdddd")
KEYBOARD = struct.Struct("<Q")
SIZE = BODY + 96
_BUTTON_BIT = {name: i for i, name in enumerate(BUTTONS)}
_AXIS_INDEX = {name: i for i, name in enumerate(AXES)}
_KEY_BIT = {name: i for i, name in enumerate(KEYS)}


class _InputBuffer(Buffer):
    """Shared parts: ts, connected flag, update count, seqlock."""

    COUNT_OFFSET = COUNT
    CONNECTED_OFFSET = CONNECTED  #: a driver station sends input (the broker service clears it)
    CONNECTED_WAKES = WAKE_INPUT

    def __init__(self, segment: Segment, what: str) -> None:
        super().__init__(segment, what)
        self._lock = writer_lock(segment.name)
        if segment.owner:
            self._ready()

    def _store(self, layout: struct.Struct, ts: float, *values: object) -> None:
        self._check_open()
        view = self.view
        with self._lock:
            sequence = begin_write(view, BODY)
            try:
                layout.pack_into(view, BODY + 32, *values)
                struct.pack_into("<d", view, BODY + 16, ts)
                U64.pack_into(view, COUNT, U64.unpack_from(view, COUNT)[0] + 1)
                view[CONNECTED] = 1
            finally:
                end_write(view, BODY, sequence)
        self.waiters.notify(WAKE_INPUT)

    LAYOUT = KEYBOARD

    def values(self) -> tuple:  # type: ignore[type-arg]
        """All values in one consistent read: (buttons, 4 axes) or (keys,)."""
        self._check_open()
        view, layout = self.view, self.LAYOUT
        return consistent(view, BODY, lambda: layout.unpack_from(view, BODY + 32))

    @property
    def ts(self) -> float:
        self._check_open()
        return HEAD.unpack_from(self.view, BODY)[2]



class GamepadBuffer(_InputBuffer):
    """One gamepad (index 0..3)."""

    KIND = KIND_GAMEPAD
    LAYOUT = GAMEPAD

    def __init__(self, segment: Segment, index: int) -> None:
        super().__init__(segment, f"gamepad {index}")
        self.index = index

    def update(self, buttons: int, axes: Sequence[float], ts: float) -> None:
        """New input from the driver station (broker service only); marks it connected."""
        if len(axes) != len(AXES):
            raise ParameterError(f"a gamepad has {len(AXES)} axes, not {len(axes)}",
                                 axes=list(axes))
        self._store(GAMEPAD, ts, buttons & 0xFFFFFFFF, *(float(a) for a in axes))

    @property
    def buttons(self) -> int:
        return self.values()[0]

    @property
    def axes(self) -> tuple[float, float, float, float]:
        return self.values()[1:]  # type: ignore[return-value]

    def get(self, name: str) -> bool | float:
        """A button (bool) or an axis (float in [-1, 1]) by its catalog name."""
        bit = _BUTTON_BIT.get(name)
        if bit is not None:
            return bool(self.values()[0] >> bit & 1)
        axis = _AXIS_INDEX.get(name)
        if axis is not None:
            return self.values()[1 + axis]
        raise ParameterError(
            f"a gamepad has no button or axis {name!r}; buttons: {', '.join(BUTTONS)}; "
            f"axes: {', '.join(AXES)}", param=name,
        )


class KeyboardBuffer(_InputBuffer):
    """The driver station's keyboard: bit i of ``keys`` is key ``KEYS[i]``."""

    KIND = KIND_KEYBOARD

    def __init__(self, segment: Segment) -> None:
        super().__init__(segment, "keyboard")

    def update(self, keys: int, ts: float) -> None:
        self._store(KEYBOARD, ts, keys & 0xFFFFFFFFFFFFFFFF)

    @property
    def keys(self) -> int:
        return self.values()[0]

    def get(self, key: str) -> bool:
        """Whether ``key`` is pressed (names as in the device catalog: a..z, 0..9, arrows...)."""
        bit = _KEY_BIT.get(key)
        if bit is None:
            raise ParameterError(
                f"the keyboard has no key {key!r}; keys: {' '.join(KEYS)}", param=key
            )
        return bool(self.keys >> bit & 1)
