"""``AsyncExecutor``: student actions (``Robot.run``) beside the main loop.

- ``async def`` actions run as tasks on one asyncio loop in its own thread, so they never
  delay ``*_main`` (which runs in the main thread) and ``await Actions.sleep`` is cheap.
- Plain functions run in a thread each (they may block in ``Robot.sleep``).
- One running instance per action function: ``Robot.run`` of an action that is still running
  is refused with an error saying to check ``Robot.is_running`` first. At most
  ``max_actions`` actions live at once.
- :meth:`cancel_all` (every mode change) cancels the tasks and flags the threads: a thread
  action stops at its next ``Robot.sleep`` (which returns at once) or Robot call. An action
  that keeps running anyway (a loop with no Robot call) gets ``StudentCodeStopped`` raised in
  its thread after ``grace`` s, and again until it ends.
- ``timeout=`` limits an action's run time; errors and timeouts go to ``report``.
- A watchdog names an async action that runs for ``STALL`` s without an ``await`` (it holds
  up every other async action).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from runtime.api import StudentCodeStopped
from runtime.exception import ExecutionError, ExecutionTimeout
from runtime.service.executor.request import function_name
from runtime.service.executor.sync import async_raise, interruptible, start_thread

GRACE = 0.5  # seconds a cancelled action has to stop by itself
BEAT = 0.25  # seconds between loop heartbeats
STALL = 1.0  # seconds without a heartbeat before the blocking action is named
REAP_ROUNDS = 20

Report = Callable[[str, BaseException], None]

_current: contextvars.ContextVar[Action | None] = contextvars.ContextVar(
    "runtime_action", default=None
)
_local = threading.local()


@dataclass(eq=False)
class Action:
    """One running action: its function, how it runs, and its stop flag."""

    func: Callable[..., Any]
    name: str
    kind: Literal["async", "thread"]
    timeout: float | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None  # "cancelled" or "timeout"
    task: asyncio.Task[Any] | None = None
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.monotonic)

    def cancel(self, reason: str = "cancelled") -> None:
        if self.reason is None:
            self.reason = reason
        self.cancelled.set()


class AsyncExecutor:
    """Runs actions (see the module docstring). ``start()`` before use, ``close()`` after."""

    def __init__(self, max_actions: int = 128, report: Report | None = None,
                 grace: float = GRACE, stall: float = STALL) -> None:
        self.max_actions = max_actions
        self.grace = grace
        self.stall = stall
        self._report = report or (lambda name, exc: None)
        self._lock = threading.Lock()
        self._running: dict[Any, Action] = {}  # function -> its action (not cancelled)
        self._live: set[Action] = set()  # every action whose code still runs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_ident: int | None = None
        self._closed = False
        self._stopped = threading.Event()
        self._last_beat = time.monotonic()
        self._tasks: dict[Any, Action] = {}  # asyncio task -> its action (for the watchdog)
        self.started_count = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> AsyncExecutor:
        if self._thread is not None:
            return self
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._loop_ident = threading.get_ident()
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="student actions", daemon=True)
        start_thread(self._thread)
        ready.wait()
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._beat)
        watchdog = threading.Thread(target=self._watch, name="actions watchdog", daemon=True)
        start_thread(watchdog)
        return self

    # -- an async action that never awaits holds up every other one -----------------------------
    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        if self._loop is not None and not self._closed:
            self._loop.call_later(min(BEAT, self.stall / 4), self._beat)

    def _watch(self) -> None:
        """Say which async action blocks the loop (no ``await`` for ``STALL`` s), once per
        stall: students write ``while True:`` loops in async actions and forget to await."""
        reported: Action | None = None
        while not self._stopped.wait(min(BEAT, self.stall / 2)):
            stalled = time.monotonic() - self._last_beat
            if stalled < self.stall or self._loop is None:
                reported = None
                continue
            task = asyncio.current_task(self._loop)
            record = self._tasks.get(task) if task is not None else None
            if record is None or record is reported:
                continue
            reported = record
            self._report_error(record, ExecutionError(
                f"async action {record.name} has run for {stalled:.1f} s without an await, so "
                "no other action can run: loops in async actions must "
                "`await Actions.sleep(seconds)`", action=record.name))

    def close(self, timeout: float = 2.0) -> None:
        """Cancel every action and stop the loop (threads still running are left as daemons)."""
        if self._closed:
            return
        self._closed = True
        self._stopped.set()
        self.cancel_all()
        self.wait_idle(timeout)
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> AsyncExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running ------------------------------------------------------------------------------
    def run(self, action: Any, *args: Any, timeout: float | None = None,
            name: str | None = None) -> Action:
        """Start ``action(*args)``: ``async def`` as a task, a plain function in a thread."""
        name = name or function_name(action)
        _check_action(action, name)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, int | float) or not math.isfinite(timeout) or timeout <= 0):
            raise ExecutionError(
                f"timeout of action {name} must be a positive number of seconds, not "
                f"{timeout!r}", action=name, timeout=timeout)
        try:
            inspect.signature(action).bind(*args)
        except TypeError as exc:
            raise ExecutionError(f"cannot run action {name} with {len(args)} argument(s): "
                                 f"{exc}", action=name) from None
        except ValueError:  # builtins without a signature: let the call tell
            pass
        is_async = inspect.iscoroutinefunction(action)
        record = Action(action, name, "async" if is_async else "thread", timeout)
        with self._lock:
            if self._closed or self._loop is None:
                raise ExecutionError("actions cannot start: the executor is not running")
            if action in self._running:
                raise ExecutionError(
                    f"action {name} is already running: one instance per action; check "
                    f"Robot.is_running({name}) before starting it again", action=name)
            if len(self._live) >= self.max_actions:
                raise ExecutionError(
                    f"too many actions running (at most {self.max_actions}): cannot start "
                    f"{name}; let some finish first", action=name, limit=self.max_actions)
            self._running[action] = record
            self._live.add(record)
            self.started_count += 1
        try:
            if is_async:
                coro = action(*args)
                self._loop.call_soon_threadsafe(self._start_task, record, coro)
            else:
                record.thread = threading.Thread(target=self._run_thread, args=(record, args),
                                                 name=f"action {name}", daemon=True)
                start_thread(record.thread)
                if timeout is not None:
                    self._loop.call_soon_threadsafe(self._expire_later, record)
        except BaseException:
            self._finish(record)
            raise
        return record

    def _start_task(self, record: Action, coro: Any) -> None:
        if record.cancelled.is_set():
            coro.close()
            self._finish(record)
            return
        record.task = asyncio.ensure_future(self._drive(record, coro))
        self._tasks[record.task] = record

    async def _drive(self, record: Action, coro: Any) -> None:
        _current.set(record)
        try:
            if record.cancelled.is_set():
                coro.close()
            elif record.timeout is None:
                await coro
            else:
                try:
                    async with asyncio.timeout(record.timeout) as limit:
                        await coro
                except TimeoutError:
                    if not limit.expired():
                        raise
                    record.reason = "timeout"
                    self._report_timeout(record)
        except (asyncio.CancelledError, StudentCodeStopped):
            pass
        except BaseException as exc:  # SystemExit too: never let it reach the loop
            self._report_error(record, exc)
        finally:
            self._finish(record)

    def _run_thread(self, record: Action, args: tuple[Any, ...]) -> None:
        _local.action = record
        try:
            record.func(*args)
        except StudentCodeStopped:
            pass
        except BaseException as exc:
            self._report_error(record, exc)
        finally:
            _local.action = None
            self._finish(record)

    def _expire_later(self, record: Action) -> None:
        assert self._loop is not None and record.timeout is not None
        self._loop.call_later(record.timeout, self._expire, record)

    def _expire(self, record: Action) -> None:
        if not record.done.is_set() and not record.cancelled.is_set():
            record.cancel("timeout")
            self._report_timeout(record)
            self._schedule_reaper()

    def _finish(self, record: Action) -> None:
        if record.task is not None:
            self._tasks.pop(record.task, None)
        with self._lock:
            if self._running.get(record.func) is record:
                del self._running[record.func]
            self._live.discard(record)
        record.done.set()

    def _report_error(self, record: Action, exc: BaseException) -> None:
        try:
            self._report(record.name, exc)
        except Exception:
            pass

    def _report_timeout(self, record: Action) -> None:
        self._report_error(record, ExecutionTimeout(
            f"action {record.name} took longer than {record.timeout:g} s and was stopped",
            action=record.name, timeout=record.timeout))

    # -- state and control ----------------------------------------------------------------------
    def is_running(self, action: Any) -> bool:
        """Whether ``action`` has a running instance (not yet asked to stop)."""
        record = self._running.get(action)
        return record is not None and not record.cancelled.is_set()

    def running(self) -> list[str]:
        """Names of the actions whose code still runs (cancelled ones included)."""
        with self._lock:
            return sorted(record.name for record in self._live)

    def cancel_all(self) -> int:
        """Stop every action (mode change); returns how many were running."""
        with self._lock:
            records = list(self._live)
            self._running.clear()
        for record in records:
            record.cancel()
            if record.kind == "async" and self._loop is not None:
                with contextlib.suppress(RuntimeError):  # loop closed
                    self._loop.call_soon_threadsafe(self._cancel_task, record)
        if records:
            self._schedule_reaper()
        return len(records)

    @staticmethod
    def _cancel_task(record: Action) -> None:
        """In the loop: after ``_start_task`` (same queue), so the task exists if it will."""
        if record.task is not None:
            record.task.cancel()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no action code runs; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                records = list(self._live)
            if not records:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            records[0].done.wait(remaining)

    # -- what the student API needs ---------------------------------------------------------
    def current(self) -> Action | None:
        """The action the calling code belongs to (None: main thread or foreign code)."""
        return getattr(_local, "action", None) or _current.get()

    def check(self) -> None:
        """Raise ``StudentCodeStopped`` if the calling action was asked to stop."""
        record = getattr(_local, "action", None) or _current.get()
        if record is not None and record.cancelled.is_set():
            raise StudentCodeStopped

    @interruptible
    def sleep(self, seconds: float) -> None:
        """``Robot.sleep``: a thread action wakes at once (and stops) when cancelled."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
                seconds >= 0 and math.isfinite(seconds)):
            raise ExecutionError(f"Robot.sleep takes a number of seconds >= 0, not {seconds!r}",
                                 seconds=seconds)
        if threading.get_ident() == self._loop_ident:
            raise ExecutionError(
                "Robot.sleep in an async action would pause every async action: "
                "use `await Actions.sleep(seconds)` there")
        record = getattr(_local, "action", None)
        if record is None:
            time.sleep(seconds)
            return
        if record.cancelled.wait(seconds):
            raise StudentCodeStopped

    # -- stuck actions --------------------------------------------------------------------------
    def _schedule_reaper(self, round_: int = 1) -> None:
        if round_ > REAP_ROUNDS:
            return
        timer = threading.Timer(self.grace, self._reap, args=(round_,))
        timer.daemon = True
        start_thread(timer)

    def _reap(self, round_: int) -> None:
        """Raise ``StudentCodeStopped`` in cancelled actions that are still running."""
        with self._lock:
            stuck = [record for record in self._live if record.cancelled.is_set()]
        if not stuck:
            return
        loop_stuck = any(r.kind == "async" for r in stuck) and not self._loop_responds()
        for record in stuck:
            if record.kind == "thread" and record.thread is not None:
                if record.thread.ident is not None and record.thread.is_alive():
                    async_raise(record.thread.ident, StudentCodeStopped)
            elif loop_stuck and self._loop_ident is not None:
                async_raise(self._loop_ident, StudentCodeStopped)
                loop_stuck = False  # one is enough for this round
        self._schedule_reaper(round_ + 1)

    def _loop_responds(self, timeout: float = 0.1) -> bool:
        if self._loop is None or self._loop.is_closed():
            return True
        probe = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self._loop)
        try:
            probe.result(timeout)
        except concurrent.futures.TimeoutError:
            probe.cancel()
            return False
        return True


def _check_action(action: Any, name: str) -> None:
    """Refuse what cannot be an action, saying what to pass instead."""
    if inspect.iscoroutine(action):
        action.close()
        raise ExecutionError(
            f"Robot.run takes the action function itself: Robot.run({name}), not "
            f"Robot.run({name}())", action=name)
    if not callable(action):
        raise ExecutionError(
            f"Robot.run takes a function (an async def or a plain def), not "
            f"{type(action).__name__}", action=repr(action))
