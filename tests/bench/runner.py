"""Run a bench script as a user would, and never leave its robot behind.

A bench starts brokers and ``runtime`` services of its own. If it overran its deadline and only
the bench process were killed, those would live on (holding ports and shared memory) and
disturb every later test; so the bench runs in a process group of its own, and the whole group
is killed when the deadline passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python bench/<script> <args>`` from ``bench/``; AssertionError with its output tail if
    it does not finish within ``timeout`` seconds (its whole process group is killed first)."""
    argv = [sys.executable, str(BENCH / script), *args]
    process = subprocess.Popen(argv, cwd=BENCH, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"{script} {' '.join(args)} did not finish within {timeout:g} s; "
                             f"its output ends:\n{out[-1500:]}\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(argv, process.returncode, out, err)
