"""teleop_main sets a motor then fails on every call."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)
main_calls = 0


def helper(values):
    return values["missing"]


def teleop_main():
    global main_calls
    main_calls += 1
    Robot.set_value("koala", "duty_cycle_a", 0.5)
    helper({})
