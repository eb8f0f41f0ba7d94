"""Edges of the executor-liveness reader, each found by a surviving mutant of
``./run mutate shared/runtime/buffer/liveness.py`` (docs/testing.md). The counter is advanced
by hand (``LivenessBuffer.beat``, stamped on the test's clock) and the monitor's clock is the
test's, so nothing here waits.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from runtime.buffer.liveness import LivenessBeat, LivenessMonitor


def _beat_and_monitor(loop: asyncio.AbstractEventLoop) -> tuple[LivenessBeat, LivenessMonitor,
                                                                 list[float]]:
    robot = f"test-{uuid.uuid4().hex[:10]}"
    clock = [100.0]
    return (LivenessBeat(robot, loop, now=clock[0]), LivenessMonitor(robot, clock=lambda: clock[0]),
            clock)


def test_a_frozen_counter_past_the_small_integers_is_seen_as_silence():
    """After a few seconds of beating the counter is past 256, where Python's small-int cache
    ends: counters must be compared by value (``is not`` would call every look a movement)."""
    loop = asyncio.new_event_loop()
    beat, monitor, clock = _beat_and_monitor(loop)
    try:
        for _ in range(1000):
            beat.buffer.beat(clock[0])
        assert monitor.silent_for() == 0.0  # first sight
        clock[0] += 1.0
        assert monitor.silent_for() == 1.0  # the executor froze at 1000: one second of silence
        beat.buffer.beat(clock[0])
        assert monitor.silent_for() == 0.0
    finally:
        monitor.close()
        beat.stop()
        loop.close()


def test_the_first_sight_of_a_counter_is_as_old_as_its_last_beat():
    """A counter seen for the first time, whatever its value (1 included), is as old as the
    stamp of its last beat: a device service (re)started next to a frozen executor sees the
    silence at once, instead of counting its first look as a beat."""
    loop = asyncio.new_event_loop()
    beat, monitor, clock = _beat_and_monitor(loop)
    try:
        beat.buffer.beat(clock[0])  # the counter is 1
        clock[0] = 250.0
        assert monitor.silent_for() == 150.0
    finally:
        monitor.close()
        beat.stop()
        loop.close()


def test_a_segment_never_beaten_is_as_old_as_its_creation():
    loop = asyncio.new_event_loop()
    beat, monitor, clock = _beat_and_monitor(loop)
    try:
        clock[0] += 0.05
        assert monitor.silent_for() == pytest.approx(0.05)
    finally:
        monitor.close()
        beat.stop()
        loop.close()


def test_a_counter_that_moved_between_two_looks_is_as_old_as_its_last_beat():
    """The device service looks twice a second while the match mode holds the motors. An
    executor that beat once after a look and then froze is as silent as its last beat is old
    at the next look (0.3 s here), not 0: otherwise a teleop ``match`` arriving then would
    release the motors of a frozen executor until the next look."""
    loop = asyncio.new_event_loop()
    beat, monitor, clock = _beat_and_monitor(loop)
    try:
        beat.buffer.beat(clock[0])
        assert monitor.silent_for() == 0.0
        clock[0] = 100.1
        beat.buffer.beat(clock[0])  # the last beat: the executor freezes here
        clock[0] = 100.4
        assert monitor.silent_for() == pytest.approx(0.3)
    finally:
        monitor.close()
        beat.stop()
        loop.close()


def test_a_beat_stamped_ahead_of_the_readers_clock_counts_as_now():
    loop = asyncio.new_event_loop()
    beat, monitor, clock = _beat_and_monitor(loop)
    try:
        assert monitor.silent_for() == 0.0
        beat.buffer.beat(clock[0] + 60.0)
        clock[0] += 1.0
        assert monitor.silent_for() == 0.0
    finally:
        monitor.close()
        beat.stop()
        loop.close()


def test_forgiving_restarts_the_silence_whatever_the_last_stamp_says():
    """The whole robot's processes were stopped and continued together (Ctrl-Z, a paused VM):
    the reader's late wake-up forgives, and the executor's last beat, as old as the pause,
    is no evidence against it, even when it moved after the reader's previous look."""
    loop = asyncio.new_event_loop()
    beat, monitor, clock = _beat_and_monitor(loop)
    try:
        assert monitor.silent_for() == 0.0
        beat.buffer.beat(clock[0] + 0.02)  # then everything stops for 5 s
        clock[0] = 105.0
        monitor.forgive()
        assert monitor.silent_for() == 0.0
        clock[0] = 105.3  # and the executor did not come back: silent since the forgiveness
        assert monitor.silent_for() == pytest.approx(0.3)
    finally:
        monitor.close()
        beat.stop()
        loop.close()
