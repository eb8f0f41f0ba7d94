"""Hop timestamps for ``bench/e2e.py --hops``: off (one global check) unless asked for.

With ``RUNTIME_TRACE=DIR`` in its environment, a process appends ``<monotonic ns> <hop>`` lines
to ``DIR/<pid>.trace`` each time the code passes a :func:`hop`. ``CLOCK_MONOTONIC`` is one clock
for every process of the machine, so the bench lines up the hops of the broker, executor and
device services against its own publish and receive times. Never on in a robot's normal run.
"""

from __future__ import annotations

import os
import time
from typing import TextIO

DIRECTORY = os.environ.get("RUNTIME_TRACE") or None
ENABLED = DIRECTORY is not None
_file: TextIO | None = None


_pid = 0


def hop(name: str) -> None:
    """Record that this process passed hop ``name`` now (no-op unless tracing)."""
    if not ENABLED:
        return
    global _file, _pid
    if _file is None or _pid != os.getpid():  # a forked child (the student process) gets its own
        assert DIRECTORY is not None
        _pid = os.getpid()
        _file = open(os.path.join(DIRECTORY, f"{_pid}.trace"), "a",  # noqa: SIM115
                     buffering=1, encoding="ascii")
    _file.write(f"{time.monotonic_ns()} {name}\n")
