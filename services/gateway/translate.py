"""Pure translations between PiE's client protocol and this robot's MQTT payloads.

No I/O here, so every mapping of docs/gateway.md's table is tested on its own:
``RunMode``/``StartPos`` -> ``set_mode`` arguments, ``UserInputs`` -> gamepad/keyboard payloads,
device infos and values -> ``DevData`` (plus the CustomData pseudo-device), log records -> ``Text``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.catalog import default_catalog
from runtime.exception import RuntimeBaseException
from runtime.messages import (
    GAMEPAD_BUTTONS,
    KEYBOARD_KEYS,
    DeviceInfo,
    GamepadInput,
    KeyboardInput,
    LogRecord,
)
from runtime.service.gateway.proto import pie_client_pb2 as pb
from runtime.topics import GAMEPAD_COUNT

MODES = {pb.IDLE: "idle", pb.AUTO: "auto", pb.TELEOP: "teleop"}
START_POSITIONS = {pb.LEFT: "left", pb.RIGHT: "right"}
PB_MODES = {"idle": pb.IDLE, "auto": pb.AUTO, "teleop": pb.TELEOP, "estop": pb.IDLE}

#: The CustomData pseudo-device Dawn shows (docs/gateway.md, "Behaviour clients rely on").
CUSTOM_DATA_NAME = "CustomData"
CUSTOM_DATA_TYPE = 32
CUSTOM_DATA_UID = 2020
UID_ID_MASK = (1 << 64) - 1
INT32 = (-(1 << 31), (1 << 31) - 1)
#: ``Robot.log`` entries Dawn is shown, and the longest key: a student loop can make
#: thousands of keys, or one huge one, and DEVICE_DATA must still fit its 64 KiB frame.
MAX_CUSTOM_ENTRIES = 64
MAX_CUSTOM_KEY = 64
#: The longest LOG line (characters) and the most body bytes in one LOG frame; a longer print
#: is cut with a note, a record of many lines travels in several frames.
MAX_LOG_LINE = 4096
MAX_LOG_FRAME = 60000


def mode_name(message: pb.RunMode) -> str | None:
    """The contract's mode for a RUN_MODE message (None for an unknown enum value)."""
    return MODES.get(message.mode)


def start_pos_name(message: pb.StartPos) -> str | None:
    """``left``/``right`` for a START_POS message (None for an unknown enum value)."""
    return START_POSITIONS.get(message.pos)


def game_state_name(message: pb.GameState) -> str:
    """The season's game state as text: its number (values change every season)."""
    return str(int(message.state))


@dataclass
class InputUpdate:
    """What one INPUTS message means: payloads per input topic; None = that input is gone.

    ``gamepads`` maps slot (0..3, in the message's order of gamepad inputs) to a payload;
    ``keyboard`` is set when the message had a keyboard input; ``problems`` lists inputs
    that were dropped, one sentence each.
    """

    gamepads: dict[int, GamepadInput | None] = field(default_factory=dict)
    keyboard: KeyboardInput | None = None
    has_keyboard: bool = False
    problems: list[str] = field(default_factory=list)


def inputs_update(message: pb.UserInputs, ts: float) -> InputUpdate:
    """The gamepad/keyboard payloads of an INPUTS message (``ts``: UNIX seconds)."""
    update = InputUpdate()
    slot = 0
    for position, item in enumerate(message.inputs):
        if item.source == pb.KEYBOARD:
            update.has_keyboard = True
            if not item.connected:
                update.keyboard = None
            elif item.buttons >> KEYBOARD_KEYS:
                update.problems.append(f"input {position}: keyboard bitmap {item.buttons:#x} "
                                       f"has bits past key {KEYBOARD_KEYS - 1}")
            else:
                update.keyboard = KeyboardInput(keys=item.buttons, ts=ts)
            continue
        if item.source != pb.GAMEPAD:
            update.problems.append(f"input {position}: unknown source {item.source}")
            continue
        if slot >= GAMEPAD_COUNT:
            update.problems.append(f"input {position}: more than {GAMEPAD_COUNT} gamepads")
            continue
        index, slot = slot, slot + 1
        if not item.connected:
            update.gamepads[index] = None
            continue
        axes = list(item.axes)
        if len(axes) != 4 or not all(math.isfinite(a) for a in axes):
            update.problems.append(f"input {position}: a gamepad needs 4 finite axes, "
                                   f"got {axes}")
            continue
        if item.buttons >> GAMEPAD_BUTTONS:
            update.problems.append(f"input {position}: gamepad bitmap {item.buttons:#x} has "
                                   f"bits past button {GAMEPAD_BUTTONS - 1}")
            continue
        clipped = [min(1.0, max(-1.0, axis)) for axis in axes]
        update.gamepads[index] = GamepadInput(buttons=item.buttons, axes=clipped, ts=ts)
    return update


def _param(name: str, kind: str, value: Any, readonly: bool) -> pb.Param:
    param = pb.Param(name=name, readonly=readonly)
    if value is None:
        return param  # never received: no value rather than a made-up 0
    if kind == "bool" or isinstance(value, bool):
        param.bval = bool(value)
    elif kind == "float" or isinstance(value, float):
        param.fval = float(value)
    elif isinstance(value, int) and INT32[0] <= value <= INT32[1]:
        param.ival = value
    else:
        param.fval = _as_float(value)  # an int past int32 (uint32 params): nearest float
    return param


@functools.cache
def dawn_type(generation: str, name: str, type_id: int) -> int:
    """The type number Dawn shows: Dawn numbers device types as the lowcar generation (C
    runtime) does, so a Hibike device is sent as the lowcar type of the same name (Hibike
    KoalaBear 13 -> 6); a type lowcar does not have keeps its own number."""
    if generation == "lowcar":
        return type_id
    try:
        return default_catalog().get(name, "lowcar").id
    except RuntimeBaseException:
        return type_id


def _as_float(value: Any) -> float:
    """The nearest float; an int past the float range (a student's ``10**400``) is +-inf."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def device_message(info: DeviceInfo, values: Mapping[str, Any]) -> pb.Device:
    """A ``Device`` with **all** params of ``info`` (values never received carry no value)."""
    device = pb.Device(name=info.type, uid=int(info.uid) & UID_ID_MASK,
                       type=dawn_type(info.generation, info.type, info.type_id))
    for param in info.params:
        device.params.append(_param(param.name, param.type, values.get(param.name),
                                    param.readable and not param.writeable))
    return device


def custom_data(entries: Mapping[str, Any], time_ms: int) -> pb.Device:
    """The CustomData pseudo-device: the student's ``Robot.log`` entries and ``time_ms``."""
    device = pb.Device(name=CUSTOM_DATA_NAME, uid=CUSTOM_DATA_UID, type=CUSTOM_DATA_TYPE)
    for key, value in entries.items():
        if isinstance(value, bool | int | float):
            device.params.append(_param(str(key), "", value, True))
    device.params.append(pb.Param(name="time_ms", ival=max(INT32[0], min(INT32[1], time_ms)),
                                  readonly=True))
    return device


def dev_data(devices: Iterable[tuple[DeviceInfo, Mapping[str, Any]]],
             entries: Mapping[str, Any], time_ms: int) -> pb.DevData:
    """DEVICE_DATA: every device with all its params, then CustomData."""
    message = pb.DevData()
    for info, values in devices:
        message.devices.append(device_message(info, values))
    message.devices.append(custom_data(entries, time_ms))
    return message


def custom_entry(record: LogRecord) -> tuple[str, Any] | None:
    """``(key, value)`` if ``record`` is a student's ``Robot.log(key, value)``, else None."""
    context = record.context
    if "key" in context and "value" in context and record.logger == "student.log":
        return str(context["key"]), context["value"]
    return None


def log_text(lines: Iterable[str]) -> pb.Text:
    """LOG: one ``Text`` whose payload lines each end in a newline."""
    text = pb.Text()
    for chunk in lines:
        for line in str(chunk).splitlines() or [""]:
            text.payload.append(line + "\n")
    return text


def log_frames(lines: Iterable[str]) -> list[pb.Text]:
    """LOG messages that each fit a frame: lines past ``MAX_LOG_LINE`` characters are cut
    (saying how much was left out), and lines are spread over as many ``Text`` as needed."""
    frames: list[pb.Text] = []
    size = MAX_LOG_FRAME
    for line in log_text(lines).payload:
        if len(line) > MAX_LOG_LINE + 1:
            left_out = len(line) - 1 - MAX_LOG_LINE
            line = f"{line[:MAX_LOG_LINE]}... ({left_out} more characters)\n"
        cost = len(line.encode()) + 4  # field tag and length
        if size + cost > MAX_LOG_FRAME:
            frames.append(pb.Text())
            size = 0
        frames[-1].payload.append(line)
        size += cost
    return frames

def record_lines(record: LogRecord) -> list[str]:
    """The console lines of a student log record (errors keep their traceback lines)."""
    level = record.level.upper()  # services log "ERROR"; the device console logs "error"
    if level in ("ERROR", "CRITICAL", "WARNING") and not record.logger.startswith("student"):
        return [f"[{level}] {record.message}"]
    return [record.message]
