"""Wait for a condition with a deadline: the only way tests here synchronise (no sleeps).

Deadlines are generous (10 s default) because the suite shares two slow cores with other
suites; a passing test returns as soon as the condition holds.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str | Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    ``AssertionError`` with ``message`` (a string or a function building one, so it can show
    the last state) when it is still falsy after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_message(message, predicate, timeout))
        time.sleep(interval)


async def wait_for_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str | Callable[[], str] | None = None,
) -> T:
    """``wait_for`` for async tests: ``predicate`` may be sync or async; the loop keeps running."""
    deadline = time.monotonic() + timeout
    while True:
        value: Any = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_message(message, predicate, timeout))
        await asyncio.sleep(interval)


def _message(message: str | Callable[[], str] | None, predicate: Any, timeout: float) -> str:
    if callable(message):
        message = message()
    name = getattr(predicate, "__qualname__", repr(predicate))
    return f"{message or 'condition ' + name + ' never held'} (waited {timeout:g} s)"
