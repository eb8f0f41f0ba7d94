"""Smart Device UIDs: 88 bits = device_type u16 | year u8 | id u64.

The integer form ``device_type << 72 | year << 64 | id`` does not fit 64 bits, so it travels over
the network as a decimal string (``uid_str``/``parse_uid``).
"""

from __future__ import annotations

import struct

from runtime.exception import ProtocolError

UID_BITS = 88
UID_MAX = (1 << UID_BITS) - 1
UID_SIZE = 11
_UID_STRUCT = struct.Struct("<HBQ")


def make_uid(device_type: int, year: int, id: int) -> int:  # noqa: A002 (the UID field name)
    """The 88-bit integer UID of a device type id, a year byte and a 64-bit id."""
    for name, value, bits in (("device_type", device_type, 16), ("year", year, 8), ("id", id, 64)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise ProtocolError(
                f"uid field {name} = {value!r} is out of range: it takes a whole number from 0 "
                f"to {(1 << bits) - 1}",
                field=name,
                value=value,
            )
    return device_type << 72 | year << 64 | id


def _check(uid: int) -> int:
    if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid <= UID_MAX:
        raise ProtocolError(
            f"device uid {uid!r} is out of range: it takes a whole number from 0 to 2**88-1",
            uid=uid,
        )
    return uid


def split_uid(uid: int) -> tuple[int, int, int]:
    """``(device_type, year, id)`` of an integer UID."""
    _check(uid)
    return uid >> 72, uid >> 64 & 0xFF, uid & 0xFFFF_FFFF_FFFF_FFFF


def pack_uid(uid: int) -> bytes:
    """The 11 wire bytes of a UID (little-endian fields)."""
    return _UID_STRUCT.pack(*split_uid(uid))


def unpack_uid(data: bytes) -> int:
    """The integer UID of its 11 wire bytes."""
    if len(data) != UID_SIZE:
        raise ProtocolError(f"a device uid takes {UID_SIZE} bytes, not {len(data)}", size=len(data))
    device_type, year, id_ = _UID_STRUCT.unpack(data)
    return device_type << 72 | year << 64 | id_


def uid_str(uid: int) -> str:
    """The decimal string form of a UID (as in MQTT topics)."""
    return str(_check(uid))


def parse_uid(text: str | int) -> int:
    """A UID from its decimal string (or an int); ProtocolError says what is accepted."""
    if isinstance(text, int) and not isinstance(text, bool):
        return _check(text)
    if isinstance(text, str):
        stripped = text.strip()
        if stripped.isascii() and stripped.isdigit():
            return _check(int(stripped))
    raise ProtocolError(
        f"device uid {text!r} is not a decimal number from 0 to 2**88-1 "
        "(device_type << 72 | year << 64 | id)",
        uid=text,
    )
