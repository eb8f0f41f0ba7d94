"""Tell the student why teleop does nothing: "motors held: no driver input", once.

The device service holds every motor at 0 in teleop while no driver input is live (design.md's
safety rules); that is right, but to a student it looks like their code is broken. This small
thread watches the same thing (the gamepad and keyboard buffers: connected and fresh) and says
one console line when teleop starts holding for lack of input and one when input returns. It
only reports: stopping is the device service's job, whatever this process does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

INPUT_FRESH = 0.5  #: seconds (design.md: input older than this counts as none)
CHECK_PERIOD = 0.1

HELD = ("motors held: no driver input (in teleop the motors stay at 0 until a gamepad or "
        "keyboard sends input: is the driver station connected?)")
BACK = "driver input is back: the motors follow your code again"


class DriverInputNotice:
    """Says :data:`HELD` / :data:`BACK` on the student console as teleop input comes and goes."""

    def __init__(self, mode: Callable[[], str], inputs: Callable[[], list[Any]],
                 say: Callable[[str], None], period: float = CHECK_PERIOD) -> None:
        self.mode = mode
        self.inputs = inputs
        self.say = say
        self.period = period
        self.held: bool | None = None  # None: not in teleop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def live(self) -> bool:
        now = time.time()
        return any(buffer.connected and now - buffer.ts < INPUT_FRESH
                   for buffer in self.inputs())

    def check(self) -> None:
        """One look: say a line if teleop's hold state changed since the last one."""
        if self.mode() != "teleop":
            self.held = None
            return
        held = not self.live()
        if held != self.held:
            if held:
                self.say(HELD)
            elif self.held is not None:
                self.say(BACK)
            self.held = held

    def start(self) -> DriverInputNotice:
        self._thread = threading.Thread(target=self._run, name="driver input notice",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.check()
            except Exception:  # a notice is never worth stopping the executor
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
