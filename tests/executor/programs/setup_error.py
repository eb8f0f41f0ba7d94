"""teleop_setup fails; teleop_main must then never run."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)
main_calls = 0


def teleop_setup():
    Robot.set_value("koala", "duty_cycle_a", 0.5)
    raise ValueError("the arm is not calibrated")


def teleop_main():
    global main_calls
    main_calls += 1
