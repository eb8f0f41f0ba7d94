"""``bench/e2e.py`` in short (a few dozen changes): it still runs and measures every hop.

No timing assertion (machines here are noisy): the figures belong in docs/performance.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_e2e_bench_runs_on_both_brokers_with_hops() -> None:
    result = subprocess.run([sys.executable, str(BENCH / "e2e.py"), "--changes", "24", "--hops"],
                            capture_output=True, text=True, timeout=240, cwd=BENCH)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for broker in ("mosquitto", "embedded"):
        entry = figures[broker]
        assert entry["e2e_ms"]["samples"] == 24, result.stderr[-3000:]
        assert entry["floor_ms"]["samples"] == 24
        assert entry["e2e_ms"]["median"] > 0
        hops = entry["hops"]
        assert "device read DeviceWrite" in hops
