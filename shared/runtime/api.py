"""The student API: the names Runtime gives every student program (docs/contract.md, Student API).

Students import nothing: the executor builds one :class:`StudentAPI` and puts its
:meth:`StudentAPI.names` (``Robot``, ``Gamepad``, ``Keyboard``, ``Actions``, ``Mode``,
``Alliance``, ``Match``, ``print``) into the student module before running it.

- ``Robot.get_value(device, param)`` / ``Robot.set_value(device, param, value)`` read current
  values from and write desired values to the shared-memory device buffers (microseconds).
  ``device`` is a uid string, ``"<type_id>_<id>"`` or an alias; resolutions are cached and
  re-checked every :data:`RECHECK` s (a device unplugged, an alias moved).
- ``Robot.run`` / ``is_running`` / ``sleep`` go to the executor's action runner.
- ``Gamepad`` and ``Keyboard`` work in teleop only; a disconnected input reads as released
  buttons and centred sticks, never as the last values it sent.
- Safety: writes go through a gate. :meth:`StudentAPI.stop_motors` closes it and sets every
  motor param of every device to 0 under the same lock, so no student write can slip in
  between; with the gate closed, ``set_value`` raises :class:`StudentCodeStopped`. Teleop
  without live driver input is the device service's stop rule (it holds motors at 0 even
  when this process is stuck), so it is not repeated here.

Every error names the device, the param and what is allowed.
"""

from __future__ import annotations

import asyncio
import builtins
import math
import re
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from runtime.aliases import AliasFile
from runtime.buffer import AXES, BUTTONS, KEYS, BufferStore, DeviceBuffer
from runtime.exception import (
    BufferStoreError,
    DeviceError,
    ExecutionError,
    ParameterError,
    RuntimeBaseException,
)

RECHECK = 0.25  # seconds a device resolution is trusted before it is checked again
SHORT_FORM = re.compile(r"^(\d+)_(\d+)$")
ID_MASK = (1 << 64) - 1


class StudentCodeStopped(BaseException):
    """Raised inside student code to stop it: mode change, estop, time limit, shutdown.

    A ``BaseException`` so that a student's ``except Exception`` does not swallow it.
    """


class Mode(StrEnum):
    """The robot's mode (the ``mode`` of the ``match`` topic)."""

    IDLE = "idle"
    AUTO = "auto"
    TELEOP = "teleop"
    ESTOP = "estop"


class Alliance(StrEnum):
    """The alliance the robot plays for in a match."""

    BLUE = "blue"
    GOLD = "gold"


class ActionRunner(Protocol):
    """What the API needs from the executor's actions (``AsyncExecutor`` provides it)."""

    def run(self, action: Any, *args: Any, timeout: float | None = None) -> Any: ...
    def is_running(self, action: Any) -> bool: ...
    def sleep(self, seconds: float) -> None: ...
    def check(self) -> None: ...


class _NoActions:
    """Stand-in when no action runner is given (tools, tests of the value API)."""

    def run(self, action: Any, *args: Any, timeout: float | None = None) -> Any:
        raise ExecutionError("Robot.run is not available here: no executor runs actions")

    def is_running(self, action: Any) -> bool:
        return False

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def check(self) -> None:
        return None


class MatchState:
    """The current mode and match setup (written by the executor, read by student code)."""

    def __init__(self) -> None:
        self.mode = Mode.IDLE
        self.alliance: Alliance | None = None
        self.start_pos: str | None = None
        self.since = time.time()
        self._started = time.monotonic()

    def update(self, mode: str, alliance: str | None = None, start_pos: str | None = None,
               since: float | None = None) -> None:
        self.mode = Mode(mode)
        self.alliance = Alliance(alliance) if alliance else None
        self.start_pos = start_pos
        self.since = time.time() if since is None else since
        self._started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started


class DeviceDirectory:
    """Device names (uid, ``"<type_id>_<id>"``, alias) to attached buffers, cached."""

    def __init__(self, buffers: BufferStore, aliases: AliasFile | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.buffers = buffers
        self.aliases = aliases
        self.clock = clock
        self._cache: dict[Any, tuple[DeviceBuffer, float]] = {}
        self._by_uid: dict[str, DeviceBuffer] = {}
        self._lock = threading.Lock()

    def get(self, name: Any) -> DeviceBuffer:
        """The buffer of device ``name``; ``DeviceError`` if unknown or not connected."""
        try:
            entry = self._cache.get(name)
        except TypeError:  # unhashable: _uid_of says what a device name is
            entry = None
        if entry is not None and self.clock() < entry[1]:
            return entry[0]
        with self._lock:
            buffer = self._buffer(self._uid_of(name), name)
            self._cache[name] = (buffer, self.clock() + RECHECK)
            return buffer

    def all(self) -> list[DeviceBuffer]:
        """Every live device buffer of the robot, connected or not (to stop its motors)."""
        found = []
        with self._lock:
            for uid in self.buffers.device_uids():
                try:
                    found.append(self._buffer(uid, uid, connected=False))
                except DeviceError:
                    continue  # going away as we look: nothing to stop there
        return found

    def _uid_of(self, name: Any) -> str:
        if not isinstance(name, str):
            raise DeviceError(
                f"a device is named by a string (its uid, '<type_id>_<id>', or an alias), "
                f"not {type(name).__name__} {name!r}", device=repr(name))
        if name.isdecimal():
            return str(int(name))
        short = SHORT_FORM.match(name)
        if short:
            type_id, device_id = int(short.group(1)), int(short.group(2))
            for uid in self.buffers.device_uids():
                number = int(uid)
                if number >> 72 == type_id and number & ID_MASK == device_id:
                    return uid
            raise self._unknown(name, "no connected device has that type id and id")
        aliased = self.aliases.resolve(name) if self.aliases is not None else None
        if aliased is None:
            raise self._unknown(name, "it is not an alias, a uid or '<type_id>_<id>'")
        return aliased

    def _buffer(self, uid: str, name: Any, connected: bool = True) -> DeviceBuffer:
        """The live buffer of ``uid`` (re-attached if the device service replaced it); with
        ``connected``, only if the device is connected too. A stale mapping is dropped from
        the caches but not closed: another thread may still be using it."""
        buffer = self._by_uid.get(uid)
        if buffer is not None and not buffer.is_live():
            del self._by_uid[uid]
            buffer = None
        if buffer is None:
            try:
                buffer = self.buffers.open_device(uid)
            except BufferStoreError:
                raise self._unknown(name, f"device {uid} is not connected") from None
            if not buffer.is_live():
                self.buffers.forget(buffer)
                raise self._unknown(name, f"device {uid} is not connected")
            self._by_uid[uid] = buffer
        if connected and not buffer.connected:
            raise self._unknown(name, f"device {uid} is not connected")
        return buffer

    def _unknown(self, name: Any, why: str) -> DeviceError:
        aliases = self.aliases.get() if self.aliases is not None else {}
        known = []
        for uid in self.buffers.device_uids():
            number = int(uid)
            names = [alias for alias, target in sorted(aliases.items()) if target == uid]
            label = f"{number >> 72}_{number & ID_MASK}"
            known.append(f"{label}" + (f" ({', '.join(names)})" if names else ""))
        return DeviceError(
            f"no device {name!r}: {why}; connected devices: {', '.join(known) or 'none'}",
            device=name, connected=known,
        )


class Robot:
    """``Robot``: device values and actions."""

    def __init__(self, api: StudentAPI) -> None:
        self._api = api
        self._devices = api.devices
        self._actions = api.actions

    def get_value(self, device: str, param: str) -> Any:
        """The current value of ``param`` of ``device`` (uid, ``"<type_id>_<id>"`` or alias)."""
        self._actions.check()
        buffer = self._devices.get(device)
        try:
            return buffer.get(param)
        except RuntimeBaseException as exc:
            raise _explain(exc, f"Robot.get_value({device!r}, {param!r})", device,
                           param) from None

    def set_value(self, device: str, param: str, value: Any) -> None:
        """Ask for ``param`` of ``device`` to become ``value`` (checked: type, bounds)."""
        self._actions.check()
        buffer = self._devices.get(device)
        api = self._api
        with api.gate:
            if not api.enabled:
                raise StudentCodeStopped
            try:
                buffer.set(param, value)
            except RuntimeBaseException as exc:
                raise _explain(exc, f"Robot.set_value({device!r}, {param!r}, {value!r})",
                               device, param) from None

    def run(self, action: Any, *args: Any, timeout: float | None = None) -> None:
        """Start ``action(*args)``: an ``async def`` or a plain function (in a thread)."""
        self._actions.run(action, *args, timeout=timeout)

    def is_running(self, action: Any) -> bool:
        """Whether ``action`` (the function) is running now."""
        return self._actions.is_running(action)

    def sleep(self, seconds: float) -> None:
        """Pause a plain-function action (or ``autonomous()``/``teleop()``) for ``seconds``."""
        self._actions.sleep(seconds)


def _explain(exc: RuntimeBaseException, call: str, device: Any, param: Any) -> DeviceError:
    """The error of a buffer call, prefixed with the student's call."""
    kind = type(exc) if isinstance(exc, DeviceError) else DeviceError
    context = {**exc.context, "device": device, "param": param}
    return kind(f"{call}: {exc.message}", **context)


class InputBuffers:
    """The gamepad and keyboard buffers (the broker service owns them), attached lazily and
    re-checked every :data:`RECHECK` s, so a restarted broker's new buffers are picked up and
    a dead broker's frozen ones are not trusted."""

    KEYBOARD = "keyboard"

    def __init__(self, buffers: BufferStore, clock: Callable[[], float] = time.monotonic):
        self.buffers = buffers
        self.clock = clock
        self._cache: dict[Any, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def gamepad(self, index: int) -> Any:
        """Gamepad ``index``'s buffer, or None when there is none (no broker service)."""
        return self._get(index)

    def keyboard(self) -> Any:
        return self._get(self.KEYBOARD)

    def all(self) -> list[Any]:
        """Every input buffer that exists now."""
        found = [self._get(index) for index in range(4)] + [self._get(self.KEYBOARD)]
        return [buffer for buffer in found if buffer is not None]

    def _get(self, key: Any) -> Any:
        entry = self._cache.get(key)
        if entry is not None and self.clock() < entry[1]:
            return entry[0]
        with self._lock:
            buffer = entry[0] if entry is not None else None
            if buffer is not None and not buffer.is_live():
                buffer = None  # not closed: another thread may still be reading it
            if buffer is None:
                try:
                    buffer = (self.buffers.keyboard() if key == self.KEYBOARD
                              else self.buffers.gamepad(key))
                except BufferStoreError:
                    buffer = None
            self._cache[key] = (buffer, self.clock() + RECHECK)
            return buffer


class _Input:
    """Shared by Gamepad and Keyboard: teleop only; no input reads as nothing pressed."""

    what = "input"

    def __init__(self, api: StudentAPI) -> None:
        self._api = api
        self._inputs = api.inputs

    def _check_teleop(self, call: str) -> None:
        self._api.actions.check()
        mode = self._api.match.mode
        if mode is not Mode.TELEOP:
            raise ExecutionError(
                f"{call}: the {self.what} can only be read in teleop (the robot is in {mode}); "
                "in autonomous the robot must drive itself", mode=str(mode))


class Gamepad(_Input):
    """``Gamepad.get_value(name, index=0)``: buttons (bool) and joysticks (-1 to 1)."""

    what = "gamepad"

    def get_value(self, name: str, index: int = 0) -> bool | float:
        self._check_teleop(f"Gamepad.get_value({name!r})")
        if type(index) is not int or not 0 <= index <= 3:
            raise ExecutionError(
                f"Gamepad.get_value({name!r}, {index!r}): index is the gamepad number, 0 to 3",
                index=repr(index))
        pad = self._inputs.gamepad(index)
        if pad is None or not pad.connected:
            return _neutral(name)
        try:
            return pad.get(name)
        except ParameterError as exc:
            raise ParameterError(f"Gamepad.get_value({name!r}): {exc.message}",
                                 **exc.context) from None


def _neutral(name: Any) -> bool | float:
    """What a disconnected gamepad reads as: released buttons, centred joysticks."""
    if name in BUTTONS:
        return False
    if name in AXES:
        return 0.0
    raise ParameterError(
        f"Gamepad.get_value({name!r}): a gamepad has no button or axis {name!r}; buttons: "
        f"{', '.join(BUTTONS)}; axes: {', '.join(AXES)}", param=repr(name))


class Keyboard(_Input):
    """``Keyboard.get_value(key)``: whether a key is held down."""

    what = "keyboard"

    def get_value(self, key: str) -> bool:
        self._check_teleop(f"Keyboard.get_value({key!r})")
        keyboard = self._inputs.keyboard()
        if keyboard is None or not keyboard.connected:
            if key in KEYS:
                return False
            raise ParameterError(
                f"Keyboard.get_value({key!r}): the keyboard has no key {key!r}; keys: "
                f"{' '.join(KEYS)}", param=repr(key))
        try:
            return keyboard.get(key)
        except ParameterError as exc:
            raise ParameterError(f"Keyboard.get_value({key!r}): {exc.message}",
                                 **exc.context) from None


class Actions:
    """``await Actions.sleep(seconds)`` inside ``async def`` actions."""

    @staticmethod
    async def sleep(seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
                seconds >= 0 and math.isfinite(seconds)):
            raise ExecutionError(
                f"Actions.sleep takes a number of seconds >= 0, not {seconds!r}",
                seconds=repr(seconds))
        await asyncio.sleep(seconds)


class Match:
    """``Match.mode``, ``Match.alliance``, ``Match.start_pos``, ``Match.elapsed`` (s)."""

    def __init__(self, state: MatchState) -> None:
        self._state = state

    @property
    def mode(self) -> Mode:
        return self._state.mode

    @property
    def alliance(self) -> Alliance | None:
        return self._state.alliance

    @property
    def start_pos(self) -> str | None:
        return self._state.start_pos

    @property
    def elapsed(self) -> float:
        """Seconds since the current mode started."""
        return self._state.elapsed


class StudentAPI:
    """One robot's student API: the objects, the write gate and the motor stop."""

    def __init__(
        self,
        buffers: BufferStore,
        *,
        aliases: AliasFile | None = None,
        actions: ActionRunner | None = None,
        print: Callable[..., None] = builtins.print,  # noqa: A002 (replaces print for the student)
    ) -> None:
        self.buffers = buffers
        self.devices = DeviceDirectory(buffers, aliases)
        self.inputs = InputBuffers(buffers)
        self.actions: ActionRunner = actions or _NoActions()
        self.match = MatchState()
        self.gate = threading.Lock()
        self.enabled = False
        self.robot = Robot(self)
        self.gamepad = Gamepad(self)
        self.keyboard = Keyboard(self)
        self.print = print

    def names(self) -> dict[str, Any]:
        """What goes into the student module."""
        return {
            "Robot": self.robot, "Gamepad": self.gamepad, "Keyboard": self.keyboard,
            "Actions": Actions, "Mode": Mode, "Alliance": Alliance,
            "Match": Match(self.match), "print": self.print,
        }

    def enable(self) -> None:
        """Let student code write desired values (a mode with student code starts)."""
        with self.gate:
            self.enabled = True

    def stop_motors(self, disable: bool = True) -> list[str]:
        """Set every motor param of every device to 0 (and close the gate unless ``disable``
        is False: after a student error the code goes on); the uids stopped."""
        stopped = []
        with self.gate:
            if disable:
                self.enabled = False
            for buffer in self.devices.all():
                motors = buffer.device_type.motor_params
                if not motors:
                    continue
                try:
                    buffer.write({p.name: 0.0 if p.type == "float" else 0 for p in motors})
                except RuntimeBaseException:
                    continue  # closed as we wrote: the device service stops it anyway
                stopped.append(buffer.uid)
        return stopped
