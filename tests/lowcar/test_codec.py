"""Lowcar codec: the reference's worked frames byte for byte both ways, round trips of every
message and of random catalog values, and a shared stream decoder that resynchronises."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime import protocol
from runtime.catalog import Parameter, default_catalog
from runtime.exception import ParameterError, ProtocolError
from runtime.protocol import MessageType, Packet, lowcar
from runtime.protocol.lowcar import Ack, LowcarMessage
from runtime.protocol.uid import Uid

CATALOG = default_catalog()
KOALA = CATALOG.get("KoalaBear", "lowcar")
SERVO = CATALOG.get("ServoControl", "lowcar")
SWITCH = CATALOG.get("LimitSwitch", "lowcar")
LOWCAR_TYPES = [d for d in CATALOG if d.generation == "lowcar"]


def wire(text: str) -> bytes:
    return bytes.fromhex(text)


WORKED = [
    ("DEVICE_PING", "00 04 02 01 02 01", lowcar.ping, LowcarMessage.PING, b""),
    ("RST", "00 04 02 06 02 06", lowcar.rst, LowcarMessage.RST, b""),
    (
        "ACK type=1 year=0 uid=0x0123456789ABCDEF",
        "00 0E 04 02 0A 01 0A EF CD AB 89 67 45 23 01 09",
        lambda: lowcar.ack(Ack(1, 0, 0x0123456789ABCDEF)),
        LowcarMessage.ACK,
        bytes([1, 0]) + (0x0123456789ABCDEF).to_bytes(8, "little"),
    ),
    (
        "DEVICE_WRITE KoalaBear velocity_a=0.5 enc_a=-5 invert_b=1",
        "00 11 05 03 0D 81 04 01 01 01 01 08 3F FB FF FF FF 01 B1",
        lambda: lowcar.device_write(KOALA, {"velocity_a": 0.5, "enc_a": -5, "invert_b": True}),
        LowcarMessage.DEVICE_WRITE,
        struct.pack("<Ifi?", 0x481, 0.5, -5, True),
    ),
    (
        "DEVICE_WRITE ServoControl servo0=-1.0",
        "00 0C 04 03 08 01 01 01 01 01 04 80 BF 35",
        lambda: lowcar.device_write(SERVO, {"servo0": -1.0}),
        LowcarMessage.DEVICE_WRITE,
        struct.pack("<If", 1, -1.0),
    ),
    (
        "DEVICE_DATA LimitSwitch 1,0,1",
        "00 0B 04 04 07 07 01 01 02 01 03 01 04",
        lambda: lowcar.device_data(SWITCH, {"switch0": True, "switch1": False, "switch2": True}),
        LowcarMessage.DEVICE_DATA,
        struct.pack("<I???", 7, True, False, True),
    ),
    ("LOG hi", "00 07 05 05 03 68 69 02 07", lambda: lowcar.log("hi"), LowcarMessage.LOG,
     b"hi\x00"),
]


@pytest.mark.parametrize(("name", "hex_", "build", "kind", "payload"), WORKED,
                         ids=[w[0] for w in WORKED])
def test_worked_frames_encode_byte_exact(name, hex_, build, kind, payload):
    assert build() == wire(hex_)


@pytest.mark.parametrize(("name", "hex_", "build", "kind", "payload"), WORKED,
                         ids=[w[0] for w in WORKED])
def test_worked_frames_decode_byte_exact(name, hex_, build, kind, payload):
    decoder = lowcar.decoder()
    assert decoder.feed(wire(hex_)) == [Packet(kind, payload)]
    assert decoder.bad_frames == 0 and decoder.pending == b""


def test_worked_frames_parse_to_their_meaning():
    ack = lowcar.parse_ack(lowcar.decoder().feed(wire(WORKED[2][1]))[0].payload)
    assert ack == Ack(1, 0, 0x0123456789ABCDEF)
    assert ack.uid == Uid.lowcar(1, 0, 0x0123456789ABCDEF)
    assert CATALOG.for_uid(ack.uid) is SWITCH
    write = lowcar.decoder().feed(wire(WORKED[3][1]))[0]
    assert lowcar.parse_values(KOALA, write.payload) == {
        "velocity_a": 0.5, "enc_a": -5, "invert_b": True}
    data = lowcar.decoder().feed(wire(WORKED[5][1]))[0]
    assert lowcar.parse_values(SWITCH, data.payload) == {
        "switch0": True, "switch1": False, "switch2": True}
    assert lowcar.parse_log(b"hi\x00") == "hi"


def _values(param: Parameter) -> st.SearchStrategy:
    if param.type == "bool":
        return st.booleans()
    if param.type == "float":
        top = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
        low = -top if param.lower is None else param.lower
        high = top if param.upper is None else param.upper
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    low, high = -(1 << 31), (1 << 31) - 1
    if param.lower is not None:
        low = max(low, math.ceil(param.lower))
    if param.upper is not None:
        high = min(high, math.floor(param.upper))
    return st.integers(low, high)


def _float32(value):
    return struct.unpack("<f", struct.pack("<f", value))[0] if isinstance(value, float) else value


@st.composite
def lowcar_values(draw, writeable: bool):
    device = draw(st.sampled_from(LOWCAR_TYPES))
    params = [p for p in device.params if p.writeable or not writeable]
    chosen = draw(st.lists(st.sampled_from(params), unique_by=lambda p: p.index)) if params else []
    return device, {p.name: draw(_values(p)) for p in chosen}


@settings(max_examples=300)
@given(case=lowcar_values(writeable=False))
def test_device_data_of_every_lowcar_type_round_trips(case):
    device, values = case
    (packet,) = lowcar.decoder().feed(lowcar.device_data(device, values))
    assert packet.type is LowcarMessage.DEVICE_DATA
    decoded = lowcar.parse_values(device, packet.payload)
    assert decoded == {name: _float32(value) for name, value in values.items()}
    assert list(decoded) == device.names(device.bitmap(values))


@settings(max_examples=300)
@given(case=lowcar_values(writeable=True))
def test_device_write_of_every_lowcar_type_round_trips(case):
    device, values = case
    (packet,) = lowcar.decoder().feed(lowcar.device_write(device, values))
    assert packet.type is LowcarMessage.DEVICE_WRITE
    assert lowcar.parse_values(device, packet.payload) == {
        name: _float32(value) for name, value in values.items()}


@given(type_=st.integers(0, 255), year=st.integers(0, 255), id_=st.integers(0, (1 << 64) - 1))
def test_ack_round_trips_through_the_one_uid(type_, year, id_):
    uid = Uid.lowcar(type_, year, id_)
    (packet,) = lowcar.decoder().feed(lowcar.ack(uid))
    ack = lowcar.parse_ack(packet.payload)
    assert ack == (type_, year, id_) and ack.uid == uid
    assert uid.generation == "lowcar" and uid.type_id == type_ and Uid.parse(str(uid)) == uid


@given(text=st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=131))
def test_log_lines_round_trip(text):
    (packet,) = lowcar.decoder().feed(lowcar.log(text))
    assert lowcar.parse_log(packet.payload) == text


@given(chunks=st.lists(st.binary(max_size=40), max_size=8), cut=st.integers(0, 60))
def test_the_decoder_resynchronises_after_garbage(chunks, cut):
    frames = [lowcar.ping(), lowcar.device_data(SWITCH, {"switch1": True}), lowcar.log("ok")]
    stream = b"".join(chunk + frame for chunk, frame in zip(chunks + [b""] * 3, frames * 3,
                                                              strict=False))
    stream += b"".join(frames)
    decoder = lowcar.decoder()
    got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
    # Garbage may hold a valid-looking frame by chance; the frames sent after it always arrive.
    tail = [packet.type for packet in got[-3:]]
    assert tail == [LowcarMessage.PING, LowcarMessage.DEVICE_DATA, LowcarMessage.LOG]


def test_lowcar_and_hibike_ids_never_collide_and_each_decoder_refuses_the_other():
    assert not set(lowcar.MESSAGE_TYPES) & {k.value for k in MessageType}
    hibike_frame = protocol.ping()
    decoder = lowcar.decoder()
    assert decoder.feed(hibike_frame + lowcar.ping()) == [Packet(LowcarMessage.PING, b"")]
    assert decoder.bad_frames == 1 and "unknown message id 0x10" in decoder.last_error
    hibike = protocol.StreamDecoder()
    assert hibike.feed(lowcar.ping() + hibike_frame) == [Packet(MessageType.PING, b"")]
    assert hibike.bad_frames == 1


def test_blocks_longer_than_136_are_refused_at_once():
    decoder = lowcar.decoder()
    long_block = b"\x00\x89" + b"\x01" * 20  # L = 137: not waited for
    assert decoder.feed(long_block + lowcar.ping()) == [Packet(LowcarMessage.PING, b"")]
    assert decoder.bad_frames == 1 and "above the maximum of 136" in decoder.last_error


def test_builders_refuse_what_the_firmware_would_misread():
    with pytest.raises(ParameterError, match=r"velocity_a = 1\.5 is out of bounds"):
        lowcar.device_write(KOALA, {"velocity_a": 1.5})
    with pytest.raises(ParameterError, match="not writeable"):
        lowcar.device_write(SWITCH, {"switch0": True})
    with pytest.raises(ProtocolError, match="not a lowcar device"):
        lowcar.ack(Uid.hibike(13, 1, 5))
    with pytest.raises(ProtocolError, match="takes exactly 10"):
        lowcar.parse_ack(b"\x01" * 9)
    with pytest.raises(ProtocolError, match="takes 8 bytes, not 6"):
        lowcar.parse_values(SERVO, struct.pack("<IH", 1, 0))
    with pytest.raises(ProtocolError, match="too long"):
        lowcar.encode(LowcarMessage.LOG, b"x" * 133)
    with pytest.raises(ProtocolError, match="unknown lowcar message type"):
        lowcar.encode(0x10)
