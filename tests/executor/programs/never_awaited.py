"""Calls an async function without awaiting it or Robot.run."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)


async def wave():
    await Actions.sleep(0.1)


def teleop_setup():
    wave()  # the coroutine is dropped at once: Python warns that it was never awaited
