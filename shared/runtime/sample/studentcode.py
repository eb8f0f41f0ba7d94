"""Sample student program: drive a two-motor robot with a KoalaBear.

Runtime runs this program until you upload your own (`runtime upload mycode.py`).
The motors are on the KoalaBear called "koala": give yours that name with
`runtime alias set koala <uid>` (`runtime up --simulate KoalaBear` does it for you).
"""
# ruff: noqa: F821  (Robot, Gamepad, Actions and print are given to student code by Runtime)

MOTORS = "koala"
SLOW = 0.5


def clamp(value):
    """Keep a duty cycle inside the motor's range, -1 to 1."""
    return max(-1.0, min(1.0, value))


def drive(forward, turn):
    """Arcade drive: `forward` moves both wheels, `turn` spins the robot."""
    Robot.set_value(MOTORS, "duty_cycle_a", clamp(forward + turn))
    Robot.set_value(MOTORS, "duty_cycle_b", clamp(forward - turn))


async def square_dance():
    """Autonomous routine: forward, turn, forward, stop."""
    print("autonomous: forward")
    drive(SLOW, 0)
    await Actions.sleep(1.5)
    print("autonomous: turn")
    drive(0, SLOW)
    await Actions.sleep(0.75)
    print("autonomous: forward again")
    drive(SLOW, 0)
    await Actions.sleep(1.5)
    drive(0, 0)
    print("autonomous: done")


def autonomous_setup():
    """Start the autonomous routine once, when autonomous begins."""
    Robot.run(square_dance)


def autonomous_main():
    """Nothing to do every tick: the routine runs by itself."""


def teleop_setup():
    """Say how to drive when teleop begins."""
    print("teleop: left stick drives (up/down: forward, left/right: turn); hold A for full speed")


def teleop_main():
    """Every 20 ms: read the left stick and set both motors."""
    speed = 1.0 if Gamepad.get_value("button_a") else SLOW
    forward = Gamepad.get_value("joystick_left_y") * speed
    turn = Gamepad.get_value("joystick_left_x") * speed
    drive(forward, turn)
