"""``runtime.eventloop`` (uvloop unless told otherwise) and ``runtime.trace`` (hop timestamps
only with ``RUNTIME_TRACE``), each checked in a fresh interpreter: both read the environment
once, at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LOOP_TYPE = """
import asyncio
from runtime import eventloop
async def main():
    return type(asyncio.get_running_loop()).__module__
print(eventloop.run(main()), eventloop.implementation())
"""

HOPS = """
import time
from runtime.trace import hop
before = time.monotonic_ns()
hop("first hop")
hop("second hop")
print(before, time.monotonic_ns())
"""


def run(code: str, cwd: Path | None = None, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("RUNTIME_EVENT_LOOP", "RUNTIME_TRACE")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env={**environment, **env}, check=True, cwd=cwd)
    return result.stdout.strip()


def test_services_run_on_uvloop_by_default() -> None:
    assert run(LOOP_TYPE).split() == ["uvloop", "uvloop"]


def test_the_standard_loop_when_asked() -> None:
    module, name = run(LOOP_TYPE, RUNTIME_EVENT_LOOP="asyncio").split()
    assert module.startswith("asyncio") and name == "asyncio"


def test_hops_are_recorded_with_the_monotonic_clock_only_when_tracing(tmp_path: Path) -> None:
    before, after = map(int, run(HOPS, RUNTIME_TRACE=str(tmp_path)).split())
    files = list(tmp_path.glob("*.trace"))
    assert len(files) == 1
    lines = [line.split(" ", 1) for line in files[0].read_text().splitlines()]
    assert [name for _, name in lines] == ["first hop", "second hop"]
    stamps = [int(stamp) for stamp, _ in lines]
    assert before <= stamps[0] <= stamps[1] <= after


def test_hops_are_a_no_op_without_runtime_trace(tmp_path: Path) -> None:
    code = HOPS + "from runtime import trace\nprint(trace.ENABLED, trace._file)\n"
    assert run(code, cwd=tmp_path).splitlines()[-1] == "False None"
    assert not list(tmp_path.iterdir())
