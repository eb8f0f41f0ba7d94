"""Who may change the mode: the estop latch and PiE's field-control rule, as one pure policy.

The caller's role is never read from a payload: it is the request topic, and the broker's ACL
lets each login write only its own topic (``docs/deployment.md``, "Authority"):

- ``rpc/executor/<method>``: a **local operator** (the robot's own command line, or any client
  of a broker without an ACL): full authority;
- ``as/<login>/rpc/executor/<method>``: a client acting as its broker login; the ACL's
  ``pattern write runtime/+/as/%u/rpc/executor/+`` binds ``<login>`` to the authenticated user.
  ``field`` is field control, ``driver`` a driver station; any other login may only read.

Rules (:func:`check_mode_change`):

- estop latches: after ``estop``, auto and teleop are refused until the latch is cleared with
  ``set_mode(..., clear_estop=True)`` by field control or a local operator;
- while field control is connected (``field/presence`` says online), a driver station may only
  stop the robot (idle, estop);
- a driver station never clears the latch.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

OPERATOR = "operator"
FIELD = "field"
DRIVER = "driver"
ROLES = (OPERATOR, FIELD, DRIVER)
STOPS = ("idle", "estop")
CLEAR_HINT = ("field control or a local operator clears it: set_mode(mode, clear_estop=True), "
              "e.g. `runtime mode idle --clear-estop` on the robot")

#: the role of the request being served (set from the request topic by the Dispatcher)
caller_role: contextvars.ContextVar[str] = contextvars.ContextVar("caller_role",
                                                                  default=OPERATOR)


@dataclass(frozen=True)
class ModeRequest:
    """A mode change as the policy sees it."""

    role: str
    mode: str
    clear_estop: bool = False


@dataclass(frozen=True)
class RobotState:
    """What the policy needs to know about the robot."""

    latched: bool
    field_connected: bool


def check_mode_change(request: ModeRequest, state: RobotState) -> str | None:
    """None if ``request`` may happen, else the sentence that refuses it."""
    role, mode = request.role, request.mode
    if role not in ROLES:
        return (f"the login {role!r} may not change the mode: only field control, a driver "
                "station or a local operator may")
    if request.clear_estop and role == DRIVER:
        return f"a driver station cannot clear estop: {CLEAR_HINT}"
    if mode in STOPS:
        return None
    if role == DRIVER and state.field_connected:
        return (f"field control is connected: a driver station may only stop the robot "
                f"(idle or estop), not start {mode}")
    if state.latched and not request.clear_estop:
        return f"estop is latched, so {mode} cannot start: {CLEAR_HINT}"
    return None
