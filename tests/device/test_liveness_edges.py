"""Edges of the executor-liveness reader, each found by a surviving mutant of
``./run mutate shared/runtime/buffer/liveness.py`` (docs/testing.md). The counter is advanced
by hand (``LivenessBuffer.beat``) and the monitor's clock is the test's, so nothing here waits.
"""

from __future__ import annotations

import asyncio
import uuid

from runtime.buffer.liveness import LivenessBeat, LivenessMonitor


def _beat_and_monitor(loop: asyncio.AbstractEventLoop) -> tuple[LivenessBeat, LivenessMonitor,
                                                                 list[float]]:
    robot = f"test-{uuid.uuid4().hex[:10]}"
    clock = [100.0]
    return LivenessBeat(robot, loop), LivenessMonitor(robot, clock=lambda: clock[0]), clock


def test_a_frozen_counter_past_the_small_integers_is_seen_as_silence():
    """After a few seconds of beating the counter is past 256, where Python's small-int cache
    ends: counters must be compared by value (``is not`` would call every look a movement)."""
    loop = asyncio.new_event_loop()
    beat, monitor, clock = _beat_and_monitor(loop)
    try:
        for _ in range(1000):
            beat.buffer.beat()
        assert monitor.silent_for() == 0.0  # first sight
        clock[0] += 1.0
        assert monitor.silent_for() == 1.0  # the executor froze at 1000: one second of silence
        beat.buffer.beat()
        assert monitor.silent_for() == 0.0
    finally:
        monitor.close()
        beat.stop()
        loop.close()


def test_the_first_sight_of_any_counter_value_is_movement():
    """A counter seen for the first time counts as moved, whatever its value (1 included)."""
    loop = asyncio.new_event_loop()
    beat, monitor, clock = _beat_and_monitor(loop)
    try:
        beat.buffer.beat()  # the counter is 1
        clock[0] = 250.0
        assert monitor.silent_for() == 0.0
    finally:
        monitor.close()
        beat.stop()
        loop.close()
