"""The student API: the names Runtime gives every student program (docs/contract.md, Student API).

Students import nothing: the executor builds one :class:`StudentAPI` and puts its
:meth:`StudentAPI.names` (``Robot``, ``Gamepad``, ``Keyboard``, ``Actions``, ``Mode``,
``Alliance``, ``Match``, ``Field``, ``print``) into the student module before running it.

- ``Robot.get_value(device, param)`` / ``Robot.set_value(device, param, value)`` read current
  values from and write desired values to the shared-memory device buffers (microseconds).
  ``device`` is a uid string, ``"<type_id>_<id>"`` or an alias; resolutions are cached and
  re-checked every :data:`RECHECK` s (a device unplugged, an alias moved). The first read of
  a param marks it "wanted" in the buffer (the device service subscribes it) and, if the
  device never sent it, waits up to :data:`FIRST_READ_WAIT` s for its value: a student never
  reads a 0 the device did not send.
- ``Robot.run`` / ``is_running`` / ``sleep`` go to the executor's action runner; ``run`` of a
  running action does nothing and says so once per action and run (as earlier runtimes did).
- Names of earlier PiE generations (``Robot.set_motor``, ``stop_motor``, ``emergency_stop``,
  ``start_pos``, ``Field.starting_zone``; ``Robot.log`` of the C runtime) work; a renamed one
  says once per run (:meth:`StudentAPI.enable` starts a run) which name to use now.
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
import contextlib
import math
import sys
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
from runtime.protocol.uid import Uid, UidError, parse_short
from runtime.trace import hop

RECHECK = 0.25  # seconds a device resolution is trusted before it is checked again


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


class StudentRecord(Protocol):
    """Where the API's own console lines go: ``(level, message, context[, logger])``, the
    executor's student log (``log/student``)."""

    def __call__(self, level: str, message: str, context: dict[str, Any],
                 logger: str = ...) -> None: ...


def _plain(value: Any) -> Any:
    """``value`` if CBOR carries it as is, else its text (a record must always encode)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


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
        self.game_state: str | None = None  #: retained ``field/game_state`` (None: unknown)
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
        with contextlib.suppress(UidError):
            return str(Uid.parse(name))
        short = parse_short(name)
        if short:  # "<type>_<id>": either generation (ids are 64 random bits: no clash)
            for known in self.buffers.device_uids():
                if Uid.parse(known).matches_short(*short):
                    return known
            raise self._unknown(name, "no connected device has that type id and id")
        target = self.aliases.resolve(name) if self.aliases is not None else None
        if target is None:
            raise self._unknown(name, "it is not an alias, a uid or '<type_id>_<id>'")
        return target

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
            names = [alias for alias, target in sorted(aliases.items()) if target == uid]
            label = Uid.parse(uid).short
            known.append(f"{label}" + (f" ({', '.join(names)})" if names else ""))
        return DeviceError(
            f"no device {name!r}: {why}; connected devices: {', '.join(known) or 'none'}",
            device=name, connected=known,
        )


class Robot:
    """``Robot``: device values and actions, plus the names earlier PiE runtimes gave them
    (docs/student-api.md, "Programs from earlier seasons")."""

    def __init__(self, api: StudentAPI) -> None:
        self._api = api
        self._devices = api.devices
        self._actions = api.actions

    def get_value(self, device: str, param: str) -> Any:
        """The current value of ``param`` of ``device`` (uid, ``"<type_id>_<id>"`` or alias).

        The first read of a param on a device makes it "wanted": the device service adds it
        to the device's subscription (for as long as the device stays connected), and this
        call waits up to :data:`FIRST_READ_WAIT` s for the device's own value rather than
        return one it never sent."""
        self._actions.check()
        buffer = self._devices.get(device)
        try:
            if type(param) is not str:
                raise ParameterError(f"a param is named by a string, not "
                                     f"{type(param).__name__} {param!r}", param=repr(param))
            if param not in buffer.asked:
                _first_read(buffer, param)
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
                hop("executor: set_value")
            except RuntimeBaseException as exc:
                raise _explain(exc, f"Robot.set_value({device!r}, {param!r}, "
                                    f"{_short_repr(value)})", device, param) from None

    def run(self, action: Any, *args: Any, timeout: float | None = None) -> None:
        """Start ``action(*args)``: an ``async def`` or a plain function (in a thread).

        If ``action`` is still running this does nothing (as in every earlier PiE runtime)
        and says so once per action per run: a program that calls ``Robot.run(wave)`` every
        tick must not fail, nor stop its motors, while ``wave`` runs."""
        actions = self._actions
        if not (callable(action) and actions.is_running(action)):
            try:
                actions.run(action, *args, timeout=timeout)
                return
            except ExecutionError:
                if not (callable(action) and actions.is_running(action)):
                    raise
        name = getattr(action, "__name__", repr(action))
        self._api.warn_once(
            ("run", action),
            f"Robot.run({name}): {name} is still running, so this call does nothing (and "
            f"will not be reported again in this run); check Robot.is_running({name}) first")

    def is_running(self, action: Any) -> bool:
        """Whether ``action`` (the function) is running now."""
        return self._actions.is_running(action)

    def sleep(self, seconds: float) -> None:
        """Pause a plain-function action (or ``autonomous()``/``teleop()``) for ``seconds``."""
        self._actions.sleep(seconds)

    def log(self, key: Any, value: Any) -> None:
        """C runtime (2021-25): show ``key: value`` in the console (Dawn shows it as a
        labelled value); a record on ``log/student`` with logger ``student.log``."""
        self._actions.check()
        self._api.log_value(str(key), value)

    # -- names of earlier generations ---------------------------------------------------------

    @property
    def start_pos(self) -> str | None:
        """C runtime (2021-25): the starting position; now ``Match.start_pos``."""
        self._api.renamed("Robot.start_pos", "Match.start_pos")
        return self._api.match.start_pos

    def set_motor(self, device: str, value: Any) -> None:
        """2019-20: the device's motor to ``value``; now ``Robot.set_value(device, param,
        value)``. A device with two motors (KoalaBear) is ambiguous: the error says which
        params to give ``set_value``."""
        param = self._motor_param(device, "set_motor")
        self._api.renamed("Robot.set_motor(device, value)",
                          f"Robot.set_value(device, {param!r}, value)")
        self.set_value(device, param, value)

    def stop_motor(self, device: str) -> None:
        """2019-20: every motor of ``device`` to 0; now ``Robot.set_value(device, param, 0)``."""
        self._actions.check()
        buffer = self._devices.get(device)
        motors = [p.name for p in buffer.device_type.motor_params]
        if not motors:
            raise DeviceError(
                f"Robot.stop_motor({device!r}): {buffer.device_type.name} has no motor",
                device=device)
        self._api.renamed("Robot.stop_motor(device)",
                          f"Robot.set_value(device, {motors[0]!r}, 0)")
        for param in motors:
            self.set_value(device, param, 0.0)

    def emergency_stop(self) -> None:
        """2019-20: stop the robot. Every motor goes to 0 and the student code stops until
        the mode is started again (the field's estop is not needed for that and is not
        touched: a program cannot latch the field's estop)."""
        self._api.say_once(
            ("emergency_stop",),
            "Robot.emergency_stop(): motors set to 0 and the program stopped until its mode "
            "is started again (use `runtime mode estop` or the driver station to estop)")
        self._api.stop_motors()
        raise StudentCodeStopped

    def _motor_param(self, device: str, call: str) -> str:
        self._actions.check()
        buffer = self._devices.get(device)
        motors = [p.name for p in buffer.device_type.motor_params]
        if len(motors) != 1:
            raise DeviceError(
                f"Robot.{call}({device!r}, ...): {buffer.device_type.name} has "
                + (f"{len(motors)} motors ({', '.join(motors)}): use "
                   f"Robot.set_value({device!r}, {motors[0]!r}, value)" if motors
                   else "no motor"), device=device, motors=motors)
        return motors[0]


FIRST_READ_WAIT = 0.1  # seconds a first read waits for the device's own value
FIRST_READ_POLL = 0.001


def _first_read(buffer: DeviceBuffer, param: str) -> None:
    """The first read of ``param`` here: make it wanted if the device does not stream it
    (the device service subscribes it), and if the device never sent it, ask for it and wait
    for its value; DeviceError if none comes in time (nothing is remembered then, so the
    next read tries again)."""
    buffer.get(param)  # readable? (raises the clear error if not)
    index = buffer.device_type.param(param).index
    if not buffer.subscription[0] >> index & 1:
        buffer.want([param])
    if buffer.timestamp(param) <= 0:
        buffer.request_read([param])
        deadline = time.monotonic() + FIRST_READ_WAIT
        while buffer.timestamp(param) <= 0:
            if time.monotonic() >= deadline:
                raise DeviceError(
                    f"{buffer.label} did not send {param} within {FIRST_READ_WAIT:g} s of the "
                    "first read (is it still plugged in and working?)",
                    device=buffer.uid, param=param)
            time.sleep(FIRST_READ_POLL)
    buffer.asked.add(param)


def _short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters; an int Python will
    not print (past 4300 digits) is shown by its size."""
    try:
        text = repr(value)
    except ValueError:
        return f"<an int of {value.bit_length()} bits>" if isinstance(value, int) else "<?>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


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

    _what = "input"

    def __init__(self, api: StudentAPI) -> None:
        self._api = api
        self._inputs = api.inputs

    def _check_teleop(self, call: str) -> None:
        self._api.actions.check()
        mode = self._api.match.mode
        if mode is not Mode.TELEOP:
            raise ExecutionError(
                f"{call}: the {self._what} can only be read in teleop (the robot is in {mode}); "
                "in autonomous the robot must drive itself", mode=str(mode))


class Gamepad(_Input):
    """``Gamepad.get_value(name, index=0)``: buttons (bool) and joysticks (-1 to 1)."""

    _what = "gamepad"

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

    _what = "keyboard"

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
    """``Match.mode``, ``alliance``, ``start_pos``, ``elapsed`` (s), ``game_state``."""

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

    @property
    def game_state(self) -> str | None:
        """The field's game state (retained ``field/game_state``), None when unknown."""
        return self._state.game_state


class Field:
    """2019-20 (PieCentral): ``Field.starting_zone``; now ``Match.start_pos``."""

    def __init__(self, api: StudentAPI) -> None:
        self._api = api

    @property
    def starting_zone(self) -> str | None:
        self._api.renamed("Field.starting_zone", "Match.start_pos")
        return self._api.match.start_pos


class StudentAPI:
    """One robot's student API: the objects, the write gate and the motor stop."""

    def __init__(
        self,
        buffers: BufferStore,
        *,
        aliases: AliasFile | None = None,
        actions: ActionRunner | None = None,
        print: Callable[..., None] = builtins.print,  # noqa: A002 (replaces print for the student)
        log: StudentRecord | None = None,
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
        self.field = Field(self)
        self.print = print
        self.log = log
        self._said: set[Any] = set()  # what warn_once said in this run
        self._said_lock = threading.Lock()

    def names(self) -> dict[str, Any]:
        """What goes into the student module."""
        return {
            "Robot": self.robot, "Gamepad": self.gamepad, "Keyboard": self.keyboard,
            "Actions": Actions, "Mode": Mode, "Alliance": Alliance,
            "Match": Match(self.match), "Field": self.field, "print": self.print,
        }

    # -- the console: warnings once per run, Robot.log -------------------------------------------

    def say_once(self, key: Any, message: str) -> None:
        """``message`` as a console warning, unless ``key`` was said already in this run."""
        try:
            with self._said_lock:
                if key in self._said:
                    return
                self._said.add(key)
        except TypeError:  # an unhashable key (an odd action): say it every time
            pass
        self.print(message, file=sys.stderr)  # the console: a warning, in order with prints

    warn_once = say_once

    def renamed(self, old: str, new: str) -> None:
        """An earlier generation's name was used: it works; say once which name to use now."""
        self.say_once(("renamed", old),
                      f"{old} is the name of an earlier PiE runtime: it still works here, "
                      f"but use {new} now")

    def log_value(self, key: str, value: Any) -> None:
        """``Robot.log``: one record on ``log/student`` (interfaces: logger ``student.log``)."""
        message = f"{key}: {value}"
        if self.log is not None:
            self.log("INFO", message, {"key": key, "value": _plain(value)}, "student.log")
        else:
            self.print(message)

    def enable(self) -> None:
        """Let student code write desired values (a mode with student code starts: a new run,
        so the once-per-run warnings may be said again)."""
        with self.gate:
            self.enabled = True
        with self._said_lock:
            self._said.clear()

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
