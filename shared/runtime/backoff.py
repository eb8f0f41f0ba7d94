"""``Backoff``: how long to wait before the next attempt after a failure (exponential, capped).

One rule for every retry loop (the MQTT connection, probing a device again, restarting a
service): start small so a short glitch costs little, double on each failure so a long outage
costs little, cap it so recovery is noticed soon, and start over after a success.
"""

from __future__ import annotations

import asyncio


def backoff_delay(failures: int, first: float, maximum: float, factor: float = 2.0) -> float:
    """The delay after ``failures`` consecutive failures (1, 2, ...): ``first``, doubling, capped
    at ``maximum``. (``Backoff`` counts the failures for you.)"""
    return min(maximum, first * factor ** max(0, failures - 1))


class Backoff:
    """``delay = backoff.next()`` after each failure; ``backoff.reset()`` after a success."""

    def __init__(self, first: float = 0.1, maximum: float = 1.0, factor: float = 2.0) -> None:
        if not 0 < first <= maximum or factor < 1:
            raise ValueError(f"bad backoff: first={first}, maximum={maximum}, factor={factor}")
        self.first = first
        self.maximum = maximum
        self.factor = factor
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt (grows for the one after)."""
        self.failures += 1
        return backoff_delay(self.failures, self.first, self.maximum, self.factor)

    async def sleep(self) -> None:
        """``await asyncio.sleep(self.next())``."""
        await asyncio.sleep(self.next())

    def reset(self) -> None:
        """A success: the next failure waits ``first`` again."""
        self.failures = 0
