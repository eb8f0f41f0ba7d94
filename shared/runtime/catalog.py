"""The Smart Device catalog: device types, their parameters, types, flags and bounds.

The catalog lives in a data file (``catalog.toml``, shipped in the package) because it changes
with the firmware, not with the code. It is validated at load so a bad entry fails at start-up
with a message naming the file, the device and the param, instead of desynchronising a device
later (the firmware misreads every value after one it rejects).
"""

from __future__ import annotations

import math
import struct
import tomllib
from collections.abc import Callable, Iterable, Iterator
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runtime.exception import CatalogError, ParameterError
from runtime.protocol.uid import LOWCAR_TYPE_BASE, Generation, Uid

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
    default: bool | int | float | None = None  #: the firmware's value after a reset, if known
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
    def python_type(self) -> Callable[[Any], bool | int | float]:
        """The Python type of this param's values (``bool``, ``int`` or ``float``)."""
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
                "value": _shown(original) if _huge(original) else original,
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
            try:
                value = float(value)
            except OverflowError:  # an int past the float range, such as 10**400
                value = math.inf if value > 0 else -math.inf
            if math.isnan(value) or abs(value) > FLOAT32_MAX:
                raise ParameterError(
                    f"{device}.{self.name} takes {self.allowed()}, not {_shown(original)}",
                    **context(),
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
                f"{device}.{self.name} = {_shown(value)} is out of bounds: it takes "
                f"{self.allowed()}", **context(),
            )
        return value


def _huge(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30


def _shown(value: Any) -> str:
    """A number for an error message; an int too long to print whole (Python refuses past
    4300 digits) is shown by its size."""
    if _huge(value):
        return f"{'-' if value < 0 else ''}an int of {value.bit_length()} bits"
    return str(value)


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


#: The wire types a lowcar device speaks (int32, float32, and bool as one byte).
LOWCAR_TYPES = ("bool", "int32", "float")


class DeviceType(BaseModel):
    """A Smart Device type: generation, id (its number within the generation), name, params.

    Type numbers collide across generations (lowcar KoalaBear is 6, Hibike KoalaBear 13), so
    ``(generation, id)`` is the identity; ``uid_type`` is the 16-bit type field of its ``Uid``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    generation: Generation = Generation.HIBIKE
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
        if self.generation is Generation.LOWCAR:
            if self.id > 0xFF:
                raise ValueError(f"lowcar type id {self.id} does not fit its u8 type field")
            for param in self.params:
                if param.type not in LOWCAR_TYPES:
                    raise ValueError(
                        f"param {param.name!r}: lowcar devices speak only "
                        f"{', '.join(LOWCAR_TYPES)}, not {param.type}"
                    )
        elif LOWCAR_TYPE_BASE <= self.id < LOWCAR_TYPE_BASE + 0x100:
            raise ValueError(
                f"Hibike type id {self.id} is in {LOWCAR_TYPE_BASE}..{LOWCAR_TYPE_BASE + 255}, "
                "the uid range of lowcar types"
            )
        return self

    @property
    def uid_type(self) -> int:
        """The 16-bit type field of this type's uids (lowcar: LOWCAR_TYPE_BASE + id)."""
        return self.id + (LOWCAR_TYPE_BASE if self.generation is Generation.LOWCAR else 0)

    @property
    def qualified_name(self) -> str:
        """``KoalaBear`` for Hibike types, ``lowcar.KoalaBear`` for lowcar ones."""
        if self.generation is Generation.LOWCAR:
            return f"{self.generation}.{self.name}"
        return self.name

    def make_uid(self, id: int, year: int = 1) -> Uid:
        """A uid of this type (virtual devices, tests)."""
        return Uid.of(self.generation, self.id, year, id)

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
            return self.by_name[key]  # type: ignore[index]  # bool keys: KeyError below
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
        names: set[tuple[Generation, str]] = set()
        for device in self.devices:
            if device.uid_type in ids:
                raise ValueError(
                    f"{device.generation} device type id {device.id} is used by both "
                    f"{ids[device.uid_type]} and {device.name}"
                )
            if (device.generation, device.name) in names:
                raise ValueError(
                    f"{device.generation} device name {device.name!r} is defined twice"
                )
            ids[device.uid_type] = device.name
            names.add((device.generation, device.name))
        return self

    @cached_property
    def _by_id(self) -> dict[int, DeviceType]:
        return {device.uid_type: device for device in self.devices}

    @cached_property
    def _by_name(self) -> dict[str, DeviceType]:
        return {device.qualified_name.lower(): device for device in self.devices}

    def __iter__(self) -> Iterator[DeviceType]:  # type: ignore[override]
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def get(self, key: int | str, generation: Generation | str | None = None) -> DeviceType:
        """A device type by name (case-insensitive) or id (int, or decimal string).

        Without ``generation``, a name means the Hibike type unless qualified
        (``"lowcar.KoalaBear"``), and an int is a uid's 16-bit type field (``Uid.type_field``:
        lowcar types are offset by LOWCAR_TYPE_BASE). With ``generation``, both are that
        generation's own name and number (lowcar KoalaBear: ``get(6, "lowcar")``).
        """
        found = None
        if generation is not None:
            try:
                generation = Generation(generation)
            except ValueError:
                raise CatalogError(
                    f"unknown device generation {generation!r}; known: "
                    + ", ".join(g.value for g in Generation),
                    generation=str(generation),
                ) from None
        if isinstance(key, str) and key.isascii() and key.isdigit():
            key = int(key)
        if isinstance(key, int) and not isinstance(key, bool):
            if generation is Generation.LOWCAR:
                found = self._by_id.get(key + LOWCAR_TYPE_BASE) if key <= 0xFF else None
            else:
                found = self._by_id.get(key)
                if found is not None and generation is not None:
                    found = found if found.generation is generation else None
        elif isinstance(key, str):
            qualified = key if generation in (None, Generation.HIBIKE) else f"{generation}.{key}"
            found = self._by_name.get(qualified.lower())
        if found is None:
            raise CatalogError(
                f"unknown device type {key!r}"
                + (f" in the {generation} generation" if generation else "")
                + "; known types: "
                + ", ".join(f"{d.qualified_name} ({d.id})" for d in self.devices),
                device_type=key,
            )
        return found

    def for_uid(self, uid: Uid | int | str) -> DeviceType:
        """The device type a uid names (its generation and type field)."""
        return self.get(Uid.parse(uid).type_field)

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
