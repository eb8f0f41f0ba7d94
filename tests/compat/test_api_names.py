"""The compatibility table of docs/student-api.md, name by name: every row has a check here
(and every check a row), each run against real shared-memory buffers, a real action runner
and a console that records what the student would see."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime.aliases import AliasFile, set_alias
from runtime.api import Mode, StudentAPI, StudentCodeStopped
from runtime.buffer import AXES, BUTTONS, KEYS, BufferStore
from runtime.exception import DeviceError, ExecutionError
from runtime.service.executor.asyncexec import AsyncExecutor

from tests.support.wait import wait_for

DOC = Path(__file__).parents[2] / "docs" / "student-api.md"
KOALA = 13 << 72 | 1 << 64 | 42
YOGI = 10 << 72 | 3 << 64 | 7


class Student:
    """The API as a program sees it, plus what its console received."""

    def __init__(self, api: StudentAPI, owner: BufferStore, lines: list[tuple[str, str]],
                 records: list[tuple[str, str, dict[str, Any], str]]) -> None:
        self.api, self.owner, self.lines, self.records = api, owner, lines, records
        self.names = api.names()
        self.koala = owner.create_device(str(KOALA), "KoalaBear")
        self.yogi = owner.create_device(str(YOGI), "YogiBear")
        for device in (self.koala, self.yogi):
            device.connected = True
            device.update(device.read())  # as their first DeviceData would
        self.pad = owner.gamepad(0, create=True)
        self.keyboard = owner.keyboard(create=True)

    def __getattr__(self, name: str) -> Any:
        return self.names[name]

    def said(self, fragment: str) -> int:
        return sum(fragment in text for _, text in self.lines)


@pytest.fixture
def student(robot_name: str, tmp_path: Path) -> Iterator[Student]:
    set_alias(tmp_path, "koala", str(KOALA))
    set_alias(tmp_path, "yogi", str(YOGI))
    lines: list[tuple[str, str]] = []
    records: list[tuple[str, str, dict[str, Any], str]] = []

    def console(*objects: Any, sep: str = " ", end: str = "\n", file: Any = None) -> None:
        lines.append(("warning" if file is sys.stderr else "info", sep.join(map(str, objects))))

    def log(level: str, message: str, context: dict[str, Any], logger: str = "student") -> None:
        records.append((level, message, context, logger))

    with BufferStore(robot_name) as owner, BufferStore(robot_name) as store, \
            AsyncExecutor(8, report=lambda name, exc: None) as actions:
        api = StudentAPI(store, aliases=AliasFile(tmp_path), actions=actions, print=console,
                         log=log)
        api.enable()
        yield Student(api, owner, lines, records)


def _renamed(student: Student, old: str, new: str, use: Callable[[], Any]) -> None:
    """An old name works, and says once per run which name to use now."""
    use()
    use()
    assert student.said(f"{old} is the name of an earlier PiE runtime") == 1
    assert any(new in text for _, text in student.lines)
    student.api.enable()  # a new run: said again once
    use()
    assert student.said(f"{old} is the name of an earlier PiE runtime") == 2


# -- checks, one per table row ---------------------------------------------------------------

def get_value(s: Student) -> None:
    s.koala.update({"enc_a": 2.5})
    assert s.Robot.get_value("koala", "enc_a") == 2.5


def set_value(s: Student) -> None:
    s.Robot.set_value("koala", "duty_cycle_a", 0.5)
    assert s.koala.desired("duty_cycle_a") == 0.5


def set_motor(s: Student) -> None:
    _renamed(s, "Robot.set_motor(device, value)", "Robot.set_value(device, 'duty_cycle', value)",
             lambda: s.Robot.set_motor("yogi", -0.25))
    assert s.yogi.desired("duty_cycle") == -0.25
    with pytest.raises(DeviceError, match=r"KoalaBear has 2 motors \(duty_cycle_a, duty_cycle_b"
                       r"\): use Robot.set_value\('koala', 'duty_cycle_a', value\)"):
        s.Robot.set_motor("koala", 0.5)
    assert s.koala.desired("duty_cycle_a") == 0.0


def stop_motor(s: Student) -> None:
    s.Robot.set_value("koala", "duty_cycle_a", 0.5)
    s.Robot.set_value("koala", "duty_cycle_b", -0.5)
    _renamed(s, "Robot.stop_motor(device)", "Robot.set_value(device, 'duty_cycle_a', 0)",
             lambda: s.Robot.stop_motor("koala"))
    assert (s.koala.desired("duty_cycle_a"), s.koala.desired("duty_cycle_b")) == (0.0, 0.0)


def run(s: Student) -> None:
    release = threading.Event()
    ran: list[Any] = []

    def wave(arg: Any) -> None:
        ran.append(arg)
        release.wait(10)

    s.Robot.set_value("koala", "duty_cycle_a", 0.75)
    s.Robot.run(wave, 1)
    wait_for(lambda: ran == [1])
    for _ in range(3):
        s.Robot.run(wave, 2)  # still running: nothing happens, said once, motors untouched
    assert ran == [1] and s.said("Robot.run(wave): wave is still running") == 1
    assert s.koala.desired("duty_cycle_a") == 0.75
    release.set()
    wait_for(lambda: not s.Robot.is_running(wave))
    s.Robot.run(wave, 3)  # finished: starts again
    wait_for(lambda: ran == [1, 3])


def run_async(s: Student) -> None:
    started = []

    async def spin() -> None:
        started.append(1)
        await s.Actions.sleep(10)

    s.Robot.run(spin)
    wait_for(lambda: started)
    s.Robot.run(spin)
    assert s.said("Robot.run(spin): spin is still running") == 1 and started == [1]


def is_running(s: Student) -> None:
    gate = threading.Event()
    s.Robot.run(gate.wait, 10)
    wait_for(lambda: s.Robot.is_running(gate.wait))
    gate.set()
    wait_for(lambda: not s.Robot.is_running(gate.wait))


def emergency_stop(s: Student) -> None:
    s.Robot.set_value("koala", "duty_cycle_a", 0.5)
    with pytest.raises(StudentCodeStopped):
        s.Robot.emergency_stop()
    assert s.koala.desired("duty_cycle_a") == 0.0
    assert s.said("Robot.emergency_stop(): motors set to 0 and the program stopped") == 1
    with pytest.raises(StudentCodeStopped):  # the program stays stopped: no write gets out
        s.Robot.set_value("koala", "duty_cycle_a", 0.5)
    assert s.koala.desired("duty_cycle_a") == 0.0


def gamepad_number(s: Student) -> None:
    pad1 = s.owner.gamepad(1, create=True)
    pad1.update(1 << BUTTONS.index("button_b"), (0.0, 0.0, 0.5, 0.0), 1.0)
    s.api.match.update(Mode.TELEOP)
    assert s.Gamepad.get_value("button_b", 1) is True
    assert s.Gamepad.get_value("joystick_right_x", 1) == 0.5
    assert s.Gamepad.get_value("button_b", 0) is False


def actions_sleep(s: Student) -> None:
    done = []

    async def nap() -> None:
        await s.Actions.sleep(0.01)
        done.append(True)

    s.Robot.run(nap)
    wait_for(lambda: done)
    with pytest.raises(ExecutionError, match=r"Actions\.sleep takes a number of seconds"):
        asyncio.run(s.Actions.sleep(-1))


def starting_zone(s: Student) -> None:
    s.api.match.update(Mode.AUTO, start_pos="left")
    _renamed(s, "Field.starting_zone", "Match.start_pos", lambda: s.Field.starting_zone)
    assert s.Field.starting_zone == "left"


def robot_sleep(s: Student) -> None:
    done = []

    def nap() -> None:
        s.Robot.sleep(0.01)
        done.append(True)

    s.Robot.run(nap)
    wait_for(lambda: done)


def gamepad_2021(s: Student) -> None:
    s.pad.update(1 << BUTTONS.index("button_a"), (0.0, -0.5, 0.0, 0.0), 1.0)
    s.api.match.update(Mode.TELEOP)
    assert s.Gamepad.get_value("button_a") is True
    assert s.Gamepad.get_value("joystick_left_y", index=0) == -0.5


def keyboard(s: Student) -> None:
    s.keyboard.update(1 << KEYS.index("w"), 1.0)
    s.api.match.update(Mode.TELEOP)
    assert s.Keyboard.get_value("w") is True and s.Keyboard.get_value("a") is False


def modes(s: Student) -> None:
    assert s.Mode.TELEOP == "teleop" and s.Alliance.BLUE == "blue"


def match(s: Student) -> None:
    s.api.match.update(Mode.AUTO, alliance="gold", start_pos="right")
    s.api.match.game_state = "poison_ivy"
    assert (s.Match.mode, s.Match.alliance, s.Match.start_pos) == ("auto", "gold", "right")
    assert s.Match.elapsed >= 0 and s.Match.game_state == "poison_ivy"


def print_2021(s: Student) -> None:
    s.print("hello", 42)
    assert ("info", "hello 42") in s.lines


def short_form_get(s: Student) -> None:
    s.koala.update({"enc_b": -1.5})
    assert s.Robot.get_value("13_42", "enc_b") == -1.5


def short_form_set(s: Student) -> None:
    s.Robot.set_value("13_42", "duty_cycle_b", 0.25)
    assert s.koala.desired("duty_cycle_b") == 0.25


def thread_run(s: Student) -> None:
    seen = []
    s.Robot.run(lambda: seen.append(threading.current_thread().name))
    wait_for(lambda: seen)
    assert seen[0] != threading.main_thread().name


def robot_log(s: Student) -> None:
    s.Robot.log("distance", 12.5)
    assert s.records == [("INFO", "distance: 12.5", {"key": "distance", "value": 12.5},
                          "student.log")]


def start_pos(s: Student) -> None:
    s.api.match.update(Mode.AUTO, start_pos="right")
    _renamed(s, "Robot.start_pos", "Match.start_pos", lambda: s.Robot.start_pos)
    assert s.Robot.start_pos == "right"


def gamepad_c(s: Student) -> None:
    assert len(BUTTONS) == 17 and len(AXES) == 4
    s.api.match.update(Mode.TELEOP)
    for bit, name in enumerate(BUTTONS):
        s.pad.update(1 << bit, (0.0, 0.0, 0.0, 0.0), 1.0)
        assert s.Gamepad.get_value(name) is True
        assert [s.Gamepad.get_value(other) for other in BUTTONS].count(True) == 1
    for index, name in enumerate(AXES):
        axes = [0.0] * 4
        axes[index] = 0.75
        s.pad.update(0, axes, 1.0)
        assert s.Gamepad.get_value(name) == 0.75


C_KEYS = ([*"abcdefghijklmnopqrstuvwxyz", *"0123456789", ",", ".", "/", ";", "'", "[", "]",
           "left_arrow", "right_arrow", "up_arrow", "down_arrow"])


def keyboard_c(s: Student) -> None:
    assert len(C_KEYS) == 47 and sorted(KEYS) == sorted(C_KEYS)
    s.api.match.update(Mode.TELEOP)
    for name in C_KEYS:
        s.keyboard.update(1 << KEYS.index(name), 1.0)
        assert s.Keyboard.get_value(name) is True
        assert s.Keyboard.get_value("a" if name != "a" else "b") is False


def print_stderr(s: Student) -> None:
    s.print("careful", file=sys.stderr)
    assert ("warning", "careful") in s.lines


CHECKS: dict[tuple[str, str], Callable[[Student], None]] = {
    ("2019-20", "Robot.get_value(device, param)"): get_value,
    ("2019-20", "Robot.set_value(device, param, value)"): set_value,
    ("2019-20", "Robot.set_motor(device, value)"): set_motor,
    ("2019-20", "Robot.stop_motor(device)"): stop_motor,
    ("2019-20", "Robot.run(function, *args)"): run,
    ("2019-20", "Robot.is_running(function)"): is_running,
    ("2019-20", "Robot.emergency_stop()"): emergency_stop,
    ("2019-20", "Gamepad.get_value(name, gamepad_number)"): gamepad_number,
    ("2019-20", "Actions.sleep(seconds)"): actions_sleep,
    ("2019-20", "Field.starting_zone"): starting_zone,
    ("2021", "Robot.get_value(device, param)"): get_value,
    ("2021", "Robot.set_value(device, param, value)"): set_value,
    ("2021", "Robot.run(action, *args, timeout=None)"): run_async,
    ("2021", "Robot.is_running(action)"): is_running,
    ("2021", "Robot.sleep(seconds)"): robot_sleep,
    ("2021", "Gamepad.get_value(name, index=0)"): gamepad_2021,
    ("2021", "Keyboard.get_value(key)"): keyboard,
    ("2021", "Actions.sleep(seconds)"): actions_sleep,
    ("2021", "Mode"): modes,
    ("2021", "Match.mode"): match,
    ("2021", "print(...)"): print_2021,
    ("C 2021-25", 'Robot.get_value("<type>_<uid>", param)'): short_form_get,
    ("C 2021-25", 'Robot.set_value("<type>_<uid>", param, value)'): short_form_set,
    ("C 2021-25", "Robot.run(function)"): thread_run,
    ("C 2021-25", "Robot.is_running(function)"): is_running,
    ("C 2021-25", "Robot.sleep(seconds)"): robot_sleep,
    ("C 2021-25", "Robot.log(key, value)"): robot_log,
    ("C 2021-25", "Robot.start_pos"): start_pos,
    ("C 2021-25", "Gamepad.get_value(name)"): gamepad_c,
    ("C 2021-25", "Keyboard.get_value(key)"): keyboard_c,
    ("C 2021-25", "print(..., file=sys.stderr)"): print_stderr,
}


def table_rows() -> list[tuple[str, str]]:
    """(generation, first name) of every row of the compatibility table."""
    text = DOC.read_text()
    table = text[text.index("<!-- compat-table"):].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[3:]:
        generation, name = (cell.strip() for cell in line.strip("|").split("|")[:2])
        rows.append((generation, re.findall(r"`([^`]+)`", name)[0]))
    return rows


def test_every_row_of_the_table_has_a_check_and_every_check_a_row():
    assert table_rows() == list(CHECKS)


@pytest.mark.parametrize("row", list(CHECKS), ids=[" ".join(row) for row in CHECKS])
def test_name(row: tuple[str, str], student: Student) -> None:
    CHECKS[row](student)
