"""Async and plain actions: started from setup, checked from main, cancelled at mode end."""
# ruff: noqa: F821  (Robot, Gamepad, Actions, print... are given to student code by Runtime)
import threading

async_ticks = 0
plain_ticks = 0
refused = None
running_seen = None
plain_stopped = threading.Event()


async def spin():
    global async_ticks
    while True:
        async_ticks += 1
        await Actions.sleep(0.01)


def plain():
    global plain_ticks
    try:
        while True:
            plain_ticks += 1
            Robot.sleep(0.01)
    finally:
        plain_stopped.set()


async def quick(results, value):
    results.append(value)


results = []


def teleop_setup():
    global refused, running_seen
    Robot.run(spin)
    Robot.run(plain)
    Robot.run(quick, results, "done")
    try:
        Robot.run(spin)  # still running: does nothing, says so once
        Robot.run(spin)
    except Exception as exc:
        refused = str(exc)
    running_seen = (Robot.is_running(spin), Robot.is_running(plain))


def teleop_main():
    pass
