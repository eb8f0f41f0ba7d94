"""``bench/e2e.py`` in short (a few dozen changes): it still runs and measures every hop.

No timing assertion (machines here are noisy): the figures belong in docs/performance.md.
"""

from __future__ import annotations

import json

import pytest

from tests.bench.runner import run_bench

pytestmark = pytest.mark.slow


def test_e2e_bench_runs_on_both_brokers_with_hops() -> None:
    result = run_bench("e2e.py", "--changes", "24", "--hops")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for broker in ("mosquitto", "embedded"):
        entry = figures[broker]
        assert entry["e2e_ms"]["samples"] == 24, result.stderr[-3000:]
        assert entry["floor_ms"]["samples"] == 24
        assert entry["floor_raw_ms"]["samples"] == 24  # the bare-socket floor too
        assert entry["publisher"] == "raw"
        assert entry["e2e_ms"]["median"] > 0
        hops = entry["hops"]
        assert "device read DeviceWrite" in hops
