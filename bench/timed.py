"""What the latency benches share: a KoalaBear that timestamps DeviceWrites, and deadlines.

Every bench that times "something happened -> the DeviceWrite reached the device" needs the
same device: a virtual KoalaBear that notes, on the monotonic clock (one clock for every process
of the machine, so trace files line up with it), when the write it is waiting for arrives. One
class here instead of one per bench, so they all time the same moment (the write decoded by the
device, just before it applies the values).

And every wait in a bench has a deadline and says what it waited for: a bench that hangs
silently (a robot that refused to start, a port that never opened) is worse than one that
fails in one line.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from runtime.virtual import VirtualDevice

#: How close a written float must be to the expected value (float32 on the wire).
TOLERANCE = 1e-4


class TimedKoala(VirtualDevice):
    """A KoalaBear that notes when the DeviceWrite it waits for arrives (``arrival_ns``).

    :meth:`expect` names a value of ``param`` to wait for (the first write carrying it counts;
    later ones do not move ``arrival_ns``), :meth:`expect_any` the next DeviceWrite of any kind;
    :meth:`arrival` waits for it, with a deadline. Once it arrived, nothing is expected.
    """

    def __init__(self, uid: str | int | None = None, param: str = "duty_cycle_a") -> None:
        super().__init__("KoalaBear", uid)
        self.param = param
        self.expected: float | None = None
        self.any_write = False
        self.arrival_ns = 0
        self.arrived = asyncio.Event()

    def expect(self, value: float) -> None:
        """Wait for a DeviceWrite of ``value`` to :attr:`param`."""
        self.expected, self.any_write = value, False
        self.arrived.clear()

    def expect_any(self) -> None:
        """Wait for the next DeviceWrite, whatever it writes."""
        self.expected, self.any_write = None, True
        self.arrived.clear()

    async def arrival(self, timeout: float, what: str) -> int:
        """``arrival_ns`` of the write :meth:`expect` named; ``TimeoutError`` naming ``what``."""
        try:
            await asyncio.wait_for(self.arrived.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{what}: no DeviceWrite reached the device within "
                               f"{timeout:g} s") from None
        return self.arrival_ns

    def _apply(self, written: dict[str, Any]) -> None:
        value = written.get(self.param)
        if self.any_write or (self.expected is not None and value is not None
                              and abs(value - self.expected) < TOLERANCE):
            self.arrival_ns = time.monotonic_ns()
            self.expected, self.any_write = None, False
            self.arrived.set()
        super()._apply(written)


async def until(predicate: Callable[[], Any | Awaitable[Any]], timeout: float, what: str,
                abort: Callable[[], str | None] | None = None, interval: float = 0.05) -> Any:
    """Poll ``predicate`` (sync or async) until it is truthy and return its value.

    ``SystemExit`` saying "timed out after N s waiting for <what>" when it is still falsy after
    ``timeout`` seconds, or at once with the reason ``abort()`` returns (e.g. "runtime up
    exited" and its log): a bench stops with a reason instead of hanging.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        reason = abort() if abort is not None else None
        if reason:
            raise SystemExit(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
