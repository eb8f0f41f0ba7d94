"""``TaskSet``: background tasks that are kept referenced, logged when they fail, and cancelled
together.

asyncio keeps only weak references to tasks, so a task nobody holds can vanish mid-run, and an
exception in a task nobody awaits is reported only when it is garbage-collected, if ever. A
``TaskSet`` holds each task until it ends, logs an unexpected exception at once (naming the
task), and ``await tasks.cancel_all()`` stops them all, for a clean shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """``tasks.spawn(coro, name=...)``; ``await tasks.cancel_all()``."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task held by this set until it ends."""
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        return self.add(task)

    def add(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Hold a task started elsewhere (e.g. ``asyncio.current_task()`` of a server handler)."""
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def cancel_all(self) -> None:
        """Cancel every task and wait until they have all ended (all but the caller's own task,
        when it is one of them: a task that cancels its siblings on the way out, e.g. a device
        session closing itself, goes on to finish its own work)."""
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))
