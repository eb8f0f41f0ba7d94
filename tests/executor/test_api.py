"""runtime.api against real shared-memory buffers (the test owns them, as the device and
broker services would)."""

from __future__ import annotations

import pytest
from runtime.aliases import AliasFile, set_alias
from runtime.api import Mode, StudentAPI, StudentCodeStopped
from runtime.buffer import BufferStore
from runtime.exception import DeviceError, ExecutionError, ParameterError

from tests.support.wait import wait_for

KOALA = 13 << 72 | 1 << 64 | 42
YOGI = 10 << 72 | 3 << 64 | 7
SWITCH = 0 << 72 | 1 << 64 | 5


@pytest.fixture
def owner(robot_name):
    with BufferStore(robot_name) as store:
        yield store


@pytest.fixture
def api(owner, robot_name, tmp_path):
    set_alias(tmp_path, "koala", str(KOALA))
    with BufferStore(robot_name) as store:
        api = StudentAPI(store, aliases=AliasFile(tmp_path))
        api.enable()
        yield api


def device(owner, uid, kind):
    buffer = owner.create_device(str(uid), kind)
    buffer.connected = True
    return buffer


def test_values_by_uid_short_form_and_alias(owner, api):
    koala = device(owner, KOALA, "KoalaBear")
    koala.update({"enc_a": 3.5, "motor_enabled_b": True})
    robot = api.robot
    assert robot.get_value(str(KOALA), "enc_a") == 3.5
    assert robot.get_value("13_42", "motor_enabled_b") is True
    robot.set_value("koala", "duty_cycle_a", -0.5)
    robot.set_value("koala", "drive_mode_a", 2)
    assert koala.desired("duty_cycle_a") == -0.5 and koala.desired("drive_mode_a") == 2
    assert koala.take_writes() == {"duty_cycle_a": -0.5, "drive_mode_a": 2}


def test_errors_name_device_param_and_what_is_allowed(owner, api):
    device(owner, KOALA, "KoalaBear")
    device(owner, SWITCH, "LimitSwitch")
    robot = api.robot
    with pytest.raises(DeviceError, match=r"no device 'left'.*connected devices: 0_5, 13_42 \("
                       r"koala\)"):
        robot.get_value("left", "switch0")
    with pytest.raises(DeviceError, match="no device '99_1': no connected device"):
        robot.get_value("99_1", "x")
    with pytest.raises(ParameterError, match=r"Robot.set_value\('koala', 'duty_cycle_a', 3\).*"
                       r"out of bounds.*from -1 to 1"):
        robot.set_value("koala", "duty_cycle_a", 3)
    with pytest.raises(ParameterError, match=r"switch0 cannot be written.*writeable params: none"):
        robot.set_value("0_5", "switch0", True)
    with pytest.raises(ParameterError, match="takes True or False, not int"):
        robot.set_value("koala", "motor_enabled_a", 1)
    with pytest.raises(ParameterError) as info:
        robot.get_value("koala", "speed")
    assert info.value.context["device"] == "koala" and info.value.context["param"] == "speed"


def test_an_unplugged_device_is_noticed_and_a_new_one_picked_up(owner, api):
    koala = device(owner, KOALA, "KoalaBear")
    koala.update({"enc_a": 1.0})
    assert api.robot.get_value("koala", "enc_a") == 1.0
    owner.forget(koala)  # the device service drops the buffer (unplug)

    def refused():
        try:
            api.robot.get_value("koala", "enc_a")
        except DeviceError as exc:
            return "is not connected" in exc.message
        return False

    wait_for(refused)
    again = device(owner, KOALA, "KoalaBear")  # plugged in again: a new buffer
    again.update({"enc_a": 2.0})
    wait_for(lambda: api.robot.get_value("koala", "enc_a") == 2.0)


def test_stop_motors_zeroes_every_motor_and_closes_the_gate(owner, api):
    koala = device(owner, KOALA, "KoalaBear")
    yogi = device(owner, YOGI, "YogiBear")
    api.robot.set_value("koala", "duty_cycle_b", 0.5)
    yogi.write({"duty_cycle": 0.25, "pid_pos_kp": 1.0})  # a device the student never used
    assert sorted(api.stop_motors()) == sorted([str(KOALA), str(YOGI)])
    assert koala.desired("duty_cycle_a") == 0.0 and koala.desired("duty_cycle_b") == 0.0
    assert yogi.desired("duty_cycle") == 0.0 and yogi.desired("pid_pos_kp") == 1.0
    with pytest.raises(StudentCodeStopped):
        api.robot.set_value("koala", "duty_cycle_b", 0.5)
    assert koala.desired("duty_cycle_b") == 0.0


def test_gamepad_and_keyboard_in_teleop_only(owner, api):
    pad = owner.gamepad(0, create=True)
    keyboard = owner.keyboard(create=True)
    pad.update(1 << 3, (0.0, -0.5, 0.0, 1.0), 1.0)
    keyboard.update(1 << 22, 1.0)  # "w"
    with pytest.raises(ExecutionError, match=r"only be read in teleop .*idle"):
        api.gamepad.get_value("button_y")
    api.match.update(Mode.TELEOP)
    assert api.gamepad.get_value("button_y") is True
    assert api.gamepad.get_value("joystick_left_y") == -0.5
    assert api.keyboard.get_value("w") is True and api.keyboard.get_value("a") is False
    with pytest.raises(ExecutionError, match="index is the gamepad number, 0 to 3"):
        api.gamepad.get_value("button_a", 7)
    pad.connected = False  # the driver station is gone: nothing pressed, sticks centred
    assert api.gamepad.get_value("button_y") is False
    assert api.gamepad.get_value("joystick_right_y") == 0.0
    assert api.gamepad.get_value("button_a", 2) is False  # no input on gamepad 2
    with pytest.raises(ParameterError, match="no button or axis 'start'"):
        api.gamepad.get_value("start")


def test_a_dead_brokers_frozen_input_is_not_trusted(owner, api, robot_name):
    with BufferStore(robot_name) as broker:
        pad = broker.gamepad(1, create=True)
        pad.update(1, (0.0, 0.9, 0.0, 0.0), 1.0)
        api.match.update(Mode.TELEOP)
        assert api.gamepad.get_value("joystick_left_y", 1) == 0.9
    # the broker's store closed (as if it died): its buffer is gone, input reads neutral
    wait_for(lambda: api.gamepad.get_value("joystick_left_y", 1) == 0.0)


def test_actions_need_an_executor(api):
    with pytest.raises(ExecutionError, match="no executor runs actions"):
        api.robot.run(print)
    assert api.robot.is_running(print) is False
    assert api.names()["Match"].mode is Mode.IDLE
