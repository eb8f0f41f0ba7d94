"""``SyncExecutor``: student ``*_setup`` / ``*_main`` in the main thread, under a time limit.

Why the main thread: only the main thread receives Python signal handlers, and a signal is the
one way to stop pure Python code that never returns (``while True: pass``). Each call arms
``setitimer(ITIMER_REAL)``; at the deadline SIGALRM's handler raises :class:`Overrun` inside the
student's code, which the executor turns into "teleop_main took longer than 0.02 s". Another
thread (the control channel's, on a stop) stops a running call with :meth:`interrupt`:
``pthread_kill(main, SIGUSR1)``, whose handler raises ``StudentCodeStopped`` when
``should_stop()`` says a stop is wanted. Both exceptions are ``BaseException``s, so a student's
``except Exception`` does not swallow them, and the timer keeps re-firing every
:data:`REPEAT` s until the call is over. If the student's code swallows that too (a bare
``except:`` inside a loop), every later signal also installs a trace function that raises
the same exception at the next line the student's code runs: that line is inside the handler
that swallowed it, so this time it escapes. (Python removes a trace function that raised,
hence one per signal.)

Periodic requests keep their rate: ticks are on a fixed grid (``start + n * period``), a call
that overruns is interrupted at its limit and reported, and the next tick still happens (ticks
already missed are skipped, the grid does not drift). Between ticks the ``wait`` hook sleeps; it
may return early ("wake": driver input changed) for one extra call, or "stop".

Threads the executor starts must not receive these signals (a signal delivered to another
thread does not interrupt the main thread's blocking calls): :func:`start_thread` starts a thread
with them blocked.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

import runtime
import runtime.service
from runtime.api import StudentCodeStopped
from runtime.exception import ExecutionError, ExecutionTimeout
from runtime.service.executor.request import ExecutionRequest, Outcome, function_name
from runtime.trace import hop

REPEAT = 0.05  #: seconds between re-raises once a call must end
DEFER = 0.001  #: retry delay when a signal lands in Runtime's own code
EXECUTOR_SIGNALS = (signal.SIGALRM, signal.SIGUSR1)

RUNTIME_DIRS = tuple(
    os.path.dirname(module.__file__) + os.sep for module in (runtime, runtime.service)
    if module.__file__
)
SAMPLE_DIR = RUNTIME_DIRS[0] + "sample" + os.sep  # student code shipped inside Runtime


F = TypeVar("F", bound=Callable[..., Any])
INTERRUPTIBLE: set[Any] = set()  # code of Runtime functions a signal may interrupt


def interruptible(func: F) -> F:
    """Mark a Runtime function that only waits (``Robot.sleep``): a signal may stop it."""
    INTERRUPTIBLE.add(func.__code__)  # type: ignore[attr-defined]
    return func


def is_runtime_code(filename: str) -> bool:
    """Is ``filename`` Runtime's own code (never interrupted), not a student's program?"""
    return filename.startswith(RUNTIME_DIRS) and not filename.startswith(SAMPLE_DIR)


def _protected(frame: Any) -> bool:
    """Must a stop wait until ``frame`` (the code a signal interrupted) has returned?"""
    code = frame.f_code
    return code not in INTERRUPTIBLE and is_runtime_code(code.co_filename)


WaitResult = Literal["tick", "wake", "stop"]
Wait = Callable[[float], WaitResult]


class Overrun(BaseException):
    """Raised by SIGALRM inside a student call that reached its time limit."""


def start_thread(thread: threading.Thread) -> threading.Thread:
    """Start ``thread`` with the executor's signals blocked in it (it inherits the mask)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, EXECUTOR_SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread


class SyncExecutor:
    """Runs student functions in the main thread with time limits (see the module docstring).

    ``should_stop()``: True when a running call must end (a command is waiting); checked when
    a call starts and in the signal handlers. ``report(outcome)``: called for every failed call
    (error or timeout). ``wait(deadline)``: sleeps until the monotonic ``deadline`` between
    periodic calls; returns "tick", "wake" (call early) or "stop".
    """

    def __init__(
        self,
        *,
        should_stop: Callable[[], bool] | None = None,
        report: Callable[[Outcome], None] | None = None,
        wait: Wait | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._should_stop = should_stop or (lambda: False)
        self._report = report or (lambda outcome: None)
        self._wait = wait or self._sleep_until
        self._clock = clock
        self._armed = False
        self._raised = 0  # exceptions raised into the current call
        self._kill: type[BaseException] | None = None  # what the tracer raises, once escalated
        self._saved_trace: Any = None
        self._stopping = False  # end the current periodic run
        self._wakeup = threading.Event()
        self._main_ident = threading.main_thread().ident
        self._previous: dict[int, Any] = {}
        self.calls = 0  # calls made by periodic runs
        self.overruns = 0
        self.early_calls = 0

    # -- signal handlers ----------------------------------------------------------------------
    def install(self) -> None:
        """Install the SIGALRM and SIGUSR1 handlers (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            raise ExecutionError("the SyncExecutor must be installed from the main thread")
        if self._previous:
            return
        self._previous = {
            signal.SIGALRM: signal.signal(signal.SIGALRM, self._on_alarm),
            signal.SIGUSR1: signal.signal(signal.SIGUSR1, self._on_interrupt),
        }

    def uninstall(self) -> None:
        """Restore the handlers that were there before :meth:`install`."""
        self._disarm()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[SyncExecutor]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    def _stop_wanted(self) -> bool:
        return self._stopping or self._should_stop()

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if not self._armed:
            return
        self._raise(StudentCodeStopped if self._stop_wanted() else Overrun, frame)

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        if self._armed and self._stop_wanted():
            signal.setitimer(signal.ITIMER_REAL, REPEAT, REPEAT)  # again, if it is swallowed
            self._raise(StudentCodeStopped, frame)

    def _raise(self, kind: type[BaseException], frame: Any) -> None:
        """Raise ``kind`` into the student's code; from the second time on, on every line.

        Not while Runtime's own code runs (a ``Robot.set_value`` the student called): an
        exception there could leave a buffer half-written. The timer tries again in
        :data:`DEFER` s, by when the call has returned to the student's code.
        """
        if frame is not None and _protected(frame):
            signal.setitimer(signal.ITIMER_REAL, DEFER, REPEAT)
            return
        self._raised += 1
        if self._raised > 1:
            if self._kill is None:
                self._saved_trace = sys.gettrace()
            self._kill = kind
            sys.settrace(self._trace)
            while frame is not None:
                if not is_runtime_code(frame.f_code.co_filename):
                    frame.f_trace = self._trace
                frame = frame.f_back
        raise kind

    def _trace(self, frame: Any, event: str, arg: Any) -> Any:
        """Trace function of an escalated stop: raise at the next line of non-Runtime code."""
        kill = self._kill
        if kill is None or not self._armed or is_runtime_code(frame.f_code.co_filename):
            return None
        if event in ("line", "call"):
            raise kill
        return self._trace

    def _arm(self, timeout: float) -> None:
        self._raised = 0
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, timeout, REPEAT)

    def _disarm(self) -> None:
        self._armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self._kill is not None:
            self._kill = None
            sys.settrace(self._saved_trace)
            self._saved_trace = None

    # -- control from other threads -------------------------------------------------------------
    def interrupt(self) -> None:
        """Make the running call (if any) stop now when ``should_stop()``: any thread."""
        if not self._previous:
            return
        self._wakeup.set()
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pthread_kill(self._main_ident, signal.SIGUSR1)  # type: ignore[arg-type]

    def stop(self) -> None:
        """End the current (or next) periodic run, interrupting its running call: any thread."""
        self._stopping = True
        self.interrupt()

    # -- running ----------------------------------------------------------------------------
    def run(self, request: ExecutionRequest) -> Outcome:
        """Run ``request``: one call, or periodic calls until stopped (the last call's outcome)."""
        if not request.periodic:
            return self.call(request.func, request.args, request.timeout, request.name)
        try:
            return self._run_periodic(request)
        finally:
            self._stopping = False

    def call(
        self, func: Callable[..., Any], args: tuple[Any, ...] = (), timeout: float = 1.0,
        name: str | None = None,
    ) -> Outcome:
        """One call of ``func(*args)``, interrupted after ``timeout`` s; failures are reported."""
        name = name or function_name(func)
        started = self._clock()
        outcome = Outcome(name, "ok", started=started)
        if inspect.iscoroutinefunction(func):
            outcome.status = "error"
            outcome.error = ExecutionError(
                f"{name} is an async def, so Runtime cannot call it every period: make it a "
                "plain def, and start async work from it with Robot.run(your_async_function)",
                function=name,
            )
        else:
            try:
                try:
                    self._arm(timeout)
                    if self._stop_wanted():
                        raise StudentCodeStopped
                    hop("executor: main entered")
                    outcome.value = func(*args)
                finally:
                    self._disarm()
            except Overrun as exc:
                outcome.status = "timeout"
                outcome.error = ExecutionTimeout(
                    f"{name} took longer than {timeout:g} s: is there a loop that never ends?",
                    function=name, timeout=timeout,
                ).with_traceback(exc.__traceback__)
            except StudentCodeStopped:
                outcome.status = "stopped"
            except BaseException as exc:  # SystemExit and KeyboardInterrupt too: we survive
                outcome.status = "error"
                outcome.error = exc
            finally:
                self._disarm()
            if inspect.isawaitable(outcome.value):
                _close(outcome.value)
                outcome.status = "error"
                outcome.error = ExecutionError(
                    f"{name} returned a coroutine that nobody awaits: call async functions with "
                    "Robot.run(function) instead of function()", function=name,
                )
                outcome.value = None
        outcome.elapsed = self._clock() - started
        if outcome.failed:
            if outcome.status == "timeout":
                self.overruns += 1
            self.report_outcome(outcome)
        return outcome

    def report_outcome(self, outcome: Outcome) -> None:
        """Hand a failed outcome to ``report`` (which must never stop the executor)."""
        try:
            self._report(outcome)
        except Exception:
            pass

    def _run_periodic(self, request: ExecutionRequest) -> Outcome:
        period = request.timeout
        tick = self._clock()
        outcome = Outcome(request.name, "stopped", started=tick)
        while not self._stop_wanted():
            if self._clock() < tick:
                reason = self._wait(tick)
                if reason == "stop" or self._stop_wanted():
                    break
                if reason == "wake":
                    hop("executor: woken")
                    self.early_calls += 1
                    outcome = self._periodic_call(request, period)
                    if outcome.status == "stopped":
                        break
                    continue
            outcome = self._periodic_call(request, period)
            if outcome.status == "stopped":
                break
            tick += period
            now = self._clock()
            if now >= tick + period:  # far behind (the process was paused): skip missed ticks
                tick += (now - tick) // period * period
        return outcome

    def _periodic_call(self, request: ExecutionRequest, period: float) -> Outcome:
        self.calls += 1
        return self.call(request.func, request.args, period, request.name)

    def _sleep_until(self, deadline: float) -> WaitResult:
        """Default ``wait``: sleep until ``deadline`` unless :meth:`stop` is called."""
        while True:
            if self._stop_wanted():
                return "stop"
            remaining = deadline - self._clock()
            if remaining <= 0:
                return "tick"
            self._wakeup.wait(remaining)
            self._wakeup.clear()


def async_raise(thread_ident: int, kind: type[BaseException]) -> bool:
    """Make ``kind`` be raised in thread ``thread_ident`` at its next bytecode; True if queued.

    The last resort against student code that never returns control (pure Python loops).
    """
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_ident), ctypes.py_object(kind)
    )
    if done > 1:  # more than one thread state matched: undo, as the C API docs ask
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_ident), None)
        return False
    return done == 1


def _close(awaitable: Any) -> None:
    """Close a coroutine nobody will await (no "never awaited" warning on top of our error)."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()
