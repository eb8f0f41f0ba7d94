"""``kill -9`` of each service of ``runtime up`` in turn (issue 11 item 7).

The robot runs on its embedded broker (what ``runtime up`` runs). Teleop input is driven, then
stopped; from then on the motor must never be driven again, whatever is killed (a restarted
executor or device service must not replay a stale command). Each killed service is restarted
by the supervisor and comes back online; the KoalaBear is listed again; no shared-memory
segment is left without a live owner. Durations are printed for docs/reliability.md.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Awaitable, Callable

import pytest
from runtime.buffer import BufferStore
from runtime.remote import Client, Connection

from tests.e2e.robot import RunningRobot
from tests.resilience.rig import KOALA, SERVICES, Driver, MotorProbe, service_pids
from tests.support.wait import wait_for_async

pytestmark = pytest.mark.slow


async def koala_listed(robot: RunningRobot) -> bool:
    async with Connection(robot.url, robot=robot.robot, connect_timeout=5) as connection:
        try:
            listed = await Client(connection).call("device", "list", timeout=2)
        except Exception:
            return False
    return any(entry["uid"] == str(KOALA) for entry in listed)


async def kill_and_wait(robot: RunningRobot, driver: Driver, name: str) -> str:
    """SIGKILL service ``name``; wait until it is back and the KoalaBear listed; figures."""
    old = service_pids(robot)[name]
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    await wait_for_async(lambda: service_pids(robot).get(name) not in (None, old),
                         timeout=30, message=robot.output)

    def online_again() -> float | None:
        return next((when for when, state in driver.status.get(name, [])
                     if when > killed and state == "online"), None)

    online = await wait_for_async(online_again, timeout=30,
                                  message=lambda: f"{name} not online again: {driver.status}")
    assert online is not None
    back: Callable[[], Awaitable[bool]] = functools.partial(koala_listed, robot)
    await wait_for_async(back, timeout=30, message=robot.output)  # type: ignore[arg-type]
    listed = time.monotonic()
    with BufferStore(robot.robot) as store:
        stale = store.reclaim()
    assert stale == [], f"segments left by the killed {name}: {stale}"
    return f"{name}: online {online - killed:.2f} s, KoalaBear listed {listed - killed:.2f} s"


async def test_kill_9_of_each_service_in_turn(tmp_path):
    robot = RunningRobot("kill" + os.urandom(3).hex(), tmp_path, "--simulate", "KoalaBear:42",
                         "--simulate", "LimitSwitch")
    robot.wait_until_up()
    probe = MotorProbe(robot.robot).start()
    figures = []
    try:
        async with Driver(robot) as driver:
            await driver.client.call("executor", "set_mode", "teleop", timeout=20)
            driver.drive(0.8)
            await wait_for_async(lambda: probe.latest() == pytest.approx(0.4), timeout=20,
                                 message=robot.output)
            driver.stop_driving()  # the last input: nothing may drive the motor after this
            await wait_for_async(lambda: probe.latest() == 0.0, timeout=10)
            quiet = time.monotonic()
            for name in SERVICES:
                figures.append(await kill_and_wait(robot, driver, name))
            assert (await driver.client.call("executor", "get_mode", timeout=20))["mode"] in (
                "teleop", "idle")
        driven = probe.driven_after(quiet)
        assert driven == [], f"motor driven by a stale command: {driven[:5]}"
        print("after kill -9: " + "; ".join(figures))
    finally:
        await probe.stop()
        assert robot.stop() == 0
        assert robot.segments() == []
