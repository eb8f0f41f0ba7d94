"""Every way get_value/set_value can be misused; collects the errors."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)
errors = {}


def attempt(name, func, *args):
    try:
        func(*args)
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"


def teleop_setup():
    attempt("unknown device", Robot.get_value, "nope", "duty_cycle_a")
    attempt("unknown param", Robot.get_value, "koala", "speed")
    attempt("read write-only", Robot.get_value, "koala_yogi", "pid_pos_kp")
    attempt("write read-only", Robot.set_value, "koala_yogi", "enc_vel", 1.0)
    attempt("out of bounds", Robot.set_value, "koala", "duty_cycle_a", 1.5)
    attempt("wrong type", Robot.set_value, "koala", "duty_cycle_a", "fast")
    attempt("not a string", Robot.get_value, 42, "duty_cycle_a")
    attempt("gamepad name", Gamepad.get_value, "trigger")
    attempt("keyboard key", Keyboard.get_value, "F13")


def teleop_main():
    pass
