"""``StudentRunner``: the student's code for one run, inside the student process.

The executor's control process (``dispatcher.py``) starts one student process per run
(``zygote.py``); in it, the runner does what the whole executor used to do in one process:

- the **main thread** runs :meth:`StudentRunner.run`: it waits for commands in a
  :class:`Mailbox` and runs the student's code for the current mode with the
  :class:`SyncExecutor` (signals: time limits and stops interrupt pure Python loops);
- a command thread (``child.py``) or a test script calls :meth:`change_mode` /
  :meth:`request_shutdown`, which close the write gate, set every motor to 0, cancel the actions
  and interrupt the main thread;
- the **actions thread** (``AsyncExecutor``) runs ``Robot.run`` actions.

Entering auto or teleop loads the student module from disk, runs ``*_setup`` once (2 s
limit), then ``*_main`` every period (20 ms), also called early when driver input changes in
teleop (at most one early call per change, and at most one per :data:`EARLY_GAP` s). A module
that defines ``autonomous()`` / ``teleop()`` instead has that started once as an action, stopped
when the mode ends. Any student error is reported to ``log/student`` and sets the motors to 0;
an error in import or setup ends the mode's code. Every record (prints, errors, warnings) goes
to the ``listeners`` in program order: the console is flushed before an error is reported.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import select
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from runtime.aliases import AliasFile
from runtime.api import Mode, StudentAPI
from runtime.buffer import WAKE_INPUT, BufferStore, Waiter
from runtime.exception import ExecutionError, MessageError
from runtime.messages import LogRecord, Match, validate
from runtime.options import Options
from runtime.service.executor.asyncexec import AsyncExecutor
from runtime.service.executor.console import Console
from runtime.service.executor.errors import ErrorReporter
from runtime.service.executor.inputnotice import DriverInputNotice
from runtime.service.executor.loader import MODES, load_module
from runtime.service.executor.request import ExecutionRequest, Outcome
from runtime.service.executor.sync import SyncExecutor, WaitResult

log = logging.getLogger("runtime.service.executor")
student_log = logging.getLogger("student")

DEFAULT_TIMEOUTS: dict[str, float] = {"import": 2.0, "*_setup": 2.0, "*_main": 0.02}
FALLBACK_TIMEOUT = 2.0
MODE_NAMES = {"autonomous": "auto"}  # accepted spellings


def requested_match(mode: Any, alliance: Any = None, start_pos: Any = None) -> Match:
    """The ``Match`` a ``set_mode`` asks for (``"autonomous"`` is ``auto``), since now;
    ``ExecutionError`` naming every allowed value if it is not one."""
    mode = MODE_NAMES.get(mode, mode) if isinstance(mode, str) else mode
    try:
        return validate(Match, {"mode": mode, "alliance": alliance, "start_pos": start_pos,
                                "since": time.time()})
    except MessageError:
        raise ExecutionError(
            f"cannot set mode {mode!r} (alliance {alliance!r}, start_pos {start_pos!r}): "
            "mode must be idle, auto, teleop or estop; alliance blue, gold or None; "
            "start_pos left, right or None", mode=repr(mode), alliance=repr(alliance),
            start_pos=repr(start_pos)) from None
INPUT_CHECK = 0.1  # seconds between driver-input checks while no *_main runs
EARLY_GAP = 0.001  #: at least this many seconds between two early *_main calls

Listener = Callable[[str, Any], None]


def timeouts_from_options(options: Options) -> dict[str, float]:
    """The time limits the robot's options ask for."""
    return {"import": options.import_timeout, "*_setup": options.setup_timeout,
            "*_main": options.main_period}


def timeout_for(timeouts: Mapping[str, float], name: str) -> float:
    """The limit of function ``name``: an exact entry, else the first matching pattern."""
    if name in timeouts:
        return timeouts[name]
    for pattern, seconds in timeouts.items():
        if fnmatch.fnmatchcase(name, pattern):
            return seconds
    return FALLBACK_TIMEOUT


class Mailbox:
    """Commands for the main thread, with a pipe to wake it and an exact "pending" test.

    ``pending()`` is True from ``post`` until the main thread ``take``s the command (both under
    one lock), so a stop request can never be lost nor hit the code that starts after it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._posted = 0
        self._taken = 0
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def post(self, item: Any) -> None:
        with self._lock:
            self._items.append(item)
            self._posted += 1
            with contextlib.suppress(BlockingIOError):
                os.write(self._write, b"\0")

    def pending(self) -> bool:
        return self._posted != self._taken

    def take_kicks(self) -> None:
        """Drain wake-ups that carried no command (so select does not spin on them)."""
        if not self.pending():
            with self._lock:
                if self._posted == self._taken:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._read, 4096):
                            pass

    def take(self) -> list[Any]:
        with self._lock:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read, 4096):
                    pass
            items, self._items = self._items, []
            self._taken = self._posted
            return items

    def wait(self, timeout: float | None = None) -> bool:
        """Block until something is posted (True) or ``timeout`` s pass (False)."""
        if self.pending():
            return True
        ready, _, _ = select.select([self._read], [], [], timeout)
        return bool(ready) or self.pending()

    def kick(self) -> None:
        """Wake a waiting :meth:`wait` without posting (lock-free: safe in signal handlers)."""
        with contextlib.suppress(OSError):
            os.write(self._write, b"\0")

    def fileno(self) -> int:
        return self._read

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class StudentRunner:
    """Modes, student code and the write gate inside one student process (module docstring)."""

    def __init__(
        self,
        buffers: BufferStore,
        student_code_name: str = "studentcode",
        timeouts: Mapping[str, float] | None = None,
        *,
        student_code: Path | str = "studentcode.py",
        state_dir: Path | str | None = None,
        max_actions: int = 128,
    ) -> None:
        self.buffers = buffers
        self.student_code_name = student_code_name
        self.student_code = Path(student_code)
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.period = timeout_for(self.timeouts, "teleop_main")
        self.listeners: list[Listener] = []
        self.mailbox = Mailbox()
        # errors flush the console first: one ordered stream of records (prints, then error)
        self.errors = ErrorReporter(self._log_in_order, lambda: (str(self.student_code),))
        self.console = Console(self._log)
        self.actions = AsyncExecutor(max_actions, report=self._action_failed)
        self._shutdown = False
        self.sync = SyncExecutor(should_stop=self._should_stop, report=self._call_failed,
                                 wait=self._wait)
        aliases = AliasFile(Path(state_dir)) if state_dir is not None else None
        self.api = StudentAPI(buffers, aliases=aliases, actions=self.actions,
                              print=self.console.print, log=self._log_in_order)
        self.match = Match(mode="idle", since=time.time())
        self._mode_lock = threading.Lock()
        self._waiter: Waiter | None = None
        self._watched: list[Any] = []
        self._input_seen: tuple[Any, ...] = ()
        self._last_wake = 0.0
        self.module: Any = None  # the student module of the current mode (tests look inside)
        self.mode_starts = 0
        self.mode_started_at = 0.0  # monotonic time the current mode was posted (bench)

    # -- mode changes (any thread) ---------------------------------------------------------------
    def change_mode(self, mode: Any, alliance: Any = None, start_pos: Any = None) -> Match:
        """Switch modes now: motors to 0 and actions cancelled here, the code in the main
        thread stopped and the new mode's started there; ``match`` goes to the listeners."""
        match = requested_match(mode, alliance, start_pos)
        with self._mode_lock:
            current = self.match
            if match.mode == current.mode:
                if (match.alliance, match.start_pos) == (current.alliance, current.start_pos):
                    return current
                match = match.model_copy(update={"since": current.since})  # same mode goes on
                self.match = match
                self.api.match.update(match.mode, match.alliance, match.start_pos, match.since)
            else:
                stopped = self.api.stop_motors()
                self.actions.cancel_all()
                self.api.match.update(match.mode, match.alliance, match.start_pos, match.since)
                self.match = match
                self.mode_started_at = time.monotonic()
                self.mailbox.post(match)
                self.sync.interrupt()
                log.info("mode %s (was %s)%s", match.mode, current.mode,
                         f"; motors set to 0 on {len(stopped)} device"
                         f"{'' if len(stopped) == 1 else 's'}" if stopped else "")
        self._emit("match", match)
        return match

    def shutdown(self) -> None:
        """Stop the student code and make :meth:`run` return (any thread but the main one)."""
        self.api.stop_motors()
        self.actions.cancel_all()
        self.request_shutdown()

    def request_shutdown(self) -> None:
        """Make :meth:`run` stop the student code and return. Takes no lock, so a signal
        handler in the main thread may call it whatever the main thread was doing (run
        stops the motors and the actions on its way out)."""
        self._shutdown = True
        self.mailbox.kick()
        self.sync.interrupt()

    def _should_stop(self) -> bool:
        return self._shutdown or self.mailbox.pending()

    # -- the main thread ----------------------------------------------------------------------
    def run(self) -> None:
        """Run student code as modes come, until :meth:`shutdown` (main thread only)."""
        self.actions.start()
        notice = DriverInputNotice(lambda: str(self.match.mode), self.api.inputs.all,
                                   lambda line: self._log_in_order("warning", line, {})).start()
        previous_showwarning = warnings.showwarning
        warnings.showwarning = self._show_warning
        try:
            with self.sync.installed():
                while not self._shutdown:
                    self.mailbox.wait()
                    items = self.mailbox.take()
                    if self._shutdown:
                        break
                    modes = [item for item in items if isinstance(item, Match)]
                    if not modes:
                        continue
                    self._end_mode()
                    if modes[-1].mode in MODES:
                        self._run_mode(modes[-1])
        finally:
            warnings.showwarning = previous_showwarning
            self._end_mode()
            self._unwatch_inputs()
            notice.stop()
            self.actions.close()
            self.errors.close()
            self.console.close()

    def _end_mode(self) -> None:
        """Whatever ran is over: motors to 0 (again: code may have written meanwhile)."""
        self.api.stop_motors()
        self.actions.cancel_all()
        self.console.flush()

    def _run_mode(self, match: Match) -> None:
        """Load the program and run this mode's code; returns when a command is waiting (or
        when the code cannot run)."""
        self.mode_starts += 1
        mode = match.mode
        prefix = MODES[mode]
        with self._mode_lock:  # never re-open the gate after a newer change closed it
            if self._should_stop():
                return
            self.api.enable()
        if mode == Mode.TELEOP:
            self._watch_inputs()
        try:
            module, outcome = load_module(self.student_code, self.student_code_name,
                                          self.api.names(), self.sync,
                                          timeout_for(self.timeouts, "import"))
            self.module = module
            if module is None:
                if outcome.status != "stopped":
                    self._code_ended(f"{prefix} cannot start: fix the program, then start "
                                     f"{prefix} again")
                return
            setup = _function(module, f"{prefix}_setup")
            main = _function(module, f"{prefix}_main")
            whole = _function(module, prefix)
            if setup is not None or main is not None:
                if setup is not None:
                    name = f"{prefix}_setup"
                    outcome = self.sync.call(setup, (), timeout_for(self.timeouts, name), name)
                    if outcome.status == "stopped":
                        return
                    if not outcome.ok:
                        self._code_ended(f"{prefix}_main will not run because {prefix}_setup "
                                         f"failed: fix it, then start {prefix} again")
                        return
                if main is not None:
                    self.sync.run(ExecutionRequest(
                        main, timeout=timeout_for(self.timeouts, f"{prefix}_main"),
                        periodic=True, name=f"{prefix}_main"))
                    return
            elif whole is not None:
                self.actions.run(whole, name=prefix)
            else:
                self.errors.warn(
                    f"{self.student_code.name} defines no {prefix}_setup/{prefix}_main and no "
                    f"{prefix}(): nothing runs in {mode}", mode=str(mode))
            self._wait_for_command()
        finally:
            self._unwatch_inputs()

    def _code_ended(self, why: str) -> None:
        """The mode's code cannot go on: robot safe, say why."""
        self.api.stop_motors()
        self.actions.cancel_all()
        self.errors.warn(why)

    def _wait_for_command(self) -> None:
        """No ``*_main`` to call: wait for the next command, keeping the input check going."""
        while self._wait(time.monotonic() + INPUT_CHECK) != "stop":
            pass

    # -- waiting between calls: commands, driver input ---------------------------------------
    def _wait(self, deadline: float) -> WaitResult:
        """Sleep until ``deadline`` ("tick"), a command ("stop") or an input change ("wake")."""
        waiter = self._waiter
        fds = [self.mailbox.fileno()] if waiter is None else [self.mailbox.fileno(),
                                                                waiter.fileno()]
        while True:
            if self._should_stop():
                return "stop"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "tick"
            ready, _, _ = select.select(fds, [], [], remaining)
            if self._should_stop():
                return "stop"
            if self.mailbox.fileno() in ready:
                self.mailbox.take_kicks()
            if waiter is not None and waiter.fileno() in ready:
                waiter.wait(0)  # re-arm, drain
                if self._input_changed() and self._early_call_allowed():
                    return "wake"

    def _early_call_allowed(self) -> bool:
        """At most one early ``*_main`` per :data:`EARLY_GAP` s, however fast input changes
        (later changes in the gap are seen by the call after it: nothing is lost)."""
        now = time.monotonic()
        if now - self._last_wake < EARLY_GAP:
            return False
        self._last_wake = now
        return True

    def _watch_inputs(self) -> None:
        buffers = self.api.inputs.all()
        if not buffers:
            return
        waiter = Waiter()
        try:
            for buffer in buffers:
                waiter.watch(buffer, WAKE_INPUT)
        except Exception as exc:  # a full waiter table: main still runs every period
            log.warning("cannot watch driver input (%s): teleop_main runs every period only",
                        exc)
            waiter.close()
            return
        self._waiter, self._watched = waiter, buffers
        self._input_seen = self._input_state()

    def _unwatch_inputs(self) -> None:
        waiter, self._waiter, self._watched = self._waiter, None, []
        if waiter is not None:
            with contextlib.suppress(Exception):
                waiter.close()

    def _input_state(self) -> tuple[Any, ...]:
        state: list[Any] = []
        for buffer in self._watched:
            if buffer.closed:
                continue
            state.append((buffer.connected, buffer.values()))
        return tuple(state)

    def _input_changed(self) -> bool:
        state = self._input_state()
        changed = state != self._input_seen
        self._input_seen = state
        return changed

    # -- reports --------------------------------------------------------------------------------
    def _call_failed(self, outcome: Outcome) -> None:
        assert outcome.error is not None
        self.errors.report(outcome.name, outcome.error, mode=str(self.match.mode))
        self.api.stop_motors(disable=False)

    def _action_failed(self, name: str, exc: BaseException) -> None:
        self.errors.report(name, exc, mode=str(self.match.mode), action=name)
        self.api.stop_motors(disable=False)

    def _show_warning(self, message: Any, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
        text = str(message)
        if issubclass(category, RuntimeWarning) and "never awaited" in text:
            self.errors.warn(
                f"{text}: an async function only runs when it is awaited inside an async "
                "action (`await Actions.sleep(1)`) or started with Robot.run(function)")
            return
        log.warning("%s:%s: %s: %s", filename, lineno, category.__name__, text)

    def _log_in_order(self, level: str, message: str, context: dict[str, Any],
                      logger: str = "student") -> None:
        """An error, a warning, a ``Robot.log``: the prints made before it go first."""
        self.console.flush()
        self._log(level, message, context, logger)

    def _log(self, level: str, message: str, context: dict[str, Any],
             logger: str = "student") -> None:
        """A student log record: to the listeners (``log/student``) and the local log."""
        record = LogRecord(ts=time.time(), level=level, logger=logger, message=message,
                           context=context)
        student_log.log(level_number(level), "%s", message)
        self._emit("log", record)

    def _emit(self, kind: str, payload: BaseModel) -> None:
        """Hand a record to the listeners (the student process sends them to control)."""
        for listener in list(self.listeners):
            try:
                listener(kind, payload)
            except Exception:
                log.exception("listener failed on %s", kind)


def level_number(level: str) -> int:
    """The ``logging`` level of a student record's level name (``"error"`` -> ERROR); INFO for
    anything else, so a record never fails to be logged over its level."""
    number = logging.getLevelName(level.upper())
    return number if isinstance(number, int) else logging.INFO


def _function(module: Any, name: str) -> Any:
    value = getattr(module, name, None)
    return value if callable(value) else None
