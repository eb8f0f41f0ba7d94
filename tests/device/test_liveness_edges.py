"""Edges of the executor-liveness reader, each found by a surviving mutant of
``./run mutate shared/runtime/buffer/liveness.py`` (docs/testing.md). The counter is advanced
by hand (``LivenessBuffer.beat``, stamped on the test's clock) and the monitor's clock is the
test's, so nothing here waits.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from runtime.buffer.liveness import LivenessBeat, LivenessMonitor
from runtime.constants import LIVENESS_TIMEOUT

from tests.support.wait import wait_for_async


@pytest.fixture
def watched() -> Iterator[tuple[LivenessBeat, LivenessMonitor, list[float]]]:
    """``(beat, monitor, clock)``: a beat nobody ticks (its loop never runs) and its monitor,
    both on the test's clock (``clock[0]``, seconds; it starts at 100)."""
    loop = asyncio.new_event_loop()
    robot = f"test-{uuid.uuid4().hex[:10]}"
    clock = [100.0]
    beat = LivenessBeat(robot, loop, now=clock[0])
    monitor = LivenessMonitor(robot, clock=lambda: clock[0])
    try:
        yield beat, monitor, clock
    finally:
        monitor.close()
        beat.stop()
        loop.close()


def test_a_frozen_counter_past_the_small_integers_is_seen_as_silence(watched):
    """After a few seconds of beating the counter is past 256, where Python's small-int cache
    ends: counters must be compared by value (``is not`` would call every look a movement)."""
    beat, monitor, clock = watched
    for _ in range(1000):
        beat.buffer.beat(clock[0])
    assert monitor.silent_for() == 0.0  # first sight
    clock[0] += 1.0
    assert monitor.silent_for() == 1.0  # the executor froze at 1000: one second of silence
    beat.buffer.beat(clock[0])
    assert monitor.silent_for() == 0.0


def test_the_first_sight_of_a_counter_is_as_old_as_its_last_beat(watched):
    """A counter seen for the first time, whatever its value (1 included), is as old as the
    stamp of its last beat: a device service (re)started next to a frozen executor sees the
    silence at once, instead of counting its first look as a beat."""
    beat, monitor, clock = watched
    beat.buffer.beat(clock[0])  # the counter is 1
    clock[0] = 250.0
    assert monitor.silent_for() == 150.0


def test_a_segment_never_beaten_is_as_old_as_its_creation(watched):
    _, monitor, clock = watched
    clock[0] += 0.05
    assert monitor.silent_for() == pytest.approx(0.05)


def test_a_counter_that_moved_between_two_looks_is_as_old_as_its_last_beat(watched):
    """The device service looks twice a second while the match mode holds the motors. An
    executor that beat once after a look and then froze is as silent as its last beat is old
    at the next look (0.3 s here), not 0: otherwise a teleop ``match`` arriving then would
    release the motors of a frozen executor until the next look."""
    beat, monitor, clock = watched
    beat.buffer.beat(clock[0])
    assert monitor.silent_for() == 0.0
    clock[0] = 100.1
    beat.buffer.beat(clock[0])  # the last beat: the executor freezes here
    clock[0] = 100.4
    assert monitor.silent_for() == pytest.approx(0.3)


def test_a_beat_stamped_ahead_of_the_readers_clock_counts_as_now(watched):
    beat, monitor, clock = watched
    assert monitor.silent_for() == 0.0
    beat.buffer.beat(clock[0] + 60.0)
    clock[0] += 1.0
    assert monitor.silent_for() == 0.0


def test_forgiving_restarts_the_silence_whatever_the_last_stamp_says(watched):
    """The whole robot's processes were stopped and continued together (Ctrl-Z, a paused VM):
    the reader's late wake-up forgives, and the executor's last beat, as old as the pause,
    is no evidence against it, even when it moved after the reader's previous look."""
    beat, monitor, clock = watched
    assert monitor.silent_for() == 0.0
    beat.buffer.beat(clock[0] + 0.02)  # then everything stops for 5 s
    clock[0] = 105.0
    monitor.forgive()
    assert monitor.silent_for() == 0.0
    clock[0] = 105.3  # and the executor did not come back: silent since the forgiveness
    assert monitor.silent_for() == pytest.approx(0.3)


async def test_a_stated_stop_slows_the_beat_and_a_stated_start_beats_at_once():
    """While the executor has stated idle or estop the mode holds the motors whatever the
    counter says, so it beats every ``held_period``; stating auto or teleop beats at once (the
    beat its ``match`` is dated by) and brings the short period back."""
    loop = asyncio.get_running_loop()
    robot = f"test-{uuid.uuid4().hex[:10]}"
    beat = LivenessBeat(robot, loop, period=0.02, held_period=30.0).start()
    monitor = LivenessMonitor(robot)
    try:
        assert beat.next_period == 0.02  # nothing stated yet: the short period
        beat.state_mode("idle")
        assert beat.next_period == 30.0
        counter = beat.buffer.counter
        await wait_for_async(lambda: beat.buffer.counter > counter)  # the tick already due...
        held = beat.buffer.counter
        assert beat._handle is not None
        assert beat._handle.when() - loop.time() > 20.0  # ...then the next in 30 s
        beat.state_mode("teleop")
        assert beat.buffer.counter == held + 1 and beat.buffer.mode == "teleop"
        assert monitor.silent_for() < LIVENESS_TIMEOUT
        assert beat.next_period == 0.02 and beat._handle.when() - loop.time() <= 0.02
        await wait_for_async(lambda: beat.buffer.counter > held + 1)  # beating again
        beat.state_mode("estop")
        assert beat.next_period == 30.0
    finally:
        monitor.close()
        beat.stop()
