"""Lint that knows the robot: each mistake kind is flagged on its line by ``lint()`` (pylint
with the plugin, what ``runtime lint`` and the broker's ``lint`` RPC run) and by upload's check;
the sample program, every program in tests/ and each generation's program stay clean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from runtime.lint import check_source
from runtime.lint.checks import api_members
from runtime.service.broker.lint import lint
from runtime.service.executor.loader import check_source as upload_check

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "shared" / "runtime" / "sample" / "studentcode.py"
KOALA = str(13 << 72 | 1 << 64 | 42)
ALIASES = {"koala": KOALA, "koala_yogi": str(10 << 72 | 3 << 64 | 7),
           "left_motor": str(10 << 72 | 5), "arm": str(13 << 72 | 6)}

MISTAKES = """\
MOTORS = "koala"


async def wave():
    await Actions.sleep(1)


def autonomou_setup():
    Robot.run(wave())


def autonomous_main():
    Robot.run(3)


def teleop_setup():
    wave()
    Robot.get_value("koala", "dutycycle_a")
    Robot.set_value("kaola", "duty_cycle_a", 0.5)
    Robot.set_value(MOTORS, "enc_vel", 0.5)


async def teleop_main():
    Robot.set_vlaue(MOTORS, "duty_cycle_a", Gamepad.get_valu("joystick_left_y"))
    print(Gamepad.get_value("butn_a"), Match.mdoe)
"""
#: (line, symbol, a fragment of the message) of every mistake above
EXPECTED = [
    (8, "robot-mode-misspelled", "autonomou_setup looks like a misspelled autonomous_setup"),
    (9, "robot-run-target", "Robot.run(wave), not Robot.run(wave())"),
    (13, "robot-run-target", "Robot.run needs a function (a def or an async def), not 3"),
    (17, "robot-coroutine-dropped", "wave() does nothing: wave is an async def"),
    (18, "robot-unknown-param", "KoalaBear has no param 'dutycycle_a': did you mean "
                                "duty_cycle_a?"),
    (19, "robot-unknown-device", "no device alias 'kaola' on this robot: did you mean koala?"),
    (20, "robot-unknown-param", "KoalaBear has no param 'enc_vel'"),
    (23, "robot-async-mode-function", "teleop_main is an async def"),
    (24, "robot-unknown-name", "Robot has no set_vlaue: did you mean set_value?"),
    (24, "robot-unknown-name", "Gamepad has no get_valu: did you mean get_value?"),
    (25, "robot-unknown-input", "Gamepad has no button or joystick 'butn_a': did you mean "
                                "button_a?"),
    (25, "robot-unknown-name", "Match has no mdoe: did you mean mode?"),
]


def _found(messages: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    missing = [entry for entry in EXPECTED
               if not any(line == entry[0] and symbol == entry[1] and entry[2] in text
                          for line, symbol, text in messages)]
    assert not missing, f"not flagged: {missing}; flagged: {messages}"
    return messages


async def test_runtime_lint_flags_each_mistake_on_its_line(tmp_path: Path) -> None:
    program = tmp_path / "studentcode.py"
    program.write_text(MISTAKES)
    messages = await lint(program, aliases={"koala": KOALA})
    robot = [(m["line"], m["symbol"], m["message"]) for m in messages
             if m["symbol"].startswith("robot-")]
    _found(robot)
    assert len(robot) == len(EXPECTED)  # and nothing else of ours


async def test_a_missing_mode_is_flagged(tmp_path: Path) -> None:
    program = tmp_path / "studentcode.py"
    program.write_text("def teleop_main():\n    pass\n")
    messages = [(m["line"], m["symbol"], m["message"]) for m in await lint(program)]
    assert (1, "robot-missing-mode", "no autonomous_setup/autonomous_main and no autonomous(): "
            "nothing will run in autonomous") in messages


def test_upload_returns_the_same_findings() -> None:
    warnings = upload_check(MISTAKES, aliases={"koala": KOALA})
    for line, symbol, fragment in EXPECTED:
        if symbol == "robot-async-mode-function":  # said by upload's own shape check
            assert any(f"teleop_main (line {line}) is an async def" in w for w in warnings)
        else:
            assert any(w.startswith(f"line {line}: ") and fragment in w for w in warnings), (
                fragment, warnings)
    clean = upload_check("def teleop():\n    pass\n")  # only autonomous is missing
    assert clean == ["no autonomous_setup/autonomous_main and no autonomous(): nothing will run "
                     "in autonomous"]


def test_without_the_robots_aliases_only_params_are_checked() -> None:
    found = check_source('Robot.get_value("anything", "duty_cycle_a")\n'
                         'Robot.get_value("anything", "dutycycle_a")\n'
                         "def teleop():\n    pass\ndef autonomous():\n    pass\n")
    assert [(f.line, f.message) for f in found] == [
        (2, "no device type has a param 'dutycycle_a': did you mean duty_cycle_a?")]


def test_a_name_the_program_defines_itself_is_its_own() -> None:
    found = check_source("class Robot:\n    pass\nRobot.anything = 1\nprint(Robot.anything)\n"
                         "def teleop():\n    pass\ndef autonomous():\n    pass\n")
    assert found == []


def _defines_mode(source: str, prefix: str) -> bool:
    return bool(re.search(rf"^(async )?def {prefix}(_setup|_main)?\(", source, re.MULTILINE))


PROGRAMS = sorted([SAMPLE, *ROOT.glob("tests/**/programs/*.py")])
#: the findings that are right: these test programs contain the mistake on purpose
ON_PURPOSE = {("async_main.py", 9, "robot-async-mode-function"),
              ("never_awaited.py", 10, "robot-coroutine-dropped")}


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_no_false_positives(path: Path) -> None:
    source = path.read_text()
    for finding in check_source(source, ALIASES):
        if finding.symbol == "robot-missing-mode":  # true when the program lacks the mode
            prefix = "autonomous" if "autonomous" in finding.message else "teleop"
            assert not _defines_mode(source, prefix), finding
            continue
        assert (path.name, finding.line, finding.symbol) in ON_PURPOSE, finding


async def test_the_sample_program_is_clean_with_the_plugin() -> None:
    messages = await lint(SAMPLE, aliases={"koala": KOALA})
    assert messages == []


def test_the_stub_lists_what_the_api_has(robot_name: str) -> None:
    from runtime.api import StudentAPI
    from runtime.buffer import BufferStore

    with BufferStore(robot_name) as store:
        names = StudentAPI(store).names()
    members = api_members()
    assert set(members) | {"print"} == set(names)
    for name, members_of in members.items():
        public = {attr for attr in dir(names[name]) if not attr.startswith("_")}
        if name in ("Mode", "Alliance"):
            assert public <= members_of, name
        else:
            assert public == members_of, name


@pytest.mark.parametrize("name, meant", [
    ("autonomou_setup", "autonomous_setup"), ("teleop_mian", "teleop_main"),
    ("telop_main", "teleop_main"), ("autonomus", "autonomous"), ("teleop_setpu", "teleop_setup"),
])
def test_near_miss_mode_names_are_flagged(name: str, meant: str) -> None:
    found = [f for f in check_source(f"def {name}():\n    pass\n")
             if f.symbol == "robot-mode-misspelled"]
    assert [(f.line, f.message) for f in found] == [
        (1, f"{name} looks like a misspelled {meant}: Runtime calls only the exact names, so "
            "this never runs")]


@pytest.mark.parametrize("name", ["teleop_drive", "setup", "auto_helper", "teleop_loop",
                                  "autonomous_routine", "main"])
def test_helpers_with_mode_like_names_are_not(name: str) -> None:
    assert not [f for f in check_source(f"def {name}():\n    pass\n")
                if f.symbol == "robot-mode-misspelled"]


def test_a_broken_aliases_file_means_aliases_are_not_checked(tmp_path: Path) -> None:
    from runtime.lint import known_aliases

    (tmp_path / "aliases.json").write_text("{not json")
    assert known_aliases(tmp_path) is None
    assert upload_check('Robot.get_value("kaola", "duty_cycle_a")\ndef teleop():\n    pass\n'
                        "def autonomous():\n    pass\n", aliases=known_aliases(tmp_path)) == []
