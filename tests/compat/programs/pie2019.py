"""A 2019-20 (PieCentral) style program: set_motor/stop_motor, the gamepad number, the
starting zone from Field, async actions with Actions.sleep, Robot.run called every tick."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, Field, print are given to student code by Runtime)

DRIVE = "left_motor"  # a YogiBear (one motor)
ARM = "arm"  # a KoalaBear


async def autonomous_actions():
    print("Autonomous from", Field.starting_zone)
    Robot.set_motor(DRIVE, 0.5)
    await Actions.sleep(0.5)
    Robot.stop_motor(DRIVE)
    print("Autonomous done")


def autonomous_setup():
    Robot.run(autonomous_actions)


def autonomous_main():
    pass


async def wave_arm():
    Robot.set_value(ARM, "duty_cycle_a", 0.3)
    await Actions.sleep(30)
    Robot.set_value(ARM, "duty_cycle_a", 0.0)


def teleop_setup():
    print("Tele-operated mode has started!")


def teleop_main():
    Robot.set_motor(DRIVE, Gamepad.get_value("joystick_left_y", 0))
    if Gamepad.get_value("button_a", 0):
        Robot.run(wave_arm)  # every tick while A is held: one wave at a time
