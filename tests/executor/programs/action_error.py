"""An async action and a plain action that fail."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)


async def broken_async():
    await Actions.sleep(0)
    raise RuntimeError("async action broke")


def broken_plain():
    Robot.set_value("koala", "duty_cycle_b", 2.0)


def teleop_setup():
    Robot.run(broken_async)
    Robot.run(broken_plain)


def teleop_main():
    pass
