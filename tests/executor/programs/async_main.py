"""teleop_main written as an async def (a common mistake)."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)


def teleop_setup():
    pass


async def teleop_main():
    await Actions.sleep(0.1)
