"""``runtime.ticks``: periodic checks sleep to the next multiple of their period, so the checks
of every Smart Device of a service wake the process once, together (docs/performance.md)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from hypothesis import given
from hypothesis import strategies as st
from runtime.ticks import MIN_SLEEP, aligned_sleep, call_at_next_tick, next_tick


@given(now=st.floats(min_value=0.0, max_value=1e7, allow_nan=False),
       period=st.sampled_from([0.02, 0.05, 0.2, 0.25, 1.0, 3.7]))
def test_the_next_tick_is_the_next_multiple_of_the_period(now, period):
    deadline = next_tick(now, period)
    assert MIN_SLEEP * 0.999 <= deadline - now <= period + MIN_SLEEP
    ticks = deadline / period
    assert ticks == pytest.approx(round(ticks), abs=1e-6)


def test_a_clock_sitting_on_a_tick_sleeps_to_the_next_one_not_zero():
    assert next_tick(0.4, 0.2) == pytest.approx(0.6)  # 0.4 / 0.2 is 2.0000000000000004 or so
    assert next_tick(19952.8, 0.2) == pytest.approx(19953.0)


async def _wake_together(count: int, period: float) -> tuple[list[int], list[float]]:
    """``count`` sleepers started at different moments; the order they and a ``call_soon``
    scheduled by the first of them ran, and the loop time each woke at."""
    loop = asyncio.get_running_loop()
    order: list[int] = []
    woke: list[float] = []

    async def sleeper(index: int) -> None:
        await aligned_sleep(period)  # all start from one tick...
        await asyncio.sleep(index * period / (5 * count))  # ...spread over a fifth of a period
        await aligned_sleep(period)
        if not order:
            loop.call_soon(order.append, -1)  # runs after every timer due in this iteration
        order.append(index)
        woke.append(loop.time())

    await asyncio.gather(*(sleeper(index) for index in range(count)))
    return order, woke


def _check_together(order: list[int], woke: list[float], count: int) -> None:
    # every sleeper woke before the callback the first one scheduled: one loop iteration
    assert sorted(order[:count]) == list(range(count)) and order[count] == -1, order
    assert len(woke) == count


async def test_sleepers_of_one_period_wake_in_one_loop_iteration():
    order, woke = await _wake_together(8, 0.5)
    _check_together(order, woke, 8)


def test_sleepers_of_one_period_wake_in_one_iteration_on_uvloop_too():
    order, woke = uvloop.run(_wake_together(8, 0.5))
    _check_together(order, woke, 8)


async def test_a_timer_at_the_next_tick_fires_with_the_sleepers():
    loop = asyncio.get_running_loop()
    fired = asyncio.Event()
    started = loop.time()
    handle = call_at_next_tick(loop, 0.1, fired.set)
    assert handle.when() == pytest.approx(next_tick(started, 0.1), abs=0.002)
    await asyncio.wait_for(fired.wait(), 5)
