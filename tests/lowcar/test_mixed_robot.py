"""A mixed robot from one command: 2 Hibike + 2 lowcar simulated devices under ``runtime up``,
driven by one student program in auto and teleop, stopped by idle and estop."""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid

import pytest
from runtime.protocol.uid import Uid

from tests.e2e.robot import RunningRobot
from tests.e2e.test_up import Watcher, _drive
from tests.support.wait import wait_for_async

pytestmark = pytest.mark.slow

HIBIKE_KOALA = str(Uid.hibike(13, 1, 42))
HIBIKE_SWITCH = str(Uid.hibike(0, 1, 5))
LOWCAR_KOALA = str(Uid.lowcar(6, 1, 4660))
LOWCAR_SWITCH = str(Uid.lowcar(1, 1, 77))

PROGRAM = f'''
# ruff: noqa: F821
def autonomous_setup():
    hibike, lowcar = Robot.get_value("0_5", "switch0"), Robot.get_value("1_77", "switch0")
    print("switches", type(hibike).__name__, type(lowcar).__name__)

def autonomous_main():
    Robot.set_value("13_42", "duty_cycle_a", 0.25)     # Hibike, "<type>_<id>"
    Robot.set_value("6_4660", "velocity_a", 0.5)       # lowcar, "<type>_<id>"
    Robot.set_value("{LOWCAR_KOALA}", "velocity_b", -0.5)  # lowcar, uid string

def teleop_main():
    forward = Gamepad.get_value("joystick_left_y")
    Robot.set_value("koala", "duty_cycle_b", forward)  # Hibike, alias
    Robot.set_value("lowkoala", "velocity_b", forward)  # lowcar, alias
'''


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    running = RunningRobot(
        f"mix{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("state"),
        "--simulate", "KoalaBear:42", "--simulate", "LimitSwitch:5",
        "--simulate", "lowcar.KoalaBear:4660", "--simulate", "lowcar.LimitSwitch:77")
    running.wait_until_up()
    program = tmp_path_factory.mktemp("code") / "mixed.py"
    program.write_text(textwrap.dedent(PROGRAM))
    running.cli("alias", "set", "lowkoala", LOWCAR_KOALA)
    running.cli("upload", str(program))
    yield running
    assert running.stop() == 0
    assert running.segments() == []


def test_both_generations_are_listed_with_their_generation(robot):
    listed = {entry["uid"]: entry for entry in json.loads(robot.cli("devices", "--json").stdout)}
    assert {uid: listed[uid]["generation"] for uid in
            (HIBIKE_KOALA, HIBIKE_SWITCH, LOWCAR_KOALA, LOWCAR_SWITCH)} == {
        HIBIKE_KOALA: "hibike", HIBIKE_SWITCH: "hibike",
        LOWCAR_KOALA: "lowcar", LOWCAR_SWITCH: "lowcar"}
    assert listed[LOWCAR_KOALA]["type"] == "KoalaBear" and listed[LOWCAR_KOALA]["type_id"] == 6


async def test_one_program_drives_both_generations_in_auto_and_teleop(robot):
    async with Watcher(robot) as watcher:
        try:
            await asyncio.to_thread(robot.cli, "mode", "auto")
            await wait_for_async(
                lambda: watcher.latest(HIBIKE_KOALA, "duty_cycle_a") == 0.25
                and watcher.latest(LOWCAR_KOALA, "velocity_a") == 0.5
                and watcher.latest(LOWCAR_KOALA, "velocity_b") == -0.5,
                timeout=30, message=lambda: robot.output())
            await asyncio.to_thread(robot.cli, "mode", "idle")  # zeros and a Disable / an RST
            await wait_for_async(
                lambda: watcher.latest(HIBIKE_KOALA, "duty_cycle_a") == 0.0
                and watcher.latest(LOWCAR_KOALA, "velocity_a") == 0.0
                and watcher.latest(LOWCAR_KOALA, "velocity_b") == 0.0, timeout=20)

            driving = asyncio.create_task(_drive(watcher, None, joystick_left_y=0.75))
            try:
                await asyncio.to_thread(robot.cli, "mode", "teleop")
                await wait_for_async(
                    lambda: watcher.latest(HIBIKE_KOALA, "duty_cycle_b") == 0.75
                    and watcher.latest(LOWCAR_KOALA, "velocity_b") == 0.75,
                    timeout=30, message=lambda: robot.output())
                await asyncio.to_thread(robot.cli, "mode", "estop")
                await wait_for_async(
                    lambda: watcher.latest(HIBIKE_KOALA, "duty_cycle_b") == 0.0
                    and watcher.latest(LOWCAR_KOALA, "velocity_b") == 0.0, timeout=20)
            finally:
                driving.cancel()
        finally:
            await asyncio.to_thread(robot.cli, "mode", "idle", check=False)
    robot.wait_for_line("switches bool bool")  # both switches read by "<type>_<id>"
    assert "Traceback" not in robot.output()
