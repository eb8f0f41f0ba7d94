"""Figures every benchmark reports the same way: per-call cost, median / p99 / max."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_call_ns(func: Callable[[], object], calls: int, batch: int = 100) -> list[float]:
    """Per-call cost in ns, timed over batches (one call is below the timer's resolution)."""
    samples = []
    for _ in range(calls // batch):
        start = time.perf_counter_ns()
        for _ in range(batch):
            func()
        samples.append((time.perf_counter_ns() - start) / batch)
    return samples


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (0.0 for no values)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(int(len(ordered) * fraction) - 1, 0))]


def summary(samples: list[float], unit: float = 1.0) -> dict[str, float]:
    """Median, p99 and max of ``samples`` divided by ``unit``, and how many there were."""
    return {
        "median": statistics.median(samples) / unit,
        "p99": percentile(samples, 0.99) / unit,
        "max": max(samples) / unit,
        "samples": len(samples),
    }
