"""Student code and clients that give numbers and names of absurd size get the API's clear
errors, never a bare ``OverflowError`` / ``ValueError`` from Python's int conversions.

Found by the breaker (on a running robot, in student code):
``Robot.set_value("koala", "duty_cycle_a", 10**400)`` raised ``OverflowError: int too large
to convert to float``; a device named by 5000 digits raised ``ValueError: Exceeds the limit
(4300 digits) for integer string conversion``; ``broker.set_alias("abc", "1" * 5000)`` answered
that ValueError and logged a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime.aliases import AliasFile, check_uid, set_alias
from runtime.api import StudentAPI
from runtime.buffer import BufferStore
from runtime.exception import DeviceError, ParameterError, ProtocolError
from runtime.protocol import parse_uid

KOALA = 13 << 72 | 1 << 64 | 42


@pytest.fixture
def api(robot_name: str, tmp_path: Path) -> Iterator[StudentAPI]:
    set_alias(tmp_path, "koala", str(KOALA))
    with BufferStore(robot_name) as owner:
        owner.create_device(str(KOALA), "KoalaBear").connected = True
        with BufferStore(robot_name) as store:
            student = StudentAPI(store, aliases=AliasFile(tmp_path))
            student.enable()
            yield student


@pytest.mark.parametrize("value", [10**400, -(10**400), 10**5000], ids=["e400", "-e400", "e5000"])
def test_a_number_too_large_for_a_float_param_is_a_parameter_error(api: StudentAPI,
                                                                   value: int) -> None:
    with pytest.raises(ParameterError, match=r"duty_cycle_a takes a number from -1 to 1") as e:
        api.robot.set_value("koala", "duty_cycle_a", value)
    assert str(e.value)  # the message (with its context) can be printed


def test_a_huge_int_for_an_integer_param_is_out_of_bounds(api: StudentAPI) -> None:
    with pytest.raises(ParameterError, match=r"drive_mode_a = an int of \d+ bits is out of "
                                             r"bounds") as e:
        api.robot.set_value("koala", "drive_mode_a", 10**5000)
    assert str(e.value)


@pytest.mark.parametrize("name", ["1" * 5000, "1_" + "1" * 5000, "1" * 5000 + "_1"],
                         ids=["uid", "short-id", "short-type"])
def test_a_device_named_by_thousands_of_digits_is_unknown(api: StudentAPI, name: str) -> None:
    with pytest.raises(DeviceError, match="no device"):
        api.robot.get_value(name, "enc_a")


def test_uid_text_of_thousands_of_digits_is_refused_clearly() -> None:
    with pytest.raises(DeviceError, match="is not a device uid"):
        check_uid("1" * 5000)
    with pytest.raises(ProtocolError, match=r"\(5000 characters\) is not a device uid"):
        parse_uid("1" * 5000)
    assert parse_uid("0" * 30 + "42") == 42  # leading zeros are still a uid
    assert check_uid(str(KOALA)) == str(KOALA)
