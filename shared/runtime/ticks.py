"""Periodic checks that wake a service together: sleep until the next multiple of a period.

Why: a device service keeps a few periodic checks per Smart Device (the silence watchdog every
250 ms, the write loop's safety pass every 200 ms, a lowcar PING every 250 ms). Each slept its own
period from its own start, so with 4 devices the process woke about 40 times a second for them,
and on an idle robot each wake-up of a sleeping process costs far more than the check itself
(cold caches: docs/performance.md, idle CPU). Sleeping until the next multiple of the period on
the loop's clock puts every check of the same period on the same instants: the process wakes
once per instant, whatever the number of devices (uvloop's clock has millisecond steps, so
equal deadlines are equal timers and run in one loop iteration).

A check slept this way runs at most ``period`` after the previous one (never later than a plain
sleep would), and the first one comes sooner than ``period``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

#: a deadline closer than this to now is taken to be now (the clock sat on a tick): the next one
MIN_SLEEP = 0.001


def next_tick(now: float, period: float) -> float:
    """The first multiple of ``period`` (seconds, > 0) after ``now``, at least ``MIN_SLEEP``
    ahead (a ``now`` that sits on a multiple, or a float just below one, gets the next)."""
    deadline = (math.floor(now / period) + 1) * period
    if deadline - now < MIN_SLEEP:
        deadline += period
    return deadline


def call_at_next_tick(loop: asyncio.AbstractEventLoop, period: float,
                      callback: Callable[[], object]) -> asyncio.TimerHandle:
    """``loop.call_at`` the next multiple of ``period`` (see the module); the timer handle."""
    return loop.call_at(next_tick(loop.time(), period), callback)


async def aligned_sleep(period: float) -> None:
    """Sleep until the running loop's clock reaches its next multiple of ``period`` seconds.
    (A timer at that very deadline, not ``asyncio.sleep(deadline - now)``: the standard loop
    reads its clock again in ``sleep``, and sleepers would wake microseconds apart.)"""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()
    timer = call_at_next_tick(loop, period, lambda: _wake(woken))
    try:
        await woken
    finally:
        timer.cancel()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
