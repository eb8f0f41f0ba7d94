"""The stop rules as a table: state in, verdict out (``runtime.service.device.safety``)."""

from __future__ import annotations

import pytest
from runtime.constants import INPUT_FRESHNESS, LIVENESS_TIMEOUT
from runtime.service.device.safety import InputState, SafetyState, StopRules

NOW = 1000.0
FRESH = (InputState(connected=True, ts=NOW - 0.1),)
RUNNING = {"executor_online": True, "executor_started": 10.0, "mode_since": 20.0,
           "executor_silent_for": 0.0, "now": NOW}


def state(**changes) -> SafetyState:
    return SafetyState(**{"mode": "auto", **RUNNING, "inputs": FRESH, **changes})


TABLE = [
    # (what, state, allowed, rule, disable)
    ("auto with a live executor", state(), True, None, False),
    ("teleop with fresh input", state(mode="teleop"), True, None, False),
    ("auto needs no driver input", state(inputs=()), True, None, False),
    ("idle", state(mode="idle"), False, "mode", True),
    ("estop", state(mode="estop"), False, "mode", True),
    ("estop wins over everything", state(mode="estop", executor_online=False, inputs=()),
     False, "mode", True),
    ("the executor stated idle before its match came", state(executor_mode="idle"), False,
     "mode", True),
    ("the executor stated estop while teleop drives", state(mode="teleop", executor_mode="estop"),
     False, "mode", True),
    ("a stated start does not release an idle match", state(mode="idle", executor_mode="auto"),
     False, "mode", True),
    ("stated and matched auto", state(executor_mode="auto"), True, None, False),
    ("executor offline", state(executor_online=False), False, "executor-gone", True),
    ("match of the executor's predecessor", state(mode_since=5.0), False, "stale-match", False),
    ("match set the instant the executor started", state(mode_since=10.0), True, None, False),
    ("no liveness counter (executor killed)", state(executor_silent_for=None), False,
     "executor-stuck", True),
    ("counter stopped for the timeout", state(executor_silent_for=LIVENESS_TIMEOUT), False,
     "executor-stuck", True),
    ("counter moved just before the timeout",
     state(executor_silent_for=LIVENESS_TIMEOUT - 0.01), True, None, False),
    ("teleop without any input buffer", state(mode="teleop", inputs=()), False, "no-input",
     False),
    ("teleop with stale input", state(mode="teleop", inputs=(
        InputState(True, NOW - INPUT_FRESHNESS),)), False, "no-input", False),
    ("teleop with fresh input but the driver station gone", state(mode="teleop", inputs=(
        InputState(False, NOW - 0.01),)), False, "no-input", False),
    ("teleop: one live input among dead ones is enough", state(mode="teleop", inputs=(
        InputState(False, NOW), InputState(True, NOW - 5), InputState(True, NOW - 0.2))),
     True, None, False),
    ("a frozen executor holds teleop whatever the input", state(
        mode="teleop", executor_silent_for=1.0), False, "executor-stuck", True),
]


@pytest.mark.parametrize(("what", "given", "allowed", "rule", "disable"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_stop_rule_table(what, given, allowed, rule, disable):
    verdict = StopRules().check(given)
    assert (verdict.allowed, verdict.rule, verdict.disable) == (allowed, rule, disable)
    if not allowed:
        assert rule in str(verdict) and verdict.reason  # the log line names rule and reason


def test_options_move_the_thresholds():
    rules = StopRules(input_freshness=2.0, liveness_timeout=1.0)
    assert rules.check(state(mode="teleop", inputs=(InputState(True, NOW - 1.5),))).allowed
    assert rules.check(state(executor_silent_for=0.9)).allowed
    assert not rules.check(state(executor_silent_for=1.0)).allowed


def test_a_new_mode_is_a_new_verdict():
    """idle -> estop must be a new verdict (the manager sends Disable again on each)."""
    rules = StopRules()
    assert rules.check(state(mode="idle")) != rules.check(state(mode="estop"))
    assert rules.check(state(executor_silent_for=0.3)) == rules.check(
        state(executor_silent_for=0.9))  # a stuck executor is one verdict, not one per check
