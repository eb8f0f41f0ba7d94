"""The lowcar device protocol (docs/protocol.md, Lowcar), byte for byte.

PiE's current firmware frames its messages exactly like Hibike (``frame.encode_frame``: the same
COBS framing and XOR checksum; ``StreamDecoder`` with this generation's id table), so only the
messages differ: PING / ACK / DEVICE_WRITE / DEVICE_DATA / LOG / RST, a u32 params bitmap, and a
132-byte payload limit both ways. Message ids 0x01..0x06 never collide with Hibike's 0x10..0x18
and 0xFF, which is what lets a host tell the generations apart by the first good packet.

Host-side builders check what the firmware cannot (writeable params, values in bounds) exactly as
the Hibike ones do (``messages.value_list``); device-side builders (``ack``, ``device_data``,
``log``) serve virtual devices.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from runtime.exception import ProtocolError
from runtime.protocol.decoder import StreamDecoder
from runtime.protocol.frame import MESSAGE_TYPES as HIBIKE_MESSAGE_TYPES
from runtime.protocol.frame import encode_frame
from runtime.protocol.messages import Value, _size_error, layout, value_list
from runtime.protocol.uid import Uid

if TYPE_CHECKING:
    from runtime.catalog import DeviceType

#: Largest payload (4-byte bitmap + 32 params x 4 bytes) and COBS block either way.
MAX_PAYLOAD = 132
MAX_BLOCK = 136

_U32 = struct.Struct("<I")
_ACK = struct.Struct("<BBQ")


class LowcarMessage(enum.IntEnum):
    """The message id (first raw byte) of each lowcar packet."""

    PING = 0x01
    ACK = 0x02
    DEVICE_WRITE = 0x03
    DEVICE_DATA = 0x04
    LOG = 0x05
    RST = 0x06


#: message id -> LowcarMessage; disjoint from Hibike's ids (asserted at import).
MESSAGE_TYPES: dict[int, enum.IntEnum] = {kind.value: kind for kind in LowcarMessage}
#: Both generations' ids: what a decoder speaks while a new port is being identified.
EITHER_MESSAGE_TYPES: dict[int, enum.IntEnum] = {**HIBIKE_MESSAGE_TYPES, **MESSAGE_TYPES}
assert len(EITHER_MESSAGE_TYPES) == len(HIBIKE_MESSAGE_TYPES) + len(MESSAGE_TYPES)


class Ack(NamedTuple):
    """A device's ACKNOWLEDGEMENT: who it is."""

    type: int
    year: int
    id: int

    @property
    def uid(self) -> Uid:
        return Uid.lowcar(self.type, self.year, self.id)


def decoder() -> StreamDecoder:
    """A resynchronising stream decoder of lowcar packets (Hibike ids count as bad frames)."""
    return StreamDecoder(MESSAGE_TYPES, MAX_BLOCK)


def encode(kind: int, payload: bytes = b"") -> bytes:
    """Full wire bytes of one lowcar packet; ProtocolError for an unknown id or a long payload."""
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(
            f"unknown lowcar message type {kind!r}; known types: "
            + ", ".join(f"{k.name} (0x{k.value:02x})" for k in LowcarMessage),
            message_type=kind,
        )
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(
            f"lowcar {LowcarMessage(kind).name} payload of {len(payload)} bytes is too long: "
            f"payloads take at most {MAX_PAYLOAD}",
            size=len(payload), limit=MAX_PAYLOAD,
        )
    return encode_frame(kind, payload)


_PING = encode(LowcarMessage.PING)
_RST = encode(LowcarMessage.RST)


def ping() -> bytes:
    """DEVICE_PING: the first one gets an ACK; then a keepalive every 250 ms."""
    return _PING


def rst() -> bytes:
    """RST: the receiver resets (motors off, PID defaults) and disables."""
    return _RST


def device_write(device_type: DeviceType, values: Mapping[Any, Any]) -> bytes:
    """DEVICE_WRITE of writeable, in-bounds values (by name or index), ascending index."""
    bitmap, packed = value_list(device_type, values, write=True)
    return encode(LowcarMessage.DEVICE_WRITE, _U32.pack(bitmap) + packed)


def device_data(device_type: DeviceType, values: Mapping[Any, Any]) -> bytes:
    """DEVICE_DATA with the given values (virtual devices)."""
    bitmap, packed = value_list(device_type, values, write=False)
    return encode(LowcarMessage.DEVICE_DATA, _U32.pack(bitmap) + packed)


def ack(uid: Uid | Ack) -> bytes:
    """ACKNOWLEDGEMENT: ``type u8 | year u8 | uid u64`` (virtual devices)."""
    fields: tuple[int, int, int]
    if isinstance(uid, Uid):
        if uid.generation != "lowcar":
            raise ProtocolError(f"uid {uid} is not a lowcar device's uid", uid=str(uid))
        fields = (uid.type_id, uid.year, uid.id)
    else:
        fields = (uid.type, uid.year, uid.id)
    try:
        payload = _ACK.pack(*fields)
    except struct.error as exc:
        raise ProtocolError(f"ACK fields {fields} out of range: {exc}") from None
    return encode(LowcarMessage.ACK, payload)


def log(text: str | bytes) -> bytes:
    """LOG: one NUL-terminated ASCII line (cut to fit one packet; non-ASCII replaced). Bytes
    go as they are (a virtual device playing garbage firmware), NULs replaced."""
    data = text if isinstance(text, bytes) else text.encode("ascii", "replace")
    data = data.replace(b"\x00", b"?")[: MAX_PAYLOAD - 1]
    return encode(LowcarMessage.LOG, data + b"\x00")


# -- parsers -----------------------------------------------------------------------------------


def parse_ack(payload: bytes) -> Ack:
    """The ``Ack`` of a 10-byte ACKNOWLEDGEMENT payload."""
    if len(payload) != _ACK.size:
        raise ProtocolError(
            f"ACKNOWLEDGEMENT payload has {len(payload)} bytes; it takes exactly {_ACK.size}",
            size=len(payload),
        )
    return Ack(*_ACK.unpack(payload))


def parse_values(device_type: DeviceType, payload: bytes) -> dict[str, Value]:
    """``{name: value}`` of a DEVICE_DATA/DEVICE_WRITE payload (u32 bitmap + values)."""
    if len(payload) < 4:
        raise ProtocolError(
            f"{device_type.name} value list has {len(payload)} bytes; it takes at least 4",
            size=len(payload),
        )
    bitmap = _U32.unpack_from(payload)[0]
    names, values = layout(device_type, bitmap)
    if len(payload) - 4 != values.size:
        raise _size_error(device_type, bitmap, names, values, payload, bitmap_size=4)
    return dict(zip(names, values.unpack_from(payload, 4)))  # noqa: B905 - sizes checked above


def parse_log(payload: bytes) -> str:
    """The text of a LOG payload, up to its NUL. The protocol says ASCII; UTF-8 (a superset)
    is shown as text, and bytes that are neither as ``\\xNN`` escapes (garbage stays visible
    and can never break a log line's encoding)."""
    text = payload.split(b"\x00", 1)[0]
    return text.decode("utf-8", "backslashreplace")
