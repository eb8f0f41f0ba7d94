"""Sets a motor, then never returns from teleop_main."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)


def teleop_main():
    Robot.set_value("koala", "duty_cycle_a", 0.75)
    while True:
        pass
