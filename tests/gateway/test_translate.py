"""docs/gateway.md's mapping table, one translation at a time (pure functions)."""

from __future__ import annotations

import pytest
from runtime.messages import DeviceInfo, LogRecord, ParamInfo, SubscriptionInfo
from runtime.protocol import make_uid
from runtime.service.gateway import translate
from runtime.service.gateway.proto import pie_client_pb2 as pb


@pytest.mark.parametrize(("mode", "name"), [(pb.IDLE, "idle"), (pb.AUTO, "auto"),
                                            (pb.TELEOP, "teleop"), (7, None)])
def test_run_modes(mode: int, name: str | None) -> None:
    assert translate.mode_name(pb.RunMode(mode=mode)) == name  # type: ignore[arg-type]


def test_start_positions() -> None:
    assert translate.start_pos_name(pb.StartPos(pos=pb.LEFT)) == "left"
    assert translate.start_pos_name(pb.StartPos(pos=pb.RIGHT)) == "right"
    assert translate.start_pos_name(pb.StartPos(pos=5)) is None  # type: ignore[arg-type]


def test_gamepads_take_slots_in_order_and_keyboard_its_topic() -> None:
    message = pb.UserInputs(inputs=[
        pb.Input(connected=True, buttons=0b101, axes=[0.5, -1.0, 0.0, 0.25], source=pb.GAMEPAD),
        pb.Input(connected=True, buttons=1 << 40, source=pb.KEYBOARD),
        pb.Input(connected=False, source=pb.GAMEPAD),
    ])
    update = translate.inputs_update(message, ts=12.5)
    first = update.gamepads[0]
    assert first is not None
    assert (first.buttons, first.axes, first.ts) == (0b101, [0.5, -1.0, 0.0, 0.25], 12.5)
    assert update.gamepads[1] is None  # disconnected: the input is gone
    assert update.has_keyboard and update.keyboard is not None
    assert update.keyboard.keys == 1 << 40
    assert update.problems == []


def test_axes_are_clipped_to_the_contract_range() -> None:
    message = pb.UserInputs(inputs=[pb.Input(connected=True, axes=[1.5, -3, 0, 0])])
    pad = translate.inputs_update(message, 0.0).gamepads[0]
    assert pad is not None and pad.axes == [1.0, -1.0, 0.0, 0.0]


@pytest.mark.parametrize(("item", "problem"), [
    (pb.Input(connected=True, axes=[0.0, 0.0]), "4 finite axes"),
    (pb.Input(connected=True, axes=[float("nan"), 0, 0, 0]), "4 finite axes"),
    (pb.Input(connected=True, buttons=1 << 17, axes=[0, 0, 0, 0]), "past button 16"),
])
def test_malformed_inputs_are_dropped_with_a_reason(item: pb.Input, problem: str) -> None:
    update = translate.inputs_update(pb.UserInputs(inputs=[item]), 0.0)
    assert update.gamepads == {} and update.keyboard is None
    assert len(update.problems) == 1 and problem in update.problems[0]


def test_a_fifth_gamepad_is_dropped() -> None:
    pads = [pb.Input(connected=True, axes=[0, 0, 0, 0]) for _ in range(5)]
    update = translate.inputs_update(pb.UserInputs(inputs=pads), 0.0)
    assert sorted(update.gamepads) == [0, 1, 2, 3]
    assert "more than 4 gamepads" in update.problems[0]


def koala_info(uid: int) -> DeviceInfo:
    return DeviceInfo(
        uid=str(uid), type="KoalaBear", type_id=13, port="pty",
        params=[
            ParamInfo(name="duty_cycle_a", type="float", readable=True, writeable=True),
            ParamInfo(name="enc_a", type="int32", readable=True, writeable=False),
            ParamInfo(name="invert_a", type="bool", readable=True, writeable=True),
            ParamInfo(name="pid_kp_a", type="float", readable=True, writeable=True),
        ],
        subscription=SubscriptionInfo(params=["duty_cycle_a"], interval_ms=40),
    )


def test_device_data_has_every_param_and_custom_data_last() -> None:
    uid = make_uid(13, 1, 0xDEADBEEF)
    values = {"duty_cycle_a": 0.5, "enc_a": -42, "invert_a": True}
    message = translate.dev_data([(koala_info(uid), values)], {"speed": 2.5, "n": 3}, 1234)
    koala, custom = message.devices
    assert (koala.name, koala.uid, koala.type) == ("KoalaBear", 0xDEADBEEF, 6)  # Dawn's number
    params = {p.name: p for p in koala.params}
    assert list(params) == ["duty_cycle_a", "enc_a", "invert_a", "pid_kp_a"]
    assert params["duty_cycle_a"].fval == pytest.approx(0.5)
    assert params["enc_a"].ival == -42 and params["enc_a"].readonly
    assert params["invert_a"].bval is True and not params["invert_a"].readonly
    assert params["pid_kp_a"].WhichOneof("val") is None  # never received: no made-up value
    assert (custom.name, custom.type, custom.uid) == ("CustomData", 32, 2020)
    entries = {p.name: p for p in custom.params}
    assert entries["speed"].fval == pytest.approx(2.5)
    assert entries["n"].ival == 3
    assert entries["time_ms"].ival == 1234


def test_robot_log_records_are_custom_entries_not_console_lines() -> None:
    entry = LogRecord(ts=1.0, level="INFO", logger="student.log", message="speed: 2",
                      context={"key": "speed", "value": 2})
    plain = LogRecord(ts=1.0, level="INFO", logger="student", message="hello")
    assert translate.custom_entry(entry) == ("speed", 2)
    assert translate.custom_entry(plain) is None


def test_log_text_lines_end_in_newlines() -> None:
    text = translate.log_text(["one", "two\nthree"])
    assert list(text.payload) == ["one\n", "two\n", "three\n"]


@pytest.mark.parametrize(("generation", "name", "type_id", "dawn"), [
    ("hibike", "KoalaBear", 13, 6),  # Dawn numbers types as lowcar does
    ("lowcar", "KoalaBear", 6, 6),
    ("hibike", "LimitSwitch", 0, 1),
    ("hibike", "NoSuchType", 99, 99),  # no lowcar type of that name: its own number
])
def test_dawn_type_numbers(generation: str, name: str, type_id: int, dawn: int) -> None:
    assert translate.dawn_type(generation, name, type_id) == dawn


@pytest.mark.parametrize(("level", "logger", "shown"), [
    ("ERROR", "runtime.service.device", "[ERROR] x"),
    ("error", "device.koala", "[ERROR] x"),  # a device's own line on the student console
    ("warning", "device.koala", "[WARNING] x"),
    ("info", "device.koala", "x"),
    ("error", "student", "x"),  # the student's own errors carry their traceback, no prefix
])
def test_service_and_device_warnings_reach_dawn_with_their_level(level, logger, shown):
    record = LogRecord(ts=0.0, level=level, logger=logger, message="x", context={})
    assert translate.record_lines(record) == [shown]
