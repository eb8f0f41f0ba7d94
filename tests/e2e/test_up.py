"""The whole robot from one command: ``runtime up`` as a subprocess, driven like a user would.

One robot (embedded amqtt) serves most tests of this module; a second one runs on a real
Mosquitto through ``--mqtt``. Both are started once per module (each start costs seconds).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid

import pytest
from runtime.messages import DeviceData, DeviceInfo, GamepadInput, ServiceStatus, decode, encode
from runtime.options import set_options
from runtime.remote import Connection
from runtime.up.stack import SAMPLE

from tests.e2e.robot import RunningRobot
from tests.support.brokers import make_broker
from tests.support.wait import wait_for, wait_for_async

pytestmark = pytest.mark.slow

KOALA = str((13 << 72) | (1 << 64) | 42)


def _start(tmp_path_factory, *args: str, mqtt: str | None = None) -> RunningRobot:
    robot = RunningRobot(f"e2e{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("state"),
                         "--simulate", "KoalaBear:42", "--simulate", "LimitSwitch", *args,
                         mqtt=mqtt)
    robot.wait_until_up()
    return robot


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    running = _start(tmp_path_factory)
    yield running
    assert running.stop() == 0
    assert running.segments() == []  # nothing left in /dev/shm


class Watcher:
    """A client connection that records device data and infos of one robot."""

    def __init__(self, robot: RunningRobot) -> None:
        self.robot = robot
        self.data: list[tuple[float, str, DeviceData]] = []
        self.infos: dict[str, DeviceInfo | None] = {}
        self.status: dict[str, ServiceStatus] = {}

    async def __aenter__(self) -> Watcher:
        self.connection = Connection(self.robot.url, robot=self.robot.robot)
        await self.connection.start()
        topics = self.connection.topics
        await self.connection.subscribe(topics.any_device_data, self._on_data)
        await self.connection.subscribe(topics.any_device_info, self._on_info)
        await self.connection.subscribe(topics.any_status, self._on_status)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    def _on_data(self, topic: str, payload: bytes) -> None:
        self.data.append((time.monotonic(), topic.split("/")[-2], decode(DeviceData, payload)))

    def _on_info(self, topic: str, payload: bytes) -> None:
        self.infos[topic.split("/")[-2]] = decode(DeviceInfo, payload) if payload else None

    def _on_status(self, topic: str, payload: bytes) -> None:
        if payload:
            self.status[topic.split("/")[-2]] = decode(ServiceStatus, payload)

    def latest(self, uid: str, param: str) -> object:
        for _, seen, message in reversed(self.data):
            if seen == uid and param in message.params:
                return message.params[param]
        return None

    async def gamepad(self, **axes: float) -> None:
        values = [axes.get(name, 0.0) for name in
                  ("joystick_left_x", "joystick_left_y", "joystick_right_x", "joystick_right_y")]
        await self.connection.publish(self.connection.topics.gamepad(0),
                                      encode(GamepadInput(buttons=0, axes=values,
                                                          ts=time.time())))


async def _drive(watcher: Watcher, seconds: float | None, **axes: float) -> None:
    """Publish gamepad input at 20 Hz (for ``seconds``, or until cancelled)."""
    end = None if seconds is None else time.monotonic() + seconds
    while end is None or time.monotonic() < end:
        await watcher.gamepad(**axes)
        await asyncio.sleep(0.05)


def test_simulated_devices_appear_in_devices_and_info(robot):
    listed = json.loads(robot.cli("devices", "--json").stdout)
    types = {entry["uid"]: entry["type"] for entry in listed}
    assert types[KOALA] == "KoalaBear" and "LimitSwitch" in types.values()
    table = robot.cli("devices", "--all").stdout  # named by alias: the sample's "koala"
    assert re.search(r"^koala +KoalaBear .*duty_cycle_a=", table, re.M), table
    assert KOALA in robot.cli("devices", "--json").stdout

    async def infos():
        async with Watcher(robot) as watcher:
            await wait_for_async(lambda: KOALA in watcher.infos)
            return watcher.infos[KOALA]

    info = asyncio.run(infos())
    assert info.type == "KoalaBear" and info.subscription.interval_ms == 40


async def test_teleop_gamepad_moves_the_motor_and_estop_stops_it(robot):
    async with Watcher(robot) as watcher:
        driving = asyncio.create_task(_drive(watcher, None, joystick_left_y=0.8))
        try:
            await asyncio.to_thread(robot.cli, "mode", "teleop")
            # the sample program: forward = left stick y * 0.5 on both motors of "koala"
            await wait_for_async(lambda: watcher.latest(KOALA, "duty_cycle_a")
                                 == pytest.approx(0.4, abs=1e-6), timeout=20,
                                 message=lambda: robot.output())
            await asyncio.to_thread(robot.cli, "mode", "estop")
            await wait_for_async(lambda: watcher.latest(KOALA, "duty_cycle_a") == 0.0)
        finally:
            driving.cancel()
            # estop latches until cleared
            await asyncio.to_thread(robot.cli, "mode", "idle", "--clear-estop")


async def test_input_loss_in_teleop_zeroes_the_motor(robot):
    async with Watcher(robot) as watcher:
        await asyncio.to_thread(robot.cli, "mode", "teleop")
        try:
            await _drive(watcher, 0.5, joystick_left_y=1.0)
            await wait_for_async(lambda: watcher.latest(KOALA, "duty_cycle_b")
                                 == pytest.approx(0.5), timeout=20)
            stopped = time.monotonic()  # the driver station goes silent
            await wait_for_async(lambda: watcher.latest(KOALA, "duty_cycle_b") == 0.0)
            zeroed = next(when for when, uid, message in watcher.data if uid == KOALA
                          and when > stopped and message.params.get("duty_cycle_b") == 0.0)
            print(f"input loss -> motor at 0 seen by a client after {zeroed - stopped:.3f} s")
        finally:
            await asyncio.to_thread(robot.cli, "mode", "idle")


async def test_device_data_follows_the_rate_and_stops_when_nothing_changes(tmp_path_factory):
    """A slow ``data_rate`` caps a device whose values change at every poll; an idle one goes quiet.

    Own robot: ``data_rate=5`` (0.2 s) is far below the 25 Hz at which the simulated devices
    update their buffers, so a publisher that ignored the rate would be seen. The rate check is
    an invariant of the publish loop, not a speed threshold: each round starts no earlier than
    one period after the round two before it ended, so any two messages of one device with
    another in between are at least one period apart on the stamps (``ts``) the service sets.
    Load can only stretch the gaps. The quiet check waits on events: after the idle KoalaBear's
    last message (or the watch start: its values may have gone out before), ten Potentiometer
    messages (one per round, as its values change at every poll) go by with no KoalaBear one.
    """
    state_dir = tmp_path_factory.mktemp("state")
    set_options(state_dir, {"data_rate": 5})
    robot = RunningRobot(f"e2e{uuid.uuid4().hex[:6]}", state_dir, "--simulate", "KoalaBear:42",
                         "--simulate", "Potentiometer")
    try:
        robot.wait_until_up()
        async with Watcher(robot) as watcher:
            await asyncio.to_thread(robot.cli, "mode", "idle")

            def seen(uid: str) -> list[float]:
                return [message.ts for _, seen_uid, message in watcher.data if seen_uid == uid]

            watching = time.time()  # the KoalaBear's first values may have gone out before
            pot = await wait_for_async(lambda: next((uid for _, uid, _ in watcher.data
                                                     if uid != KOALA), None), timeout=30)

            def pot_messages_after_koala() -> int:
                last_koala = max(seen(KOALA), default=watching)
                return sum(1 for stamp in seen(pot) if stamp > last_koala)

            # The quiet: 10 publish rounds carry the Potentiometer and not the idle KoalaBear
            # (a publisher sending unchanged values would put a KoalaBear message in each).
            await wait_for_async(lambda: pot_messages_after_koala() >= 10, timeout=60,
                                 message=lambda: f"the idle KoalaBear kept publishing "
                                         f"({len(seen(KOALA))} messages)")
            stamps = seen(pot)
        assert len(stamps) >= 10
        period = 1 / 5
        gaps = [later - earlier for earlier, later in zip(stamps, stamps[2:], strict=False)]
        assert min(gaps) >= period * 0.99, f"more than 5 publishes a second: {gaps[:10]}"
    finally:
        assert robot.stop() == 0


def test_a_killed_service_is_restarted_and_devices_come_back(robot):
    status = robot.call("device", "list")
    assert any(entry["uid"] == KOALA for entry in status)
    device_pid = next(p.pid for p in robot.children()
                      if "service" in p.cmdline() and "device" in p.cmdline())
    os.kill(device_pid, signal.SIGKILL)
    robot.wait_for_line("device was killed by SIGKILL")
    new_pid = wait_for(lambda: next((p.pid for p in robot.children()
                                     if "device" in p.cmdline() and p.pid != device_pid),
                                    None), timeout=30)
    assert new_pid != device_pid
    listed = wait_for(lambda: _koala_listed(robot), timeout=30)
    assert listed


def _koala_listed(robot: RunningRobot) -> bool:
    try:
        return any(entry["uid"] == KOALA for entry in robot.call("device", "list"))
    except Exception:
        return False


def test_lint_finds_a_mistake_and_passes_the_sample(robot, tmp_path):
    clean = robot.cli("lint", check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("def teleop_main():\n    Robot.set_value('koala', 'duty_cycle_a', speed)\n")
    robot.cli("upload", str(bad))
    found = robot.cli("lint", check=False)
    assert found.returncode != 0 and "speed" in found.stdout + found.stderr
    robot.cli("upload", str(SAMPLE))  # the sample again, for the other tests


def test_options_and_aliases_survive_a_restart(tmp_path_factory):
    first = _start(tmp_path_factory)
    try:
        first.cli("option", "set", "data_rate=10")
        first.cli("alias", "set", "left", KOALA)
    finally:
        assert first.stop() == 0
    second = RunningRobot(first.robot, first.state_dir, "--simulate", "KoalaBear:42")
    try:
        second.wait_until_up()
        assert "10" in second.cli("option", "get", "data_rate").stdout
        assert f"left {KOALA}" in second.cli("alias", "list").stdout
    finally:
        assert second.stop() == 0


def test_up_against_an_external_mosquitto(tmp_path_factory):
    broker = make_broker("mosquitto")
    try:
        running = _start(tmp_path_factory, mqtt=broker.url)
        try:
            assert "external" in running.output()
            listed = json.loads(running.cli("devices", "--json").stdout)
            assert KOALA in {entry["uid"] for entry in listed}
        finally:
            assert running.stop() == 0
            assert running.segments() == []
    finally:
        broker.close()
