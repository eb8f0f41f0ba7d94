"""``bench/stack.py --deployed`` in short: the deployed robot's idle CPU is still measured.

Mosquitto, the four services and four virtual devices on pseudo-terminals start, the devices
are found, and each process's share comes out. No CPU threshold (machines here are noisy).
"""

from __future__ import annotations

import json

import pytest

from tests.bench.runner import run_bench

pytestmark = pytest.mark.slow


def test_the_deployed_idle_cpu_is_measured_per_process() -> None:
    result = run_bench("stack.py", "--deployed", "--runs", "1", "--idle", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == "stack-deployed"
    (run,) = figures["all"]
    shares = run["per_process"]
    assert set(shares) == {"mosquitto", "broker", "device", "executor", "gateway",
                           "devices (not counted)"}
    assert shares["devices (not counted)"] > 0  # the devices ran and streamed
    counted = sum(share for name, share in shares.items() if "not counted" not in name)
    assert run["idle_cpu_percent"] == pytest.approx(counted)
