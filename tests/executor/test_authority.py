"""The mode-change policy (authority.py) as a table: who may do what, latched or not, with
field control connected or not. The broker's side (which login may write which topic) is
tests/deploy/test_security.py."""

from __future__ import annotations

import pytest
from runtime.service.executor.authority import (
    DRIVER,
    FIELD,
    OPERATOR,
    ModeRequest,
    RobotState,
    check_mode_change,
)

FREE = RobotState(latched=False, field_connected=False)
LATCHED = RobotState(latched=True, field_connected=False)
FIELD_ON = RobotState(latched=False, field_connected=True)
LATCHED_FIELD_ON = RobotState(latched=True, field_connected=True)

ALLOWED = None

TABLE = [
    # role, mode, clear_estop, state -> refusal fragment (None: allowed)
    (DRIVER, "teleop", False, FREE, ALLOWED),
    (DRIVER, "auto", False, FREE, ALLOWED),
    (DRIVER, "estop", False, FREE, ALLOWED),
    (DRIVER, "teleop", False, LATCHED, "estop is latched"),
    (DRIVER, "idle", False, LATCHED, ALLOWED),
    (DRIVER, "idle", True, LATCHED, "a driver station cannot clear estop"),
    (DRIVER, "teleop", True, LATCHED, "a driver station cannot clear estop"),
    (DRIVER, "teleop", False, FIELD_ON, "field control is connected"),
    (DRIVER, "auto", False, FIELD_ON, "field control is connected"),
    (DRIVER, "idle", False, FIELD_ON, ALLOWED),
    (DRIVER, "estop", False, LATCHED_FIELD_ON, ALLOWED),
    (FIELD, "auto", False, FIELD_ON, ALLOWED),
    (FIELD, "auto", False, LATCHED_FIELD_ON, "estop is latched"),
    (FIELD, "auto", True, LATCHED_FIELD_ON, ALLOWED),
    (FIELD, "idle", True, LATCHED, ALLOWED),
    (OPERATOR, "teleop", False, LATCHED, "estop is latched"),
    (OPERATOR, "teleop", True, LATCHED, ALLOWED),
    (OPERATOR, "teleop", False, FIELD_ON, ALLOWED),
    ("monitor", "idle", False, FREE, "the login 'monitor' may not change the mode"),
    ("broker", "teleop", False, FREE, "may not change the mode"),
]


@pytest.mark.parametrize("role, mode, clear, state, refusal", TABLE)
def test_who_may_change_the_mode(role, mode, clear, state, refusal):
    verdict = check_mode_change(ModeRequest(role, mode, clear), state)
    if refusal is None:
        assert verdict is None
    else:
        assert verdict is not None and refusal in verdict


def test_a_latched_refusal_says_how_to_clear_it():
    verdict = check_mode_change(ModeRequest(DRIVER, "teleop"), LATCHED)
    assert verdict is not None
    assert "field control or a local operator" in verdict and "--clear-estop" in verdict
