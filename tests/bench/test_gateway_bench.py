"""``bench/gateway.py --quick`` on both brokers: it still runs to the end and prints its JSON.

It once hung silently (``runtime up`` refused to start beside the bench's own gateway and the
bench waited for it forever); now every wait has a deadline, and this test keeps it running.
No timing assertion (machines here are noisy): the figures belong in docs/performance.md.
"""

from __future__ import annotations

import json

import pytest

from tests.bench.runner import run_bench

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("broker", [[], ["--embedded"]], ids=["mosquitto", "embedded"])
def test_gateway_bench_measures_both_paths_and_reconnects(broker: list[str]) -> None:
    result = run_bench("gateway.py", "--quick", *broker)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == "gateway"
    for path in ("gateway_ms", "mqtt_ms"):
        assert figures[path]["samples"] == 30, result.stdout
        assert figures[path]["median"] > 0
    reconnects = figures["reconnects"]
    assert reconnects["count"] == 10
    assert set(reconnects["before"]) == set(reconnects["after"]) == {
        "open_files", "threads", "rss_kb"}
