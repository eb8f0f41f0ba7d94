"""``StopRules``: may the motors move now? One small pure class (state in, verdict out, no I/O).

In the spirit of WPILib's ``MotorSafety``: the policy (this module) is apart from the mechanism
(the device service's manager sends the zeros and the Disables), so the policy is a plain
function of a :class:`SafetyState` and is tested as a table (``tests/device/test_stop_rules.py``).

The rules, in the order they are checked (the first that holds the motors names the verdict):

=================  ==========================================================  =========
rule               holds the motors when                                       Disable
=================  ==========================================================  =========
``mode``           the match mode is not auto or teleop (idle, estop), or the     yes
                   executor already stated idle/estop in shared memory (its
                   liveness segment: the stop arrives before ``match`` does)
``executor-gone``  the executor's retained status is not ``online``            yes
``stale-match``    the retained ``match`` predates the running executor        no
                   (``match.since < status.started``): set by its predecessor
``executor-stuck`` the executor's liveness counter (``runtime.buffer.liveness``)  yes
                   has not advanced for ``liveness_timeout`` (frozen, killed,
                   deadlocked: a frozen process never sends a last will)
``no-input``       teleop without live driver input: no gamepad or keyboard    no
                   buffer both connected and updated within ``INPUT_FRESHNESS``
                   (a dead broker service cannot clear ``connected``, so only
                   freshness counts it out)
=================  ==========================================================  =========

"Disable" says whether entering the rule also sends Disable (a stop), or only holds motor params
at 0 until the rule passes (teleop input that returns resumes driving at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runtime.constants import INPUT_FRESHNESS, LIVENESS_TIMEOUT, RUNNING_MODES


@dataclass(frozen=True)
class InputState:
    """One driver-input buffer as the device service read it."""

    connected: bool
    ts: float  #: UNIX seconds of its last input


@dataclass(frozen=True)
class SafetyState:
    """Everything the stop rules look at, read by the caller at ``now`` (UNIX seconds)."""

    mode: str = "idle"
    mode_since: float = 0.0
    executor_online: bool = False
    executor_started: float = 0.0
    #: Seconds since the executor's liveness counter last moved; None: no counter at all.
    executor_silent_for: float | None = None
    #: The mode the executor's control process stated in shared memory (None: not stated, no
    #: executor). It leads the retained ``match`` by a broker round trip; only a stop counts.
    executor_mode: str | None = None
    inputs: Sequence[InputState] = field(default_factory=tuple)
    now: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """The rules' answer: motors allowed, or held by ``rule`` (with a sentence saying why)."""

    allowed: bool
    rule: str | None = None
    reason: str = ""
    disable: bool = False  #: the holding rule also wants a Disable sent

    def __str__(self) -> str:
        return "motors allowed" if self.allowed else f"rule {self.rule}: {self.reason}"


ALLOWED = Verdict(True)


class StopRules:
    """The stop rules (see the module docstring); ``check(state)`` is the whole interface."""

    RULES = ("mode", "executor-gone", "stale-match", "executor-stuck", "no-input")
    DISABLING = frozenset({"mode", "executor-gone", "executor-stuck"})

    def __init__(self, input_freshness: float = INPUT_FRESHNESS,
                 liveness_timeout: float = LIVENESS_TIMEOUT) -> None:
        self.input_freshness = input_freshness
        self.liveness_timeout = liveness_timeout

    def input_live(self, state: SafetyState) -> bool:
        """Is some driver station sending input: a buffer connected *and* fresh?"""
        return any(i.connected and state.now - i.ts < self.input_freshness for i in state.inputs)

    def check(self, state: SafetyState) -> Verdict:
        """The verdict for ``state``: the first rule that holds the motors, or allowed."""
        mode = state.mode
        if state.executor_mode is not None and state.executor_mode not in RUNNING_MODES:
            mode = state.executor_mode  # the executor stopped: ``match`` is on its way
        if mode not in RUNNING_MODES:
            return self._held("mode", f"the mode is {mode}")
        if not state.executor_online:
            return self._held("executor-gone", "the executor is offline")
        if state.mode_since < state.executor_started:
            return self._held("stale-match", f"the {state.mode} mode was set by an executor "
                              "that has since restarted; waiting for the executor's own mode")
        silent = state.executor_silent_for
        if silent is None or silent >= self.liveness_timeout:
            return self._held("executor-stuck", "the executor is not running (no liveness "
                              "counter)" if silent is None else "the executor's liveness counter "
                              f"stopped for {self.liveness_timeout:g} s (frozen or stuck)")
        if state.mode == "teleop" and not self.input_live(state):
            return self._held("no-input", "teleop without driver input (no gamepad or keyboard "
                              f"input for {self.input_freshness:g} s)")
        return ALLOWED

    def _held(self, rule: str, reason: str) -> Verdict:
        return Verdict(False, rule, reason, rule in self.DISABLING)
