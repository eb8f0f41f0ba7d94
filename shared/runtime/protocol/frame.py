"""Smart Device packet framing: message ids, the checksum, COBS and the wire layout.

Wire form of every packet (reference/smart-device-protocol.md)::

    0x00 | L (u8) | COBS(raw)        raw = message_id | payload_len | payload | checksum

The 0x00 *starts* a packet; nothing ends it. COBS removes every 0x00 from the block, so a 0x00
on the wire is always a start marker: that is what lets a receiver resynchronise after garbage.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cobs.cobs import encode as cobs_encode

from runtime.exception import ProtocolError

#: Firmware buffers are small: payload limits (bytes) towards and from a device.
MAX_PAYLOAD_TO_DEVICE = 99
MAX_PAYLOAD_FROM_DEVICE = 100


class MessageType(enum.IntEnum):
    """The message id (first raw byte) of each Smart Device packet."""

    PING = 0x10
    SUBSCRIPTION_REQUEST = 0x11
    SUBSCRIPTION_RESPONSE = 0x12
    DEVICE_READ = 0x13
    DEVICE_WRITE = 0x14
    DEVICE_DATA = 0x15
    DISABLE = 0x16
    HEARTBEAT_REQUEST = 0x17
    HEARTBEAT_RESPONSE = 0x18
    ERROR = 0xFF


#: message id -> MessageType, a plain dict because it is faster than ``MessageType(id)``.
MESSAGE_TYPES: dict[int, MessageType] = {kind.value: kind for kind in MessageType}


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded packet: its type and its payload (without id, length and checksum)."""

    type: enum.IntEnum  #: a MessageType (Hibike) or a LowcarMessage (runtime.protocol.lowcar)
    payload: bytes


def _fold_shifts(size: int) -> tuple[int, ...]:
    """Bit shifts that XOR-fold ``size`` little-endian bytes of an int into its lowest byte."""
    width = 1 << max(size - 1, 0).bit_length()
    shifts = []
    while width > 1:
        width //= 2
        shifts.append(width * 8)
    return tuple(shifts)


# One big-int fold per halving is several times faster than XOR-ing byte by byte in Python.
_FOLDS = tuple(_fold_shifts(size) for size in range(512))


def checksum(data: bytes) -> int:
    """XOR of every byte of ``data`` (0 for a raw packet whose checksum byte is included)."""
    value = int.from_bytes(data, "little")
    folds = _FOLDS[len(data)] if len(data) < len(_FOLDS) else _fold_shifts(len(data))
    for shift in folds:
        value ^= value >> shift
    return value & 0xFF


def message_type(kind: int) -> MessageType:
    """The MessageType of an id, or ProtocolError listing the known ones."""
    found = MESSAGE_TYPES.get(kind) if isinstance(kind, int) else None
    if found is None:
        raise ProtocolError(
            f"unknown Smart Device message type {kind!r}; known types: "
            + ", ".join(f"{k.name} (0x{k.value:02x})" for k in MessageType),
            message_type=kind,
        )
    return found


def encode_packet(kind: int, payload: bytes = b"", *, to_device: bool = True) -> bytes:
    """Full wire bytes of one packet: ``0x00 | L | COBS(id | len | payload | checksum)``.

    ``to_device`` selects the payload limit: 99 bytes towards a device, 100 from one.
    """
    kind = message_type(kind)
    limit = MAX_PAYLOAD_TO_DEVICE if to_device else MAX_PAYLOAD_FROM_DEVICE
    if len(payload) > limit:
        direction = "to" if to_device else "from"
        raise ProtocolError(
            f"{kind.name} payload of {len(payload)} bytes is too long: payloads {direction} a "
            f"Smart Device take at most {limit} bytes",
            message=kind.name,
            size=len(payload),
            limit=limit,
        )
    return encode_frame(kind, payload)


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    """Wire bytes of one frame of either generation (ids and limits checked by the caller)."""
    raw = bytes((kind, len(payload))) + bytes(payload)
    block = cobs_encode(raw + bytes((checksum(raw),)))
    return b"\x00" + bytes((len(block),)) + block
