"""Per-hop breakdowns of a path through several processes (``RUNTIME_TRACE``, ``runtime.trace``).

Each process appends ``<monotonic ns> <hop>`` lines while tracing; a bench marks when it started
each sample and when the sample arrived (``marks``), and :func:`breakdown` lines the hops up.
Used by ``bench/e2e.py --hops`` (gamepad -> DeviceWrite) and ``bench/stop.py --hops``
(set_mode -> Disable).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stats import percentile


def figures(samples_ms: list[float]) -> dict[str, float]:
    """Median, p90, p99 and max of ``samples_ms`` (ms, rounded to us), and how many."""
    ordered = sorted(samples_ms)
    return {"median": round(ordered[len(ordered) // 2], 3),
            "p90": round(percentile(ordered, 0.90), 3),
            "p99": round(percentile(ordered, 0.99), 3),
            "max": round(ordered[-1], 3), "samples": len(ordered)}


def breakdown(trace_dir: Path, marks: list[tuple[int, int]], chain: Sequence[str],
              arrival: str) -> dict[str, dict[str, Any]]:
    """Per hop: ms from the sample's start to it (``at``) and from the hop before (``step``).

    Each sample is followed along ``chain`` (hop names as in ``runtime.trace.hop``): a hop is
    the first event of its name after the previous hop found (so a periodic call or a poll
    between samples is not taken for this sample's), before the sample arrived (the bench's
    mark, shown as ``arrival``). A hop a sample did not pass (the executor called
    ``teleop_main`` on its tick, not woken early) is left out of that sample.
    """
    events: dict[str, list[int]] = {}
    for file in trace_dir.glob("*.trace"):
        for line in file.read_text().splitlines():
            stamp, _, name = line.partition(" ")
            if stamp.isdigit():
                events.setdefault(name, []).append(int(stamp))
    for stamps in events.values():
        stamps.sort()
    at: dict[str, list[float]] = {}
    step: dict[str, list[float]] = {}
    for start, end in marks:
        previous = start
        for name in (*chain, arrival):
            if name == arrival:
                stamp: int | None = end
            else:
                stamps = events.get(name, [])
                index = bisect.bisect_left(stamps, previous)
                stamp = stamps[index] if index < len(stamps) and stamps[index] <= end else None
            if stamp is None:
                continue
            at.setdefault(name, []).append((stamp - start) / 1e6)
            step.setdefault(name, []).append((stamp - previous) / 1e6)
            previous = stamp
    return {name: {"at": figures(at[name]), "step": figures(step[name])}
            for name in (*chain, arrival) if name in at}
