"""Teleop: the left stick drives duty_cycle_a. Autonomous: tries to read the gamepad."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)
main_calls = 0
auto_error = None


def teleop_main():
    global main_calls
    main_calls += 1
    Robot.set_value("koala", "duty_cycle_a", Gamepad.get_value("joystick_left_y"))
    if Gamepad.get_value("button_a") or Keyboard.get_value("w"):
        Robot.set_value("koala", "duty_cycle_b", 1.0)


def autonomous_main():
    global auto_error, main_calls
    main_calls += 1
    try:
        Gamepad.get_value("joystick_left_y")
    except Exception as exc:
        auto_error = str(exc)
