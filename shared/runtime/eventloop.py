"""The event loop every Runtime service runs on: uvloop, unless told otherwise.

uvloop (libuv under asyncio's API) takes each loop turn, socket read and callback in C: on the
gamepad -> motor path every service wakes at least once per change, and the loop is most of what
a wake-up costs in Python (see docs/performance.md). ``RUNTIME_EVENT_LOOP=asyncio`` falls back to
the standard loop (to compare, or should uvloop ever misbehave); so does a machine without
uvloop, which Runtime does not need in order to work.

The embedded amqtt broker (``runtime mqtt-server``, ``runtime up``, the tests' broker) stays on
the standard loop: under uvloop its ``stop()`` once hung past its 10 s limit in a broker-restart
test, and amqtt is not on a robot that runs Mosquitto.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency; the fallback is a safety net
    uvloop = None  # type: ignore[assignment]


def implementation() -> str:
    """``"uvloop"`` or ``"asyncio"``: what :func:`run` and :func:`new_event_loop` use."""
    wanted = os.environ.get("RUNTIME_EVENT_LOOP", "uvloop").strip().lower()
    return "uvloop" if uvloop is not None and wanted != "asyncio" else "asyncio"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The constructor of a new loop of the chosen implementation."""
    if implementation() == "uvloop":
        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return asyncio.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new loop (for a thread that runs its own) of the chosen implementation."""
    return loop_factory()()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
