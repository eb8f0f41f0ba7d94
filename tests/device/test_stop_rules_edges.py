"""Edges of the stop rules that the rule table did not pin down, each found by a surviving
mutant of ``./run mutate services/device/safety.py`` (docs/testing.md)."""

from __future__ import annotations

from runtime.constants import INPUT_FRESHNESS
from runtime.service.device.safety import InputState, SafetyState, StopRules

NOW = 1000.0


def state(**changes) -> SafetyState:
    base = {"mode": "auto", "executor_online": True, "executor_started": 10.0,
            "mode_since": 20.0, "executor_silent_for": 0.0, "now": NOW,
            "inputs": (InputState(connected=True, ts=NOW - 0.1),)}
    return SafetyState(**{**base, **changes})


def test_a_mode_decoded_from_the_wire_is_compared_by_value():
    """``match`` arrives as CBOR: its mode is a new string object, not the interned literal."""
    decoded = "".join(["tele", "op"])
    assert decoded == "teleop" and decoded is not "teleop"  # noqa: F632 (the point of the test)
    verdict = StopRules().check(state(mode=decoded, inputs=()))
    assert (verdict.allowed, verdict.rule) == (False, "no-input")


def test_input_long_past_its_freshness_is_not_live():
    old = InputState(connected=True, ts=NOW - 4 * INPUT_FRESHNESS)
    assert not StopRules().input_live(state(inputs=(old,)))
    assert StopRules().check(state(mode="teleop", inputs=(old,))).rule == "no-input"


def test_the_reason_says_whether_the_counter_is_missing_or_stopped():
    rules = StopRules()
    missing = rules.check(state(executor_silent_for=None))
    stopped = rules.check(state(executor_silent_for=1.0))
    assert "no liveness counter" in missing.reason and "stopped for" not in missing.reason
    assert "stopped for" in stopped.reason and "no liveness counter" not in stopped.reason
