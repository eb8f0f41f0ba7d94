"""A C runtime (2021-25) style program: "<type>_<uid>" device ids, autonomous()/teleop()
loops with Robot.sleep, a plain function run as a thread, Robot.log, Robot.start_pos,
Keyboard, print to stderr."""
# ruff: noqa: F821  (Robot, Gamepad, Keyboard, print are given to student code by Runtime)
import sys

MOTOR = "13_4242"  # a KoalaBear: type 13, id 4242
ENCODER = "3_77"  # an Encoder: type 3, id 77


def blink():
    Robot.log("blink", "on")
    Robot.sleep(0.1)
    Robot.log("blink", "off")


def autonomous():
    print("start position:", Robot.start_pos)
    Robot.run(blink)
    Robot.set_value(MOTOR, "duty_cycle_a", 0.6)
    Robot.sleep(0.3)
    Robot.set_value(MOTOR, "duty_cycle_a", 0.0)
    Robot.log("rotation", Robot.get_value(ENCODER, "rotation"))
    while True:
        Robot.sleep(0.1)


def teleop():
    warned = False
    while True:
        if Keyboard.get_value("up_arrow"):
            Robot.set_value(MOTOR, "duty_cycle_b", 0.8)
        else:
            Robot.set_value(MOTOR, "duty_cycle_b", Gamepad.get_value("joystick_right_y"))
        if Gamepad.get_value("dpad_up") and not warned:
            print("dpad up pressed", file=sys.stderr)
            warned = True
        Robot.sleep(0.02)
