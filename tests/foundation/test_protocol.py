"""Smart Device codec: the reference's worked frames byte for byte, round trips of every message
and of random catalog values, and a stream decoder that resynchronises after any garbage."""

from __future__ import annotations

import math
import struct

import pytest
from cobs.cobs import decode as cobs_decode
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime import protocol
from runtime.catalog import DeviceType, Parameter, default_catalog, integer_range
from runtime.exception import ParameterError, ProtocolError
from runtime.protocol import MessageType, Packet, StreamDecoder

CATALOG = default_catalog()


def wire(text: str) -> bytes:
    return bytes.fromhex(text)


# -- the reference's worked frames ------------------------------------------------------------

WORKED = [
    ("Ping", "00 04 02 10 02 10", lambda: protocol.ping(), MessageType.PING, b""),
    ("Disable", "00 04 02 16 02 16", lambda: protocol.disable(), MessageType.DISABLE, b""),
    (
        "HeartBeatRequest id 0",
        "00 05 03 17 01 02 16",
        lambda: protocol.heartbeat_request(0),
        MessageType.HEARTBEAT_REQUEST,
        b"\x00",
    ),
    (
        "SubscriptionRequest 0b111 40 ms",
        "00 08 04 11 04 07 02 28 02 3a",
        lambda: protocol.subscription_request(0b111, 40),
        MessageType.SUBSCRIPTION_REQUEST,
        b"\x07\x00\x28\x00",
    ),
    (
        "DeviceRead params 10 and 11",
        "00 06 03 13 02 03 0c 1d",
        lambda: protocol.device_read(1 << 10 | 1 << 11),
        MessageType.DEVICE_READ,
        b"\x00\x0c",
    ),
    (
        "DeviceWrite ServoControl servo0 0.5",
        "00 0a 04 14 06 01 01 01 01 03 3f 2c",
        lambda: protocol.device_write(CATALOG.get("ServoControl"), {"servo0": 0.5}),
        MessageType.DEVICE_WRITE,
        b"\x01\x00" + struct.pack("<f", 0.5),
    ),
    (
        "DeviceData LimitSwitch True False True",
        "00 09 04 15 05 07 02 01 03 01 17",
        lambda: protocol.device_data(
            CATALOG.get("LimitSwitch"), {"switch0": True, "switch1": False, "switch2": True}
        ),
        MessageType.DEVICE_DATA,
        b"\x07\x00\x01\x00\x01",
    ),
]


@pytest.mark.parametrize(("name", "hex_wire", "build", "kind", "payload"), WORKED)
def test_worked_frames_encode_byte_for_byte(name, hex_wire, build, kind, payload):
    assert build() == wire(hex_wire)
    assert protocol.encode_packet(kind, payload, to_device=kind != MessageType.DEVICE_DATA) == (
        wire(hex_wire)
    )


@pytest.mark.parametrize(("name", "hex_wire", "build", "kind", "payload"), WORKED)
def test_worked_frames_decode_byte_for_byte(name, hex_wire, build, kind, payload):
    decoder = StreamDecoder()
    assert decoder.feed(wire(hex_wire)) == [Packet(kind, payload)]
    assert (decoder.packets, decoder.bad_frames, decoder.skipped_bytes) == (1, 0, 0)


def test_worked_frames_parse_to_their_values():
    assert protocol.parse_subscription_request(b"\x07\x00\x28\x00") == (0b111, 40)
    assert protocol.parse_params(b"\x00\x0c") == 1 << 10 | 1 << 11
    servo = CATALOG.get("ServoControl")
    assert protocol.parse_values(servo, b"\x01\x00" + struct.pack("<f", 0.5)) == {"servo0": 0.5}
    limit = CATALOG.get("LimitSwitch")
    assert protocol.parse_values(limit, b"\x07\x00\x01\x00\x01") == {
        "switch0": True,
        "switch1": False,
        "switch2": True,
    }


def _raw(frame: bytes) -> bytes:
    """The unframed raw bytes (id, len, payload, checksum) of one wire frame."""
    assert frame[0] == 0 and frame[1] == len(frame) - 2
    return cobs_decode(frame[2:])


def test_raw_values_match_the_reference():
    example = CATALOG.get("ExampleDevice")
    raw = _raw(protocol.device_data(example, {"mizore": -1.234}))
    assert raw[4:-1] == wire("b6 f3 9d bf")
    raw = _raw(protocol.device_data(example, {"haruka": 0xDEADBEEF}))
    assert raw[4:-1] == wire("ef be ad de")
    assert _raw(protocol.heartbeat_request(255)) == wire("17 01 ff e9")
    assert protocol.parse_values(example, b"\x00\x02" + wire("b6 f3 9d bf")) == {
        "mizore": struct.unpack("<f", wire("b6 f3 9d bf"))[0]
    }


def test_checksum_is_the_xor_of_every_byte():
    assert protocol.checksum(b"") == 0
    assert protocol.checksum(wire("17 01 ff")) == 0xE9
    data = bytes(range(256)) * 2
    expected = 0
    for byte in data[:203]:
        expected ^= byte
    assert protocol.checksum(data[:203]) == expected


# -- round trips ------------------------------------------------------------------------------


def _decode_one(frame: bytes) -> Packet:
    decoder = StreamDecoder()
    packets = decoder.feed(frame)
    assert len(packets) == 1, decoder.last_error
    assert decoder.pending == b""
    return packets[0]


@given(kind=st.sampled_from(MessageType), payload=st.binary(max_size=100))
def test_any_packet_round_trips(kind, payload):
    to_device = len(payload) <= protocol.MAX_PAYLOAD_TO_DEVICE
    frame = protocol.encode_packet(kind, payload, to_device=to_device)
    assert frame[0] == 0 and b"\x00" not in frame[1:]
    assert _decode_one(frame) == Packet(kind, payload)


u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
uids = st.integers(0, protocol.UID_MAX)


@given(params=u16, delay=u16)
def test_subscription_request_round_trips(params, delay):
    packet = _decode_one(protocol.subscription_request(params, delay))
    assert packet.type is MessageType.SUBSCRIPTION_REQUEST
    assert protocol.parse_subscription_request(packet.payload) == (params, delay)
    assert protocol.parse_params(packet.payload) == params


@given(params=u16)
def test_device_read_round_trips(params):
    packet = _decode_one(protocol.device_read(params))
    assert packet.type is MessageType.DEVICE_READ
    assert protocol.parse_params(packet.payload) == params


@given(params=u16, delay=u16, uid=uids)
def test_subscription_response_round_trips(params, delay, uid):
    packet = _decode_one(protocol.subscription_response(params, delay, uid))
    assert packet.type is MessageType.SUBSCRIPTION_RESPONSE
    assert len(packet.payload) == 15
    response = protocol.parse_subscription_response(packet.payload)
    assert response == protocol.SubscriptionResponse(params, delay, uid)
    assert (response.params, response.delay_ms, response.uid) == (params, delay, uid)


@given(value=u8)
def test_one_byte_messages_round_trip(value):
    assert _decode_one(protocol.heartbeat_request(value)) == Packet(
        MessageType.HEARTBEAT_REQUEST, bytes([value])
    )
    assert _decode_one(protocol.heartbeat_response(value)) == Packet(
        MessageType.HEARTBEAT_RESPONSE, bytes([value])
    )
    assert _decode_one(protocol.error(value)) == Packet(MessageType.ERROR, bytes([value]))


def _values(param: Parameter) -> st.SearchStrategy:
    """Values a param accepts (catalog bounds and wire range)."""
    if param.type == "bool":
        return st.booleans()
    if param.type == "float":
        low = -protocol_float_max() if param.lower is None else param.lower
        high = protocol_float_max() if param.upper is None else param.upper
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    low, high = integer_range(param.type)
    if param.lower is not None:
        low = max(low, math.ceil(param.lower))
    if param.upper is not None:
        high = min(high, math.floor(param.upper))
    return st.integers(low, high)


def protocol_float_max() -> float:
    return struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]


def _float32(value):
    return struct.unpack("<f", struct.pack("<f", value))[0] if isinstance(value, float) else value


@st.composite
def device_values(draw, writeable: bool):
    """A device type and a random subset of its (writeable) params with values in bounds."""
    device = draw(st.sampled_from(list(CATALOG)))
    params = [p for p in device.params if p.writeable or not writeable]
    chosen = draw(st.lists(st.sampled_from(params), unique_by=lambda p: p.index)) if params else []
    return device, {p.name: draw(_values(p)) for p in chosen}


@settings(max_examples=300)
@given(case=device_values(writeable=False))
def test_device_data_of_every_type_round_trips(case):
    device, values = case
    packet = _decode_one(protocol.device_data(device, values))
    assert packet.type is MessageType.DEVICE_DATA
    decoded = protocol.parse_values(device, packet.payload)
    assert decoded == {name: _float32(value) for name, value in values.items()}
    assert list(decoded) == device.names(device.bitmap(values))  # ascending index order


@settings(max_examples=300)
@given(case=device_values(writeable=True))
def test_device_write_of_every_type_round_trips(case):
    device, values = case
    frame = protocol.device_write(device, values)
    packet = _decode_one(frame)
    assert packet.type is MessageType.DEVICE_WRITE
    assert protocol.parse_params(packet.payload) == device.bitmap(values)
    decoded = protocol.parse_values(device, packet.payload)
    assert decoded == {name: _float32(value) for name, value in values.items()}
    assert protocol.device_write(device, dict(reversed(values.items()))) == frame


def test_device_write_sends_values_in_ascending_index_order():
    koala = CATALOG.get("KoalaBear")
    frame = protocol.device_write(koala, {"duty_cycle_b": -1.0, "duty_cycle_a": 1.0})
    payload = _raw(frame)[2:-1]
    assert payload == b"\x03\x00" + struct.pack("<ff", 1.0, -1.0)
    assert protocol.device_write(koala, {1: -1.0, 0: 1.0}) == frame  # by index too


# -- write checks -----------------------------------------------------------------------------


def test_device_write_refuses_a_param_that_is_not_writeable():
    with pytest.raises(ParameterError) as info:
        protocol.device_write(CATALOG.get("YogiBear"), {"enc_vel": 1.0})
    message = info.value.message
    assert "YogiBear.enc_vel is not writeable" in message
    assert "duty_cycle" in message  # lists what is writeable
    with pytest.raises(ParameterError, match=r"LimitSwitch.switch0 is not writeable.*none"):
        protocol.device_write(CATALOG.get("LimitSwitch"), {"switch0": True})


def test_device_write_refuses_out_of_bounds_wrong_type_and_unknown_params():
    servo = CATALOG.get("ServoControl")
    with pytest.raises(ParameterError, match=r"ServoControl.servo0 = 1.5 is out of bounds"):
        protocol.device_write(servo, {"servo0": 1.5})
    with pytest.raises(ParameterError, match=r"ServoControl.servo1 takes .* not str"):
        protocol.device_write(servo, {"servo1": "fast"})
    with pytest.raises(ParameterError, match="ServoControl has no param 'servo9'"):
        protocol.device_write(servo, {"servo9": 0.0})
    example = CATALOG.get("ExampleDevice")
    with pytest.raises(ParameterError, match="hazuki = 256 is out of bounds"):
        protocol.device_write(example, {"hazuki": 256})


def test_device_data_refuses_values_that_do_not_fit_their_wire_type():
    example = CATALOG.get("ExampleDevice")
    with pytest.raises(ProtocolError, match=r"ExampleDevice values .* do not fit"):
        protocol.device_data(example, {"hazuki": 300})
    with pytest.raises(ProtocolError, match="do not fit"):
        protocol.device_data(example, {"noboru": 1e39})


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: protocol.subscription_request(0x10000, 40), "params = 65536 is out of range"),
        (lambda: protocol.subscription_request(1, 70000), "delay_ms = 70000 is out of range"),
        (lambda: protocol.subscription_request(1, -1), "delay_ms = -1 is out of range"),
        (lambda: protocol.device_read(True), "params = True is out of range"),
        (lambda: protocol.heartbeat_request(256), "heartbeat id = 256 is out of range"),
        (lambda: protocol.heartbeat_response(-1), "flow = -1 is out of range"),
        (lambda: protocol.error(1000), "error code = 1000 is out of range"),
        (lambda: protocol.subscription_response(0, 0, 1 << 88), "uid .* is out of range"),
    ],
)
def test_builders_refuse_fields_out_of_range(build, match):
    with pytest.raises(ProtocolError, match=match):
        build()


# -- size limits ------------------------------------------------------------------------------


def test_payload_limits_on_encode():
    assert len(protocol.encode_packet(MessageType.DEVICE_WRITE, bytes(99))) == 99 + 3 + 1 + 2
    with pytest.raises(ProtocolError) as info:
        protocol.encode_packet(MessageType.DEVICE_WRITE, bytes(100))
    assert "DEVICE_WRITE payload of 100 bytes is too long" in info.value.message
    assert "at most 99 bytes" in info.value.message
    assert info.value.context["limit"] == 99
    assert len(protocol.encode_packet(MessageType.DEVICE_DATA, bytes(100), to_device=False)) == 106
    with pytest.raises(ProtocolError, match=r"DEVICE_DATA payload of 101 bytes.*at most 100"):
        protocol.encode_packet(MessageType.DEVICE_DATA, bytes(101), to_device=False)


def test_encode_refuses_unknown_message_types():
    with pytest.raises(ProtocolError, match=r"unknown Smart Device message type 66.*PING"):
        protocol.encode_packet(0x42)
    assert protocol.encode_packet(0x10) == protocol.ping()


# -- parsers ----------------------------------------------------------------------------------


def test_parse_values_refuses_a_wrong_length_or_unknown_bits():
    limit = CATALOG.get("LimitSwitch")
    with pytest.raises(ProtocolError, match=r"LimitSwitch value list .* takes 5 bytes, not 4"):
        protocol.parse_values(limit, b"\x07\x00\x01\x00")
    with pytest.raises(ProtocolError, match="bitmap 0x0008 has bits beyond its 3 params"):
        protocol.parse_values(limit, b"\x08\x00\x01")
    with pytest.raises(ProtocolError, match="has 1 bytes; it takes at least 2"):
        protocol.parse_values(limit, b"\x07")
    assert protocol.parse_values(limit, b"\x00\x00") == {}


def test_parsers_refuse_wrong_lengths():
    with pytest.raises(ProtocolError, match="SubscriptionResponse payload has 14 bytes"):
        protocol.parse_subscription_response(bytes(14))
    with pytest.raises(ProtocolError, match="SubscriptionRequest payload has 3 bytes"):
        protocol.parse_subscription_request(bytes(3))
    with pytest.raises(ProtocolError, match="params bitmap payload has 1 bytes"):
        protocol.parse_params(b"\x01")


def test_value_layouts_of_separate_catalogs_do_not_mix():
    one = DeviceType(id=1, name="One", params=[{"name": "a", "type": "uint8", "readable": True}])
    two = DeviceType(id=1, name="One", params=[{"name": "a", "type": "float", "readable": True}])
    assert protocol.parse_values(one, b"\x01\x00\x07") == {"a": 7}
    assert protocol.parse_values(two, b"\x01\x00" + struct.pack("<f", 2.5)) == {"a": 2.5}


# -- UIDs -------------------------------------------------------------------------------------


@given(device_type=u16, year=u8, id_=st.integers(0, (1 << 64) - 1))
def test_uid_forms_round_trip(device_type, year, id_):
    uid = protocol.make_uid(device_type, year, id_)
    assert uid == device_type << 72 | year << 64 | id_
    assert protocol.split_uid(uid) == (device_type, year, id_)
    packed = protocol.pack_uid(uid)
    assert packed == struct.pack("<HBQ", device_type, year, id_)
    assert protocol.unpack_uid(packed) == uid
    assert protocol.uid_str(uid) == str(uid)
    assert protocol.parse_uid(protocol.uid_str(uid)) == uid
    assert protocol.parse_uid(uid) == uid


def test_uid_example_and_refusals():
    uid = protocol.make_uid(13, 1, 0x0123456789ABCDEF)
    assert protocol.pack_uid(uid) == wire("0d 00 01 ef cd ab 89 67 45 23 01")
    assert protocol.parse_uid(f" {uid}\n") == uid
    for bad in ("abc", "-1", "1.5", "", "0x10", str(1 << 88), None, True, 1.0):
        with pytest.raises(ProtocolError, match="uid"):
            protocol.parse_uid(bad)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="uid field year = 256 is out of range"):
        protocol.make_uid(1, 256, 0)
    with pytest.raises(ProtocolError, match="uid field id = -1"):
        protocol.make_uid(1, 0, -1)
    with pytest.raises(ProtocolError, match="takes 11 bytes, not 10"):
        protocol.unpack_uid(bytes(10))
    with pytest.raises(ProtocolError, match="out of range"):
        protocol.split_uid(-1)


# -- stream decoder ---------------------------------------------------------------------------


def test_a_packet_is_returned_on_its_last_byte_not_on_the_next_start_marker():
    decoder = StreamDecoder()
    frame = protocol.device_data(CATALOG.get("LimitSwitch"), {"switch1": True})
    for byte in frame[:-1]:
        assert decoder.feed(bytes([byte])) == []
    assert decoder.pending == frame[:-1]
    assert decoder.feed(frame[-1:]) == [Packet(MessageType.DEVICE_DATA, b"\x02\x00\x01")]
    assert decoder.pending == b""


def test_feed_accepts_bytearray_and_memoryview():
    decoder = StreamDecoder()
    assert decoder.feed(bytearray(protocol.ping())) == [Packet(MessageType.PING, b"")]
    assert decoder.feed(memoryview(protocol.ping())) == [Packet(MessageType.PING, b"")]
    assert decoder.feed(b"") == []


def _frame_with_raw(raw: bytes) -> bytes:
    from cobs.cobs import encode

    block = encode(raw)
    return b"\x00" + bytes([len(block)]) + block


BAD_FRAMES = [
    ("bad checksum", _frame_with_raw(wire("10 00 11")), "bad checksum: 0x11, expected 0x10"),
    ("length below 4", wire("00 03 02 10 02"), "length byte 3 is below the minimum of 4"),
    ("no length byte", wire("00"), "start marker 0x00 followed by another 0x00"),
    ("cut short", wire("00 09 04 15 05 07"), "packet cut short: length byte 9"),
    ("bad COBS", wire("00 04 05 11 22 33"), "bad COBS block"),
    ("payload_len too big", _frame_with_raw(wire("10 01 11")), "payload_len 1 does not match"),
    ("unknown message id", _frame_with_raw(wire("42 00 42")), "unknown message id 0x42"),
]


@pytest.mark.parametrize(("name", "bad", "reason"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_a_bad_frame_is_counted_and_the_next_packet_still_decodes(name, bad, reason):
    decoder = StreamDecoder()
    good = protocol.heartbeat_request(0)
    assert decoder.feed(bad + good) == [Packet(MessageType.HEARTBEAT_REQUEST, b"\x00")]
    assert decoder.bad_frames == 1
    assert reason in decoder.last_error
    assert decoder.skipped_bytes == len(bad)
    assert decoder.packets == 1


def test_garbage_after_a_packet_is_skipped_up_to_the_next_start_marker():
    decoder = StreamDecoder()
    stream = b"\x01\x02" + protocol.ping() + b"\xff" * 5 + protocol.disable() + b"\x07"
    assert decoder.feed(stream) == [Packet(MessageType.PING, b""), Packet(MessageType.DISABLE, b"")]
    assert (decoder.bad_frames, decoder.skipped_bytes, decoder.pending) == (0, 8, b"")


frames = st.builds(
    lambda kind, payload: protocol.encode_packet(kind, payload, to_device=False),
    st.sampled_from(MessageType),
    st.binary(max_size=100),
)
chunk_sizes = st.lists(st.one_of(st.integers(1, 80), st.integers(1, 65536)), min_size=1)


def _chunks(data: bytes, sizes: list[int]):
    position, index = 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        yield data[position : position + size]
        position += size
        index += 1


@settings(max_examples=200)
@given(
    items=st.lists(st.tuples(st.binary().map(lambda g: g.replace(b"\x00", b"")), frames)),
    tail=st.binary().map(lambda g: g.replace(b"\x00", b"")),
    sizes=chunk_sizes,
)
def test_garbage_without_start_markers_loses_no_packet(items, tail, sizes):
    """Garbage free of 0x00 between packets, any chunking: every packet, exactly, nothing bad."""
    stream = b"".join(garbage + frame for garbage, frame in items) + tail
    decoder = StreamDecoder()
    decoded = [packet for chunk in _chunks(stream, sizes) for packet in decoder.feed(chunk)]
    assert decoded == [_decode_one(frame) for _, frame in items]
    assert decoder.bad_frames == 0
    assert decoder.skipped_bytes == sum(len(g) for g, _ in items) + len(tail)
    assert decoder.pending == b""
    assert decoder.packets == len(items)


def _is_subsequence(wanted: list, got: list) -> bool:
    remaining = iter(got)
    return all(any(item == other for other in remaining) for item in wanted)


@settings(max_examples=200)
@given(
    items=st.lists(st.tuples(st.binary(max_size=300), frames)),
    tail=st.binary(max_size=300),
    sizes=chunk_sizes,
)
def test_any_garbage_between_packets_never_raises_and_keeps_every_packet(items, tail, sizes):
    """Garbage with 0x00s may add bad frames (or, by chance, valid packets) but every packet
    sent stays intact, and every byte is accounted for."""
    stream = b"".join(garbage + frame for garbage, frame in items) + tail
    decoder = StreamDecoder()
    decoded = [packet for chunk in _chunks(stream, sizes) for packet in decoder.feed(chunk)]
    assert _is_subsequence([_decode_one(frame) for _, frame in items], decoded)
    good_bytes = sum(
        len(protocol.encode_packet(p.type, p.payload, to_device=False)) for p in decoded
    )
    assert good_bytes + decoder.skipped_bytes + len(decoder.pending) == len(stream)
    assert decoder.packets == len(decoded)


@given(stream=st.binary(max_size=2000), sizes=chunk_sizes)
def test_random_bytes_never_raise(stream, sizes):
    decoder = StreamDecoder()
    decoded = [packet for chunk in _chunks(stream, sizes) for packet in decoder.feed(chunk)]
    good_bytes = sum(
        len(protocol.encode_packet(p.type, p.payload, to_device=False)) for p in decoded
    )
    # every byte is accounted for once, and a bad frame needs a 0x00 start marker of its own
    assert good_bytes + decoder.skipped_bytes + len(decoder.pending) == len(stream)
    assert decoder.packets == len(decoded)
    assert decoder.bad_frames + decoder.packets <= stream.count(0)


def test_corrupted_bytes_are_counted_as_bad_frames():
    frame = protocol.device_data(CATALOG.get("Potentiometer"), {"pot0": 0.3, "pot2": -3.3})
    corrupted = bytearray(frame)
    corrupted[frame.index(struct.pack("<f", 0.3))] ^= 0x40  # data, not COBS: checksum fails
    decoder = StreamDecoder()
    assert decoder.feed(bytes(corrupted) + frame) == [_decode_one(frame)]
    assert decoder.bad_frames == 1
    assert decoder.last_error.startswith("bad checksum")
    decoder.feed(b"\x00\x07\x01")
    assert decoder.pending == b"\x00\x07\x01"
    decoder.reset()
    assert decoder.pending == b""
    assert decoder.feed(frame) == [_decode_one(frame)]
