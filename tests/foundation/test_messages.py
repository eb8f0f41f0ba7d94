"""Payload models: CBOR round trips, and rejections that say which field and what is allowed."""

import math

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from runtime.exception import MessageError
from runtime.messages import (
    DeviceData,
    DeviceInfo,
    GamepadInput,
    KeyboardInput,
    LogRecord,
    Match,
    ParamInfo,
    RPCErrorInfo,
    RPCReply,
    RPCRequest,
    ServiceStatus,
    SubscriptionInfo,
    decode,
    encode,
    loads,
)

EXAMPLES = [
    ServiceStatus(state="online", version="0.1.0", pid=1234, started=1700000000.5),
    DeviceInfo(
        uid="1208925819614629174706177",
        type="KoalaBear",
        type_id=19,
        port="/dev/ttyACM0",
        params=[
            ParamInfo(name="duty_cycle_a", type="float", readable=True, writeable=True,
                      lower=-1.0, upper=1.0),
            ParamInfo(name="enc_a", type="int32", readable=True, writeable=True),
        ],
        subscription=SubscriptionInfo(params=["duty_cycle_a"], interval_ms=40),
    ),
    DeviceData(ts=1.5, params={"switch0": True, "enc_a": -7, "duty_cycle_a": 0.25}),
    GamepadInput(buttons=(1 << 17) - 1, axes=[-1.0, 0.0, 0.5, 1.0], ts=2.0),
    KeyboardInput(keys=(1 << 64) - 1, ts=3.0),
    Match(mode="teleop", alliance="blue", start_pos="left", since=4.0),
    Match(mode="idle", since=0.0),
    LogRecord(ts=5.0, level="INFO", logger="student", message="hi", context={"line": 3}),
    RPCRequest(id="a-1", reply_to="runtime/r/reply/c", args=[1, "x"], kwargs={"k": None}),
    RPCReply(id="a-1", ok=True, result={"sha256": "ab"}),
    RPCReply(id=7, ok=False, error=RPCErrorInfo(type="OptionError", message="no",
                                                 context={"option": "x"})),
]


@pytest.mark.parametrize("model", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_model_round_trips_through_cbor(model):
    data = encode(model)
    assert isinstance(cbor2.loads(data), dict)
    assert decode(type(model), data) == model


def test_payloads_are_maps_with_the_documented_keys():
    status = cbor2.loads(encode(EXAMPLES[0]))
    assert set(status) == {"state", "version", "pid", "started"}
    gamepad = cbor2.loads(encode(EXAMPLES[3]))
    assert set(gamepad) == {"buttons", "axes", "ts"}


def test_replies_carry_result_or_error_never_both():
    assert cbor2.loads(encode(RPCReply(id=1, ok=True, result=None))) == {
        "id": 1, "ok": True, "result": None}
    failed = cbor2.loads(encode(EXAMPLES[-1]))
    assert set(failed) == {"id", "ok", "error"}
    assert failed["error"] == {"type": "OptionError", "message": "no", "context": {"option": "x"}}


def test_unknown_keys_are_ignored_for_newer_clients():
    data = cbor2.dumps({"keys": 5, "ts": 1.0, "layout": "azerty"})
    assert decode(KeyboardInput, data) == KeyboardInput(keys=5, ts=1.0)


def test_ints_are_accepted_where_floats_are_expected():
    data = cbor2.dumps({"buttons": 0, "axes": [0, 1, -1, 0], "ts": 17})
    assert decode(GamepadInput, data).axes == [0.0, 1.0, -1.0, 0.0]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"buttons": 1, "axes": [0, 0, 0], "ts": 1.0}, r"axes: List should have at least 4"),
        ({"buttons": 1, "axes": [0, 0, 0, 0, 0], "ts": 1.0}, r"axes: List should have at most 4"),
        ({"buttons": 1, "axes": [0, 1.5, 0, 0], "ts": 1.0}, r"axes\.1: .*less than or equal to 1"),
        ({"buttons": 1, "axes": [0, 0, math.nan, 0], "ts": 1.0}, r"axes\.2"),
        ({"buttons": 1 << 17, "axes": [0, 0, 0, 0], "ts": 1.0}, r"buttons: .*less than 131072"),
        ({"buttons": -1, "axes": [0, 0, 0, 0], "ts": 1.0}, r"buttons: .*greater than or equal"),
        ({"buttons": True, "axes": [0, 0, 0, 0], "ts": 1.0}, r"buttons: .*valid integer"),
        ({"buttons": "3", "axes": [0, 0, 0, 0], "ts": 1.0}, r"buttons: .*valid integer"),
        ({"axes": [0, 0, 0, 0], "ts": 1.0}, r"buttons: Field required"),
    ],
)
def test_gamepad_rejections_name_the_field_and_the_rule(payload, expected):
    with pytest.raises(MessageError, match=r"^bad GamepadInput payload: " + expected):
        decode(GamepadInput, cbor2.dumps(payload))


@pytest.mark.parametrize(
    ("model", "payload", "expected"),
    [
        (KeyboardInput, {"keys": 1 << 64, "ts": 0}, "keys"),
        (Match, {"mode": "sleep", "since": 0}, r"mode: Input should be 'idle', 'auto', 'teleop'"),
        (Match, {"mode": "auto", "alliance": "red", "since": 0}, "alliance"),
        (ServiceStatus, {"state": "up", "version": "1", "pid": 1, "started": 0}, "state"),
        (DeviceInfo, {"uid": "12x", "type": "A", "type_id": 1, "params": [],
                      "subscription": {"params": [], "interval_ms": 40}}, "uid"),
        (DeviceData, {"ts": 0, "params": {"a": "text"}}, r"params\.a"),
        (RPCRequest, {"id": 1, "reply_to": "runtime/r/reply/+"}, "reply_to"),
        (RPCRequest, {"id": 1, "reply_to": "x", "args": {"a": 1}}, "args"),
        (RPCReply, {"id": 1, "ok": False}, "needs an error"),
    ],
)
def test_other_rejections(model, payload, expected):
    with pytest.raises(MessageError, match=expected) as info:
        decode(model, cbor2.dumps(payload))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "empty payload"),
        (b"hello", "not valid CBOR"),
        (b"\xa1\x61", "not valid CBOR"),
        (cbor2.dumps({"keys": 1, "ts": 0}) + b"\x00", "1 bytes after its CBOR item"),
    ],
)
def test_bad_bytes_raise_message_error(data, expected):
    with pytest.raises(MessageError, match=expected):
        loads(data)
    with pytest.raises(MessageError, match=expected):
        decode(KeyboardInput, data)


def test_a_payload_that_is_not_a_map_is_refused():
    with pytest.raises(MessageError, match="expected a CBOR map, got an array"):
        decode(KeyboardInput, cbor2.dumps([1, 2]))


def test_encode_refuses_what_cbor_cannot_carry():
    with pytest.raises(MessageError, match="cannot encode"):
        encode({"x": object()})


@given(
    buttons=st.integers(0, (1 << 17) - 1),
    axes=st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4),
    ts=st.floats(allow_nan=False, allow_infinity=False),
)
def test_gamepad_round_trip_property(buttons, axes, ts):
    model = GamepadInput(buttons=buttons, axes=axes, ts=ts)
    assert decode(GamepadInput, encode(model)) == model


@given(st.binary(max_size=64))
def test_random_bytes_never_escape_as_other_errors(data):
    try:
        decode(GamepadInput, data)
    except MessageError:
        pass


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_times_the_stop_rules_compare_are_finite(bad):
    """A NaN ``since`` would pass every comparison of the device service's stale-match rule."""
    with pytest.raises(MessageError, match="since"):
        decode(Match, cbor2.dumps({"mode": "auto", "since": bad}))
    with pytest.raises(MessageError, match="started"):
        decode(ServiceStatus, cbor2.dumps({"state": "online", "version": "1", "pid": 1,
                                           "started": bad}))
