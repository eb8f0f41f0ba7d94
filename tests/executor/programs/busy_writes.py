"""teleop_main never returns, but spends its time inside Robot calls."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)
main_calls = 0


def teleop_main():
    global main_calls
    main_calls += 1
    if main_calls % 2:
        while True:
            Robot.set_value("koala", "duty_cycle_a", 0.5)
            Robot.get_value("koala", "enc_a")
    else:
        Robot.sleep(10)
