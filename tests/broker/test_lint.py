"""lint(): pylint on student code, the student API names known, config around it ignored."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime.exception import ExecutionError
from runtime.service.broker.lint import STUDENT_NAMES, lint

SAMPLE = Path(__file__).parents[2] / "shared" / "runtime" / "sample" / "studentcode.py"

BAD = """\
def teleop_setup():
    print("ready", Mode.TELEOP, Alliance.BLUE, Match, Keyboard.get_value("a"))

def teleop_main():
    speed = Gamepad.get_value("joystick_left_y")
    Robot.set_value("koala", "duty_cycle_a", sped)
    Actions.sleep(1)
"""


async def test_the_sample_program_is_clean() -> None:
    assert await lint(SAMPLE) == []


async def test_a_real_mistake_is_found_and_student_names_are_not_undefined(tmp_path: Path) -> None:
    program = tmp_path / "studentcode.py"
    program.write_text(BAD)
    messages = await lint(program)
    undefined = [m for m in messages if m["symbol"] == "undefined-variable"]
    assert [(m["line"], m["message"]) for m in undefined] == [(6, "Undefined variable 'sped'")]
    assert {"unused-variable"} <= {m["symbol"] for m in messages}
    reported = " ".join(m["message"] for m in messages)
    assert not any(f"'{name}'" in reported for name in STUDENT_NAMES)
    assert all(m["path"] == "studentcode.py" and m["type"] for m in messages)


async def test_configuration_next_to_the_program_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "pylintrc").write_text("[MESSAGES CONTROL]\ndisable=all\n")
    (tmp_path / "pyproject.toml").write_text("[tool.pylint.'MESSAGES CONTROL']\ndisable='all'\n")
    program = tmp_path / "studentcode.py"
    program.write_text(BAD)
    assert any(m["symbol"] == "undefined-variable" for m in await lint(program))


async def test_a_syntax_error_is_a_message_not_a_failure(tmp_path: Path) -> None:
    program = tmp_path / "studentcode.py"
    program.write_text("def teleop_main(:\n    pass\n")
    [message] = await lint(program)
    assert (message["symbol"], message["line"]) == ("syntax-error", 1)


async def test_a_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExecutionError, match="there is no student program to lint at"):
        await lint(tmp_path / "studentcode.py")
