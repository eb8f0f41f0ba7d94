"""PiE's client protocol on the wire: the identity byte and ``type u8 | length u16 LE | body``.

Facts from docs/gateway.md ("Transport"): after connecting, a client sends one identity byte
(0 Shepherd, 1 Dawn); then every message, both ways, is a one-byte type, a little-endian 16-bit
length and that many bytes of protobuf. Old Dawn versions write the high length byte as 0, so
a length is never trusted past the bytes that arrived: the reader waits for them (with a
deadline, so a client that stalls mid-frame, a slow-loris, is dropped).

Errors are :class:`FrameError` (a ``MessageError``): the caller closes the connection and logs
the sentence, the service carries on.
"""

from __future__ import annotations

import asyncio
import enum
import struct

from google.protobuf.message import DecodeError, Message
from runtime.exception import MessageError
from runtime.service.gateway.proto import pie_client_pb2 as pb

HEADER = struct.Struct("<BH")


class Identity(enum.IntEnum):
    """The first byte a client sends."""

    SHEPHERD = 0
    DAWN = 1


class MessageType(enum.IntEnum):
    """Message types of the client protocol (docs/gateway.md, "Message types")."""

    RUN_MODE = 0
    START_POS = 1
    LOG = 2
    DEVICE_DATA = 3
    GAME_STATE = 4
    INPUTS = 5
    TIME_STAMPS = 6
    RUNTIME_STATUS = 7


#: What a client may send the robot, with the largest body accepted (bytes). A real INPUTS
#: message of 4 gamepads and a keyboard is under 150 bytes; anything far larger is an attack or
#: a broken client, not input.
CLIENT_MESSAGES: dict[MessageType, tuple[type[Message], int]] = {
    MessageType.RUN_MODE: (pb.RunMode, 64),
    MessageType.START_POS: (pb.StartPos, 64),
    MessageType.GAME_STATE: (pb.GameState, 64),
    MessageType.INPUTS: (pb.UserInputs, 2048),
    MessageType.TIME_STAMPS: (pb.TimeStamps, 64),
}


class FrameError(MessageError):
    """A client sent something that is not a valid frame: the connection is closed."""


def encode_frame(kind: MessageType, message: Message) -> bytes:
    """The wire bytes of one message; ``FrameError`` if its body exceeds 65535 bytes."""
    body = message.SerializeToString()
    if len(body) > 0xFFFF:
        raise FrameError(f"{kind.name} message of {len(body)} bytes does not fit a frame",
                         size=len(body))
    return HEADER.pack(kind, len(body)) + body


async def read_identity(reader: asyncio.StreamReader, timeout: float) -> Identity:
    """The identity byte, within ``timeout`` seconds of connecting."""
    try:
        async with asyncio.timeout(timeout):
            data = await reader.readexactly(1)
    except TimeoutError:
        raise FrameError(f"no identity byte within {timeout:g} s") from None
    except asyncio.IncompleteReadError:
        raise FrameError("connection closed before the identity byte") from None
    try:
        return Identity(data[0])
    except ValueError:
        raise FrameError(f"unknown identity byte {data[0]} (0 Shepherd, 1 Dawn)",
                         identity=data[0]) from None


async def read_message(reader: asyncio.StreamReader, frame_timeout: float,
                       identity: Identity) -> tuple[MessageType, Message] | None:
    """The next message from a client, or None at a clean end of stream.

    Waits as long as needed for a frame to start; once its first byte is in, the rest must
    arrive within ``frame_timeout`` seconds. Raises ``FrameError`` for an unknown or
    robot-bound type, an oversized or truncated frame, or a body that is not the type's
    protobuf. A type-2 message from Shepherd is GAME_STATE (some Shepherd versions send it so).
    """
    first = await reader.read(1)
    if not first:
        return None
    try:
        async with asyncio.timeout(frame_timeout):
            rest = await reader.readexactly(HEADER.size - 1)
            kind_byte, length = HEADER.unpack(first + rest)
            kind = _client_type(kind_byte, identity)
            model, limit = CLIENT_MESSAGES[kind]
            if length > limit:
                raise FrameError(f"{kind.name} message of {length} bytes is over the "
                                 f"{limit}-byte limit", type=kind.name, length=length)
            body = await reader.readexactly(length)
    except TimeoutError:
        raise FrameError(f"frame not completed within {frame_timeout:g} s") from None
    except asyncio.IncompleteReadError as exc:
        raise FrameError(f"connection closed in the middle of a frame "
                         f"({len(exc.partial)} bytes of it)") from None
    message = model()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise FrameError(f"{kind.name} body is not valid protobuf: {exc}",
                         type=kind.name) from None
    return kind, message


def _client_type(kind_byte: int, identity: Identity) -> MessageType:
    if identity is Identity.SHEPHERD and kind_byte == MessageType.LOG:
        return MessageType.GAME_STATE
    try:
        kind = MessageType(kind_byte)
    except ValueError:
        raise FrameError(f"unknown message type {kind_byte}", type=kind_byte) from None
    if kind not in CLIENT_MESSAGES:
        raise FrameError(f"message type {kind.name} goes from the robot to clients, "
                         "not the other way", type=kind.name)
    return kind
