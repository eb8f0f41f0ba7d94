"""The status line of ``runtime drive``: is the robot there, and what is it doing?

What a driver must see at a glance: the broker connection, the round-trip time of a call to
the executor (asked every ``PROBE_PERIOD`` s), the mode, whether the student code is running,
stopped or has failed, and how many devices are connected. When the executor has not answered
for ``STALE_AFTER`` s the line turns red and says so: the last known mode is shown as the last
known, never as the current one.

Sources, all of the contract: ``executor.get_mode`` (answer = alive, the mode), the retained
``match``, ``log/student`` (an error record since the mode started = the code failed) and the
retained ``device/<uid>/info`` (the device count). Pure state in, a line out; the driver loop
feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROBE_PERIOD = 0.5
PROBE_TIMEOUT = 1.0
STALE_AFTER = 1.5
RED = "\033[1;31m"
GREEN = "\033[32m"
RESET = "\033[0m"
ERROR_LEVELS = ("error", "critical")


@dataclass
class RobotStatus:
    """What ``runtime drive`` knows of the robot."""

    connected: bool = False
    rtt: float | None = None  # seconds, of the last answered probe
    answered_at: float | None = None  # monotonic time of the last answer
    mode: str | None = None
    since: float = 0.0  # wall-clock start of the mode (``match.since``)
    code_error: str | None = None  # last line (the exception) of the student's first error
    devices: set[str] = field(default_factory=set)

    def answered(self, now: float, rtt: float, match: dict[str, object]) -> None:
        """A probe answered after ``rtt`` s with the executor's ``match``."""
        self.answered_at, self.rtt = now, rtt
        self.on_match(str(match.get("mode")), float(match.get("since") or 0.0))  # type: ignore[arg-type]

    def on_match(self, mode: str, since: float) -> None:
        if (mode, since) != (self.mode, self.since):
            self.code_error = None  # a new run: no error yet
        self.mode, self.since = mode, since

    def on_student_log(self, level: str, message: str, ts: float) -> None:
        if level.lower() in ERROR_LEVELS and ts >= self.since and self.code_error is None:
            self.code_error = (message.strip().splitlines() or ["error"])[-1]

    def on_device(self, uid: str, present: bool) -> None:
        if present:
            self.devices.add(uid)
        else:
            self.devices.discard(uid)

    def alive(self, now: float) -> bool:
        return (self.connected and self.answered_at is not None
                and now - self.answered_at <= STALE_AFTER)

    def code_state(self) -> str:
        if self.mode in ("auto", "teleop"):
            return f"code ERROR: {self.code_error}" if self.code_error else "code running"
        return "code stopped"

    def line(self, now: float, colour: bool = True) -> str:
        """The status, coloured (green alive, red not answering) when ``colour``."""
        red, green, reset = (RED, GREEN, RESET) if colour else ("", "", "")
        if not self.connected:
            return f"{red}NO BROKER CONNECTION (reconnecting){reset}"
        if not self.alive(now):
            since = ("never answered" if self.answered_at is None
                     else f"not answering for {now - self.answered_at:.0f} s")
            last = f", last mode {self.mode}" if self.mode else ""
            return f"{red}ROBOT {since.upper()}{last}{reset}"
        count = len(self.devices)
        rtt = f"{self.rtt * 1000:.1f} ms" if self.rtt is not None else "?"
        code = self.code_state()
        if self.code_error and colour:
            code = f"{red}{code}{reset}{green}"
        return (f"{green}connected, rtt {rtt}, {(self.mode or '?').upper()}, {code}, "
                f"{count} device{'s' * (count != 1)}{reset}")
