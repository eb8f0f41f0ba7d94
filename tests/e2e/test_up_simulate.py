"""``--simulate``: stable uids (a student's aliases survive restarts), duplicates refused."""

from __future__ import annotations

import json
import uuid

import pytest
from runtime.exception import DeviceError
from runtime.up.simulate import SimulatedDevice

from tests.e2e.robot import RunningRobot


def uid(type_id: int, id_part: int) -> str:
    return str((type_id << 72) | (1 << 64) | id_part)


KOALA, SWITCH = 13, 0


@pytest.mark.parametrize(("specs", "uids"), [
    (["KoalaBear", "LimitSwitch", "KoalaBear"], [uid(KOALA, 1), uid(SWITCH, 1), uid(KOALA, 2)]),
    # ids given explicitly are skipped by the ones chosen, wherever they appear
    (["KoalaBear", "KoalaBear:1"], [uid(KOALA, 2), uid(KOALA, 1)]),
    (["KoalaBear:2", "KoalaBear", "KoalaBear"], [uid(KOALA, 2), uid(KOALA, 1), uid(KOALA, 3)]),
    ([f"KoalaBear:{uid(KOALA, 5)}", "KoalaBear:6"], [uid(KOALA, 5), uid(KOALA, 6)]),
])
def test_uids_follow_from_type_and_position(specs, uids):
    assert [device.uid for device in SimulatedDevice.parse_all(specs)] == uids
    assert [device.uid for device in SimulatedDevice.parse_all(specs)] == uids  # every time


@pytest.mark.parametrize("specs", [["KoalaBear:3", "KoalaBear:3"],
                                   ["KoalaBear:1", f"KoalaBear:{uid(KOALA, 1)}"],
                                   ["LimitSwitch:1", "LimitSwitch", "LimitSwitch:1"]])
def test_one_uid_twice_is_refused(specs):
    with pytest.raises(DeviceError, match=r"are the same device .* give each its own uid"):
        SimulatedDevice.parse_all(specs)


@pytest.mark.slow
def test_two_starts_give_the_same_uids_and_keep_the_aliases(tmp_path):
    state = tmp_path / "state"
    name = f"e2e{uuid.uuid4().hex[:6]}"
    seen = []
    for _ in range(2):
        robot = RunningRobot(name, state, "--simulate", "KoalaBear", "--simulate", "KoalaBear",
                             "--simulate", "LimitSwitch")
        try:
            robot.wait_until_up()
            seen.append(sorted(line.split()[2] for line in robot.lines
                               if line.startswith("  device    ")))
            robot.cli("alias", "set", "left_motor", uid(KOALA, 2))
        finally:
            assert robot.stop() == 0
    assert seen[0] == seen[1] == sorted([uid(KOALA, 1), uid(KOALA, 2), uid(SWITCH, 1)])
    aliases = json.loads((state / "aliases.json").read_text())
    assert aliases["koala"] == uid(KOALA, 1) and aliases["left_motor"] == uid(KOALA, 2)
