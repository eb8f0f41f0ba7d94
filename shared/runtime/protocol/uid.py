"""Smart Device UIDs: one value type, ``Uid``, and the one parser every part of Runtime uses.

A Hibike device says who it is with 88 bits: ``device_type u16 | year u8 | id u64``; its integer
form ``device_type << 72 | year << 64 | id`` does not fit 64 bits, so it travels over the network
as a decimal string (``device/<uid>/info``). A lowcar device says ``type u8 | year u8 | uid u64``,
and its type numbers collide with Hibike's (lowcar KoalaBear is 6, Hibike KoalaBear 13). So that
both generations share one canonical form, a lowcar type ``t`` takes the 16-bit type field
``LOWCAR_TYPE_BASE + t`` (256..511, a range no Hibike type uses): lowcar KoalaBear 6 with id 4660
and year 1 is ``Uid.lowcar(6, 1, 4660)``, decimal ``1237278465255920755544628`` in topics. The
generation is part of the value, never guessed from context.

Parsing accepts an int or a string of ASCII digits (surrounding whitespace and leading zeros are
forgiven: ``" 0012"`` is 12); anything else, fullwidth digits and values from 2**88 on included, is
a ``UidError`` saying what is accepted. Students may also name a device ``"<type>_<id>"`` (the C
runtime's form, e.g. ``"6_4660"``): ``parse_short`` reads it; which uid it means depends on what is
connected, so resolving it is the caller's job (``Uid.matches_short``).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from typing import Any

from runtime.exception import ProtocolError

UID_BITS = 88
UID_MAX = (1 << UID_BITS) - 1
UID_SIZE = 11
ID_MASK = (1 << 64) - 1
#: A lowcar type ``t`` is the 16-bit type field ``LOWCAR_TYPE_BASE + t`` of its uid.
LOWCAR_TYPE_BASE = 0x100
_UID_STRUCT = struct.Struct("<HBQ")
# ids of 30 digits at most: int() refuses past 4300
_SHORT = re.compile(r"^\s*([0-9]{1,30})_([0-9]{1,30})\s*$", re.ASCII)
_ACCEPTED = (
    "a decimal number from 0 to 2**88-1 in ASCII digits (device_type << 72 | year << 64 | id, "
    "as in device/<uid>/info)"
)


class Generation(enum.StrEnum):
    """The two Smart Device protocol generations; part of a device type's identity."""

    HIBIKE = "hibike"
    LOWCAR = "lowcar"


class UidError(ProtocolError, ValueError):
    """Not a device uid (also a ``ValueError``, the stdlib type a caller would catch)."""


def _field(name: str, value: Any, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise UidError(
            f"uid field {name} = {value!r} is out of range: it takes a whole number from 0 "
            f"to {(1 << bits) - 1}",
            field=name,
            value=value,
        )
    return value


@dataclass(frozen=True, slots=True, order=True)
class Uid:
    """A device uid, validated at construction; ``str(uid)`` is its canonical decimal form."""

    value: int

    def __post_init__(self) -> None:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise UidError(f"{value!r} is not a device uid: expected {_ACCEPTED}", uid=repr(value))
        if not 0 <= value <= UID_MAX:
            raise UidError(
                f"device uid {value} is out of range: it takes a whole number from 0 to "
                "2**88-1", uid=str(value),
            )

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: object) -> Uid:
        """The one uid parser: a ``Uid``, an int, or a decimal string (see the module doc)."""
        if isinstance(text, Uid):
            return text
        if isinstance(text, int) and not isinstance(text, bool):
            return cls(text)
        if isinstance(text, str):
            stripped = text.strip()
            # 27 digits at most: past 4300, int() itself refuses (a ValueError, not this)
            if stripped.isascii() and stripped.isdigit() and len(stripped.lstrip("0")) <= 27:
                return cls(int(stripped))
        shown = repr(text) if not isinstance(text, str) or len(text) <= 60 else \
            f"{text[:40]!r}... ({len(text)} characters)"
        raise UidError(f"{shown} is not a device uid: expected {_ACCEPTED}", uid=shown)

    @classmethod
    def hibike(cls, device_type: int, year: int, id: int) -> Uid:
        """The uid of a Hibike device (the fields of its SubscriptionResponse)."""
        _field("device_type", device_type, 16)
        return cls(device_type << 72 | _field("year", year, 8) << 64 | _field("id", id, 64))

    @classmethod
    def lowcar(cls, device_type: int, year: int, id: int) -> Uid:
        """The uid of a lowcar device (the fields of its ACK)."""
        kind = LOWCAR_TYPE_BASE + _field("lowcar device type", device_type, 8)
        return cls(kind << 72 | _field("year", year, 8) << 64 | _field("id", id, 64))

    @classmethod
    def of(cls, generation: Generation | str, device_type: int, year: int, id: int) -> Uid:
        """The uid of a device of either generation."""
        if Generation(generation) is Generation.LOWCAR:
            return cls.lowcar(device_type, year, id)
        return cls.hibike(device_type, year, id)

    # -- fields ----------------------------------------------------------------------------------

    @property
    def type_field(self) -> int:
        """The 16-bit device_type field (lowcar types are offset by LOWCAR_TYPE_BASE)."""
        return self.value >> 72

    @property
    def generation(self) -> Generation:
        base = LOWCAR_TYPE_BASE
        is_lowcar = base <= self.type_field < base + 0x100
        return Generation.LOWCAR if is_lowcar else Generation.HIBIKE

    @property
    def type_id(self) -> int:
        """The device type number within its generation (lowcar KoalaBear: 6)."""
        field = self.type_field
        return field - LOWCAR_TYPE_BASE if self.generation is Generation.LOWCAR else field

    @property
    def year(self) -> int:
        return self.value >> 64 & 0xFF

    @property
    def id(self) -> int:
        """The 64 random bits burned in when the firmware was flashed."""
        return self.value & ID_MASK

    @property
    def short(self) -> str:
        """The ``"<type>_<id>"`` name of the C runtime (e.g. ``"6_4660"``)."""
        return f"{self.type_id}_{self.id}"

    def matches_short(self, type_id: int, id: int) -> bool:
        return self.type_id == type_id and self.id == id

    def pack(self) -> bytes:
        """The 11 bytes of a Hibike SubscriptionResponse's uid field."""
        return _UID_STRUCT.pack(self.type_field, self.year, self.id)

    def __str__(self) -> str:
        return str(self.value)

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value


def parse_short(text: object) -> tuple[int, int] | None:
    """``(type, id)`` of a ``"<type>_<id>"`` name, or None if ``text`` has another form."""
    if not isinstance(text, str):
        return None
    match = _SHORT.match(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


# -- the integer helpers the Hibike codec has always offered (now thin wrappers) ---------------


def make_uid(device_type: int, year: int, id: int) -> int:
    """The 88-bit integer UID of a Hibike device type id, a year byte and a 64-bit id."""
    return Uid.hibike(device_type, year, id).value


def split_uid(uid: int) -> tuple[int, int, int]:
    """``(device_type field, year, id)`` of an integer UID."""
    value = Uid(uid)
    return value.type_field, value.year, value.id


def pack_uid(uid: int) -> bytes:
    """The 11 wire bytes of a UID (little-endian fields)."""
    return Uid(uid).pack()


def unpack_uid(data: bytes) -> int:
    """The integer UID of its 11 wire bytes."""
    if len(data) != UID_SIZE:
        raise UidError(f"a device uid takes {UID_SIZE} bytes, not {len(data)}", size=len(data))
    device_type, year, id_ = _UID_STRUCT.unpack(data)
    return device_type << 72 | year << 64 | id_


def uid_str(uid: int | Uid) -> str:
    """The canonical decimal string form of a UID (as in MQTT topics)."""
    return str(Uid.parse(uid))


def parse_uid(text: object) -> int:
    """A UID as an int from its decimal string (or an int); UidError says what is accepted."""
    return Uid.parse(text).value
