"""The Smart Device catalog: device types, their parameters, types, flags and bounds.

The catalog lives in a data file (``catalog.toml``, shipped in the package) because it changes
with the firmware, not with the code. It is validated at load so a bad entry fails at start-up
with a message naming the file, the device and the param, instead of desynchronising a device
later (the firmware misreads every value after one it rejects).
"""

from __future__ import annotations

import builtins
import math
import struct
import tomllib
from collections.abc import Iterable, Iterator
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runtime.exception import CatalogError, ParameterError

ParamTypeName = Literal[
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float"
]

#: struct format character (little-endian, no padding) of each wire type.
STRUCT_FORMATS: dict[str, str] = {
    "bool": "?",
    "int8": "b",
    "uint8": "B",
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float": "f",
}

MAX_PARAMS = 16
DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.toml")
FLOAT32_MAX = 3.4028234663852886e38


def integer_range(type_name: str) -> tuple[int, int] | None:
    """The representable range of an integer wire type, or None for bool/float."""
    if type_name in ("bool", "float"):
        return None
    bits = struct.calcsize(STRUCT_FORMATS[type_name]) * 8
    if type_name.startswith("u"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


class Parameter(BaseModel):
    """One parameter of a device type: its index is its bit in the params bitmap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: ParamTypeName
    readable: bool = False
    writeable: bool = False
    subscribed: bool = False
    lower: float | None = None
    upper: float | None = None
    motor: bool = False
    index: int = Field(default=0, ge=0, lt=MAX_PARAMS)

    @model_validator(mode="after")
    def _check_bounds(self) -> Parameter:
        if (self.lower is not None or self.upper is not None) and self.type == "bool":
            raise ValueError("bounds are only allowed on numeric params, not on bool")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"lower bound {self.lower} is above upper bound {self.upper}")
        if self.subscribed and not self.readable:
            raise ValueError("a param subscribed by default must be readable")
        if self.motor and not self.writeable:
            raise ValueError("a motor param must be writeable (it is forced to 0 on stop)")
        return self

    @property
    def struct_format(self) -> str:
        return STRUCT_FORMATS[self.type]

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.struct_format)

    @property
    def python_type(self) -> builtins.type:  # the field ``type`` shadows the builtin here
        if self.type == "bool":
            return bool
        if self.type == "float":
            return float
        return int

    def allowed(self) -> str:
        """What values this param accepts, in words (used in every bounds/type error)."""
        if self.type == "bool":
            return "True or False"
        kind = "a number" if self.type == "float" else f"a whole number ({self.type})"
        low, high = self.lower, self.upper
        span = integer_range(self.type)
        if span is not None:
            low = span[0] if low is None else max(low, span[0])
            high = span[1] if high is None else min(high, span[1])
        if low is not None and high is not None:
            return f"{kind} from {_fmt(low)} to {_fmt(high)}"
        if low is not None:
            return f"{kind} >= {_fmt(low)}"
        if high is not None:
            return f"{kind} <= {_fmt(high)}"
        return kind

    def check_value(self, value: Any, device: str = "?") -> bool | int | float:
        """Validate (and normalise) a value for writing; raise ParameterError if not allowed."""
        original = value

        def context() -> dict[str, Any]:  # built only on failure: allowed() is not free
            return {
                "device": device,
                "param": self.name,
                "value": original,
                "allowed": self.allowed(),
            }

        if self.type == "bool":
            if not isinstance(value, bool):
                raise ParameterError(
                    f"{device}.{self.name} takes True or False, not {type(value).__name__}",
                    **context(),
                )
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParameterError(
                f"{device}.{self.name} takes {self.allowed()}, not {type(value).__name__}",
                **context(),
            )
        if self.type == "float":
            value = float(value)
            if math.isnan(value) or abs(value) > FLOAT32_MAX:
                raise ParameterError(
                    f"{device}.{self.name} takes {self.allowed()}, not {value}", **context()
                )
        elif isinstance(value, float):
            if not value.is_integer():
                raise ParameterError(
                    f"{device}.{self.name} takes {self.allowed()}, not {value}", **context()
                )
            value = int(value)
        span = integer_range(self.type)
        out_of_range = span is not None and not span[0] <= value <= span[1]
        if (
            out_of_range
            or (self.lower is not None and value < self.lower)
            or (self.upper is not None and value > self.upper)
        ):
            raise ParameterError(
                f"{device}.{self.name} = {value} is out of bounds: it takes {self.allowed()}",
                **context(),
            )
        return value


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


class DeviceType(BaseModel):
    """A Smart Device type: id (the ``device_type`` of its UID), name and ordered params."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int = Field(ge=0, le=0xFFFF)
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    params: tuple[Parameter, ...] = Field(max_length=MAX_PARAMS)

    @model_validator(mode="before")
    @classmethod
    def _number_params(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("params"), list | tuple):
            if len(data["params"]) > MAX_PARAMS:  # else the index check fires first, less clearly
                raise ValueError(
                    f"has {len(data['params'])} params; a device type takes at most {MAX_PARAMS} "
                    "(one bit each in the u16 params bitmap)"
                )
            params = []
            for index, param in enumerate(data["params"]):
                if isinstance(param, dict):
                    param = {**param, "index": index}
                params.append(param)
            data = {**data, "params": params}
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> DeviceType:
        seen: set[str] = set()
        for param in self.params:
            if param.name in seen:
                raise ValueError(f"param {param.name!r} is defined twice")
            seen.add(param.name)
        return self

    @cached_property
    def by_name(self) -> dict[str, Parameter]:
        return {param.name: param for param in self.params}

    def param(self, key: str | int) -> Parameter:
        """A param by name or index; ParameterError naming the allowed ones otherwise."""
        try:
            if isinstance(key, int) and not isinstance(key, bool):
                if key < 0:
                    raise IndexError(key)
                return self.params[key]
            if not isinstance(key, str):
                raise TypeError(key)
            return self.by_name[key]
        except (KeyError, IndexError, TypeError):
            raise ParameterError(
                f"{self.name} has no param {key!r}; its params are: "
                + ", ".join(p.name for p in self.params),
                device_type=self.name,
                param=key,
                allowed=[p.name for p in self.params],
            ) from None

    def bitmap(self, names: Iterable[str | int] | None) -> int:
        """Params bitmap of the given names/indices (None: all params)."""
        if names is None:
            return (1 << len(self.params)) - 1
        bitmap = 0
        for name in names:
            bitmap |= 1 << self.param(name).index
        return bitmap

    def names(self, bitmap: int) -> list[str]:
        """Names of the params set in a bitmap, in index order (bits beyond params ignored)."""
        return [p.name for p in self.params if bitmap >> p.index & 1]

    @cached_property
    def readable_bitmap(self) -> int:
        return sum(1 << p.index for p in self.params if p.readable)

    @cached_property
    def writeable_bitmap(self) -> int:
        return sum(1 << p.index for p in self.params if p.writeable)

    @cached_property
    def subscribed_bitmap(self) -> int:
        """Params subscribed by default when the device is discovered."""
        return sum(1 << p.index for p in self.params if p.subscribed)

    @cached_property
    def motor_params(self) -> tuple[Parameter, ...]:
        """Params forced to 0 whenever the robot must stop."""
        return tuple(p for p in self.params if p.motor)

    def value_struct(self, bitmap: int) -> struct.Struct:
        """The struct of a DeviceData/DeviceWrite value list for a bitmap (cached)."""
        return _value_struct(self, bitmap & ((1 << len(self.params)) - 1))


@cache
def _value_struct(device_type: DeviceType, bitmap: int) -> struct.Struct:
    return struct.Struct(
        "<" + "".join(p.struct_format for p in device_type.params if bitmap >> p.index & 1)
    )


class Catalog(BaseModel):
    """All known device types, looked up by type id or by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    devices: tuple[DeviceType, ...]

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        ids: dict[int, str] = {}
        names: set[str] = set()
        for device in self.devices:
            if device.id in ids:
                raise ValueError(
                    f"device type id {device.id} is used by both {ids[device.id]} and {device.name}"
                )
            if device.name in names:
                raise ValueError(f"device name {device.name!r} is defined twice")
            ids[device.id] = device.name
            names.add(device.name)
        return self

    @cached_property
    def _by_id(self) -> dict[int, DeviceType]:
        return {device.id: device for device in self.devices}

    @cached_property
    def _by_name(self) -> dict[str, DeviceType]:
        return {device.name.lower(): device for device in self.devices}

    def __iter__(self) -> Iterator[DeviceType]:  # type: ignore[override]
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def get(self, key: int | str) -> DeviceType:
        """A device type by id (int, or decimal string) or by name (case-insensitive)."""
        if isinstance(key, int) and not isinstance(key, bool):
            found = self._by_id.get(key)
        elif isinstance(key, str):
            found = self._by_name.get(key.lower())
            if found is None and key.isdigit():
                found = self._by_id.get(int(key))
        else:
            found = None
        if found is None:
            raise CatalogError(
                f"unknown device type {key!r}; known types: "
                + ", ".join(f"{d.name} ({d.id})" for d in self.devices),
                device_type=key,
            )
        return found

    def __contains__(self, key: object) -> bool:
        try:
            self.get(key)  # type: ignore[arg-type]
        except CatalogError:
            return False
        return True


def load_catalog(path: str | Path = DEFAULT_CATALOG_PATH) -> Catalog:
    """Read and validate a catalog file; CatalogError names the file, device and param."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read device catalog {path}: {exc}", file=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(
            f"device catalog {path} is not valid TOML: {exc}", file=str(path)
        ) from exc
    devices = raw.get("device", [])
    try:
        return Catalog(devices=devices)
    except ValidationError as exc:
        raise CatalogError(
            f"invalid device catalog {path}: "
            + "; ".join(_describe(err, devices) for err in exc.errors()),
            file=str(path),
        ) from None


def _describe(error: Any, devices: list[Any]) -> str:
    """One validation error in words: which device, which param, what is wrong."""
    loc = list(error.get("loc", ()))
    where = []
    if len(loc) >= 2 and loc[0] == "devices" and isinstance(loc[1], int):
        index = loc[1]
        device = devices[index] if index < len(devices) and isinstance(devices[index], dict) else {}
        where.append(f"device {device.get('name', f'#{index}')!r}")
        if len(loc) >= 4 and loc[2] == "params" and isinstance(loc[3], int):
            params = device.get("params") or []
            known = loc[3] < len(params) and isinstance(params[loc[3]], dict)
            param = params[loc[3]] if known else {}
            where.append(f"param {param.get('name', f'#{loc[3]}')!r}")
            rest = loc[4:]
        else:
            rest = loc[2:]
        if rest:
            where.append("field " + ".".join(str(part) for part in rest))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if "too_long" in str(error.get("type", "")):
        message = f"has more than {MAX_PARAMS} params"
    return (", ".join(where) + ": " if where else "") + message


@cache
def default_catalog() -> Catalog:
    """The catalog shipped with the package (loaded once per process)."""
    return load_catalog()
