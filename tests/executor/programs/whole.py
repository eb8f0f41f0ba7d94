"""The newest style: teleop() and autonomous() run once, for the whole mode."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)
teleop_loops = 0
auto_done = False


def teleop():
    global teleop_loops
    while True:
        teleop_loops += 1
        Robot.set_value("koala", "duty_cycle_a", 0.25)
        Robot.sleep(0.01)


async def autonomous():
    global auto_done
    Robot.set_value("koala", "duty_cycle_b", -0.5)
    await Actions.sleep(0.01)
    auto_done = True
