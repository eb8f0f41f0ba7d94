"""Pydantic models of every MQTT payload (docs/contract.md, MQTT topics) and their CBOR wire form.

Payloads are CBOR maps with text keys. ``encode(model)`` gives the bytes to publish,
``decode(Model, data)`` checks received bytes against a model, ``loads(data)`` only decodes CBOR.
Anything wrong (not CBOR, trailing bytes, a missing field, a wrong type, an out-of-range value)
raises ``MessageError`` with one readable line naming the model, the field and what is allowed,
so a service can log it and carry on.

Models are strict (CBOR keeps types, so ``True`` is never taken for ``1`` nor ``"1"`` for ``1``;
ints are accepted where floats are expected), frozen, and ignore unknown keys so newer clients
can add fields without breaking older services.
"""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal, TypeVar

import cbor2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runtime.exception import MessageError

GAMEPAD_BUTTONS = 17
KEYBOARD_KEYS = 64

Axis = Annotated[float, Field(ge=-1.0, le=1.0)]
Value = bool | int | float


class Payload(BaseModel):
    """Base of every payload model."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        """The CBOR map this payload is sent as."""
        return self.model_dump()


class ServiceStatus(Payload):
    """``service/<name>/status`` (retained; the last will says ``offline``)."""

    state: Literal["online", "offline"]
    version: str
    pid: int
    #: UNIX seconds; finite: the device service's stale-match rule compares it with ``since``
    started: float = Field(allow_inf_nan=False)


class ParamInfo(Payload):
    """One parameter of a device, in ``DeviceInfo.params``."""

    name: str
    type: str
    readable: bool
    writeable: bool
    lower: int | float | None = None
    upper: int | float | None = None


class SubscriptionInfo(Payload):
    """What a device currently streams, and how often."""

    params: list[str]
    interval_ms: int = Field(ge=0)


class DeviceInfo(Payload):
    """``device/<uid>/info`` (retained; an empty payload means unplugged)."""

    uid: str = Field(pattern=r"^[0-9]+$")
    type: str
    type_id: int = Field(ge=0)
    generation: Literal["hibike", "lowcar"] = "hibike"  #: the protocol the device speaks
    port: str | None = None
    params: list[ParamInfo]
    subscription: SubscriptionInfo


class DeviceData(Payload):
    """``device/<uid>/data``: the params that changed since the last message."""

    ts: float
    params: dict[str, Value]


class GamepadInput(Payload):
    """``input/gamepad/<index>``: a 17-bit button bitmap and 4 axes in [-1, 1]."""

    buttons: int = Field(ge=0, lt=1 << GAMEPAD_BUTTONS)
    axes: list[Axis] = Field(min_length=4, max_length=4)
    ts: float


class KeyboardInput(Payload):
    """``input/keyboard``: a 64-bit bitmap of pressed keys."""

    keys: int = Field(ge=0, lt=1 << KEYBOARD_KEYS)
    ts: float


class Match(Payload):
    """``match`` (retained): the executor's mode and the match setup."""

    mode: Literal["idle", "auto", "teleop", "estop"]
    alliance: Literal["blue", "gold"] | None = None
    start_pos: Literal["left", "right"] | None = None
    #: UNIX seconds; finite (a NaN would pass every comparison of the stale-match rule)
    since: float = Field(allow_inf_nan=False)


class GameState(Payload):
    """``field/game_state`` (retained, from field control): the game's current state, read
    by student code as ``Match.game_state``."""

    state: str = Field(min_length=1, max_length=64)
    ts: float


class FieldPresence(Payload):
    """``field/presence`` (retained, from field control, with a last will ``offline``): field
    control is connected while ``state`` is ``online`` (the executor's authority rule)."""

    state: Literal["online", "offline"]
    ts: float


class LogRecord(Payload):
    """``log/<source>``: one log line (``student`` carries the students' prints)."""

    ts: float
    level: str
    logger: str
    message: str
    context: dict[str, Any] = Field(default_factory=dict)


class RPCRequest(Payload):
    """``rpc/<service>/<method>``: the reply goes to ``reply_to`` with the same ``id``."""

    id: str | int
    reply_to: str = Field(min_length=1, pattern=r"^[^+#]+$")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class RPCErrorInfo(Payload):
    """Why a call failed: ``RuntimeBaseException.to_dict()`` shape."""

    type: str
    message: str
    context: dict[str, Any] = Field(default_factory=dict)


class RPCReply(Payload):
    """``{id, ok: true, result}`` or ``{id, ok: false, error: {type, message, context}}``."""

    id: str | int | None
    ok: bool
    result: Any = None
    error: RPCErrorInfo | None = None

    @model_validator(mode="after")
    def _error_iff_failed(self) -> RPCReply:
        if not self.ok and self.error is None:
            raise ValueError("a reply with ok: false needs an error {type, message, context}")
        return self

    def to_wire(self) -> dict[str, Any]:
        if self.ok:
            return {"id": self.id, "ok": True, "result": self.result}
        assert self.error is not None
        return {"id": self.id, "ok": False, "error": self.error.to_wire()}


M = TypeVar("M", bound=BaseModel)


def encode(model: BaseModel | dict[str, Any]) -> bytes:
    """CBOR bytes of a payload model (or of a plain map with text keys)."""
    data = model.to_wire() if isinstance(model, Payload) else model
    if isinstance(data, BaseModel):
        data = data.model_dump()
    try:
        return cbor2.dumps(data)
    except Exception as exc:
        raise MessageError(f"cannot encode {type(model).__name__} as CBOR: {exc}") from exc


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Decode one CBOR item that spans ``data`` exactly (``MessageError`` otherwise)."""
    if not data:
        raise MessageError("empty payload: expected a CBOR map")
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:
        raise MessageError(f"payload is not valid CBOR: {exc} ({_preview(data)})") from None
    if stream.tell() != len(data):
        raise MessageError(
            f"payload has {len(data) - stream.tell()} bytes after its CBOR item ({_preview(data)})"
        )
    return value


def decode(model: type[M], data: bytes | bytearray | memoryview) -> M:
    """Decode CBOR ``data`` and check it against ``model`` (``MessageError`` on any problem)."""
    return validate(model, loads(data))


def validate(model: type[M], value: Any) -> M:
    """Check an already decoded value against ``model``, with a one-line ``MessageError``."""
    if not isinstance(value, dict):
        raise MessageError(
            f"bad {model.__name__} payload: expected a CBOR map, got {_type_name(value)}"
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise MessageError(
            f"bad {model.__name__} payload: {describe_validation_error(exc)}",
            model=model.__name__,
        ) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors as one line: ``field: what is wrong (got value)``; ``; `` between."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        text = f"{where}: {error['msg']}"
        if error["type"] != "missing":
            text += f" (got {_short_repr(error.get('input'))})"
        parts.append(text)
    return "; ".join(parts)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    names: dict[type, str] = {list: "an array", str: "a text string", bytes: "a byte string"}
    return names.get(type(value), type(value).__name__)


def _preview(data: bytes | bytearray | memoryview, limit: int = 16) -> str:
    raw = bytes(data[:limit])
    more = "..." if len(data) > limit else ""
    return f"{len(data)} bytes: {raw.hex(' ')}{more}"
