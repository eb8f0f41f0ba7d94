"""A 2021 style program (this runtime's design): aliases, setup/main, async actions, Match."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, Match, print are given to student code by Runtime)

MOTORS = "koala"


async def forward_then_stop():
    Robot.set_value(MOTORS, "duty_cycle_a", 0.4)
    Robot.set_value(MOTORS, "duty_cycle_b", 0.4)
    await Actions.sleep(0.5)
    Robot.set_value(MOTORS, "duty_cycle_a", 0.0)
    Robot.set_value(MOTORS, "duty_cycle_b", 0.0)
    print("auto: stopped, encoder at", round(Robot.get_value(MOTORS, "enc_a"), 1))


def autonomous_setup():
    print("auto: start position", Match.start_pos)
    Robot.run(forward_then_stop)


def autonomous_main():
    pass


def teleop_setup():
    print("teleop: alliance", Match.alliance, "game state", Match.game_state)


def teleop_main():
    speed = Gamepad.get_value("joystick_left_y", index=0)
    if Keyboard.get_value("w"):
        speed = 1.0
    Robot.set_value(MOTORS, "duty_cycle_a", speed)
    Robot.set_value(MOTORS, "duty_cycle_b", -speed)
