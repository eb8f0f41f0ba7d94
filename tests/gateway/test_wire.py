"""The client protocol's framing: identity byte, header, limits, and what closes a link."""

from __future__ import annotations

import asyncio

import pytest
from runtime.service.gateway.proto import pie_client_pb2 as pb
from runtime.service.gateway.wire import (
    FrameError,
    Identity,
    MessageType,
    encode_frame,
    read_identity,
    read_message,
)


def stream(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def test_encode_frame_is_type_length_le_then_protobuf() -> None:
    body = pb.RunMode(mode=pb.TELEOP).SerializeToString()
    assert encode_frame(MessageType.RUN_MODE, pb.RunMode(mode=pb.TELEOP)) == (
        bytes([0, len(body), 0]) + body)
    assert body == b"\x08\x02"


async def test_a_message_round_trips() -> None:
    frame = encode_frame(MessageType.TIME_STAMPS, pb.TimeStamps(dawn_timestamp=123456789))
    kind, message = await read_message(stream(frame), 1.0, Identity.DAWN)  # type: ignore[misc]
    assert kind is MessageType.TIME_STAMPS
    assert message.dawn_timestamp == 123456789


async def test_identity_bytes() -> None:
    assert await read_identity(stream(b"\x00"), 1.0) is Identity.SHEPHERD
    assert await read_identity(stream(b"\x01"), 1.0) is Identity.DAWN
    with pytest.raises(FrameError, match="unknown identity byte 7"):
        await read_identity(stream(b"\x07"), 1.0)
    with pytest.raises(FrameError, match="closed before the identity"):
        await read_identity(stream(b""), 1.0)


async def test_no_identity_within_the_limit() -> None:
    with pytest.raises(FrameError, match=r"no identity byte within 0\.05 s"):
        await read_identity(stream(b"", eof=False), 0.05)


async def test_clean_end_of_stream_between_frames_is_none() -> None:
    assert await read_message(stream(b""), 1.0, Identity.DAWN) is None


@pytest.mark.parametrize(("data", "problem"), [
    (bytes([9, 0, 0]), "unknown message type 9"),
    (bytes([MessageType.DEVICE_DATA, 0, 0]), "goes from the robot to clients"),
    (bytes([MessageType.LOG, 0, 0]), "goes from the robot to clients"),
    (bytes([MessageType.INPUTS, 0xFF, 0xFF]), "over the 2048-byte limit"),
    (bytes([MessageType.RUN_MODE, 65, 0]) + b"x" * 65, "over the 64-byte limit"),
    (bytes([MessageType.RUN_MODE, 4, 0]) + b"\x08", "closed in the middle of a frame"),
    (bytes([MessageType.RUN_MODE]), "closed in the middle of a frame"),
    (bytes([MessageType.RUN_MODE, 2, 0]) + b"\xff\xff", "not valid protobuf"),
])
async def test_bad_frames_are_refused_with_a_reason(data: bytes, problem: str) -> None:
    with pytest.raises(FrameError, match=problem):
        await read_message(stream(data), 1.0, Identity.DAWN)


async def test_a_stalled_frame_times_out() -> None:
    with pytest.raises(FrameError, match=r"not completed within 0\.05 s"):
        await read_message(stream(bytes([MessageType.RUN_MODE, 2]), eof=False), 0.05,
                           Identity.DAWN)


async def test_shepherd_type_2_is_game_state() -> None:
    body = pb.GameState(state=3).SerializeToString()  # type: ignore[arg-type]
    data = bytes([MessageType.LOG, len(body), 0]) + body
    kind, message = await read_message(stream(data), 1.0, Identity.SHEPHERD)  # type: ignore[misc]
    assert kind is MessageType.GAME_STATE
    assert message.state == 3
