from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IDLE: _ClassVar[Mode]
    AUTO: _ClassVar[Mode]
    TELEOP: _ClassVar[Mode]

class Pos(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEFT: _ClassVar[Pos]
    RIGHT: _ClassVar[Pos]

class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_0: _ClassVar[State]

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GAMEPAD: _ClassVar[Source]
    KEYBOARD: _ClassVar[Source]
IDLE: Mode
AUTO: Mode
TELEOP: Mode
LEFT: Pos
RIGHT: Pos
STATE_0: State
GAMEPAD: Source
KEYBOARD: Source

class RunMode(_message.Message):
    __slots__ = ("mode",)
    MODE_FIELD_NUMBER: _ClassVar[int]
    mode: Mode
    def __init__(self, mode: _Optional[_Union[Mode, str]] = ...) -> None: ...

class StartPos(_message.Message):
    __slots__ = ("pos",)
    POS_FIELD_NUMBER: _ClassVar[int]
    pos: Pos
    def __init__(self, pos: _Optional[_Union[Pos, str]] = ...) -> None: ...

class Text(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, payload: _Optional[_Iterable[str]] = ...) -> None: ...

class Param(_message.Message):
    __slots__ = ("name", "fval", "ival", "bval", "readonly")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FVAL_FIELD_NUMBER: _ClassVar[int]
    IVAL_FIELD_NUMBER: _ClassVar[int]
    BVAL_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    name: str
    fval: float
    ival: int
    bval: bool
    readonly: bool
    def __init__(self, name: _Optional[str] = ..., fval: _Optional[float] = ..., ival: _Optional[int] = ..., bval: _Optional[bool] = ..., readonly: _Optional[bool] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("name", "uid", "type", "params")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: int
    type: int
    params: _containers.RepeatedCompositeFieldContainer[Param]
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[int] = ..., type: _Optional[int] = ..., params: _Optional[_Iterable[_Union[Param, _Mapping]]] = ...) -> None: ...

class DevData(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class GameState(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: State
    def __init__(self, state: _Optional[_Union[State, str]] = ...) -> None: ...

class Input(_message.Message):
    __slots__ = ("connected", "buttons", "axes", "source")
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    BUTTONS_FIELD_NUMBER: _ClassVar[int]
    AXES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    connected: bool
    buttons: int
    axes: _containers.RepeatedScalarFieldContainer[float]
    source: Source
    def __init__(self, connected: _Optional[bool] = ..., buttons: _Optional[int] = ..., axes: _Optional[_Iterable[float]] = ..., source: _Optional[_Union[Source, str]] = ...) -> None: ...

class UserInputs(_message.Message):
    __slots__ = ("inputs",)
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[Input]
    def __init__(self, inputs: _Optional[_Iterable[_Union[Input, _Mapping]]] = ...) -> None: ...

class TimeStamps(_message.Message):
    __slots__ = ("dawn_timestamp", "runtime_timestamp")
    DAWN_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    dawn_timestamp: int
    runtime_timestamp: int
    def __init__(self, dawn_timestamp: _Optional[int] = ..., runtime_timestamp: _Optional[int] = ...) -> None: ...

class RuntimeStatus(_message.Message):
    __slots__ = ("shep_connected", "dawn_connected", "mode", "battery", "version")
    SHEP_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    DAWN_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BATTERY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    shep_connected: bool
    dawn_connected: bool
    mode: Mode
    battery: float
    version: str
    def __init__(self, shep_connected: _Optional[bool] = ..., dawn_connected: _Optional[bool] = ..., mode: _Optional[_Union[Mode, str]] = ..., battery: _Optional[float] = ..., version: _Optional[str] = ...) -> None: ...
