"""``Dispatcher``: the executor's control process: modes, authority, safety, RPC, ``match``.

No student code runs in this process. Each run of the student's program (entering auto or
teleop, or the same mode again) is a fresh **student process** forked by a warm zygote
(``zygote.py``), where a :class:`StudentRunner` runs it (``child.py``). So nothing a student
writes can delay this process: a stop (idle, estop, a mode change) here

1. sets every motor to 0 through the shared-memory buffers and publishes ``match`` at once
   (before the RPC reply leaves);
2. asks the student process to stop over its channel, and SIGKILLs it (a pidfd: never another
   process) if it is still there after the grace period (option ``stop_grace``, 0.05 s): a long
   C call, a busy loop, a frozen (SIGSTOPped) or dead process delays nothing;
3. sets the motors to 0 again once it is gone (a write it made meanwhile is undone), then starts
   the next run's process, if any.

A student process that ends on its own (``os._exit``, a signal, killing its parent) is a crash of
the student's program, not of the service: motors to 0, and one sentence on the student console
saying what happened and where (its last words, see ``child.py``). The service keeps running, so
a student's crashes never count against the restart budget of ``runtime up`` or compose.

Every record of the student process (prints, errors) reaches ``log/student`` in the order the
student process sent it, through one publishing queue (the ``match`` publishes go through it too).

Authority (who may start, stop, clear estop) is ``authority.py``; the caller's role comes from
the request topic, which the broker's ACL binds to the login.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from runtime.api import StudentAPI
from runtime.buffer import BufferStore
from runtime.exception import ExecutionError, MessageError
from runtime.lint import known_aliases
from runtime.messages import FieldPresence, GameState, LogRecord, Match, validate
from runtime.options import Options
from runtime.remote import Connection, Handler, rpc
from runtime.service.executor.authority import (
    DRIVER,
    OPERATOR,
    ModeRequest,
    RobotState,
    caller_role,
    check_mode_change,
)
from runtime.service.executor.loader import MODES, store_source
from runtime.service.executor.runner import (
    DEFAULT_TIMEOUTS,
    level_number,
    requested_match,
    timeout_for,
    timeouts_from_options,
)
from runtime.service.executor.zygote import StudentProcess, Zygote
from runtime.trace import hop

log = logging.getLogger("runtime.service.executor")
student_log = logging.getLogger("student")

DEFAULT_GRACE = 0.05  #: seconds a student process has to stop before SIGKILL
DEFAULT_MEMORY = 512 * 2**20  #: bytes of address space a student process may use
DEFAULT_NICE = 10  #: CPU priority of the student process, relative to the services
STATUS_WAIT = 1.0  #: seconds to wait for a crashed process's exit status from the zygote
LATCH_FILE = "estop.latched"  #: in the state dir while an estop is latched

Listener = Callable[[str, Any], None]

__all__ = ["Dispatcher", "timeout_for", "timeouts_from_options"]


def crash_sentence(notes: list[str], status: int | None, mode: str) -> str:
    """One sentence: what ended the student's process, and what the robot did about it."""
    if notes:
        what = notes[-1]
    elif status is None:
        what = "your program's process ended (its parent process was killed)"
    elif os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ \
            else f"signal {signum}"
        what = f"your program's process was killed by {name}"
        if signum == signal.SIGKILL:
            what += " (from outside, or out of memory)"
    else:
        what = f"your program's process ended with exit code {os.waitstatus_to_exitcode(status)}"
    return (f"{what}: the robot set the motors to 0 and keeps running; start {mode} again to "
            "rerun it")


class Dispatcher(Handler):
    """The executor's control process (see the module docstring)."""

    service_name = "executor"

    def __init__(
        self,
        buffers: BufferStore,
        student_code_name: str = "studentcode",
        timeouts: Mapping[str, float] | None = None,
        *,
        student_code: Path | str = "studentcode.py",
        state_dir: Path | str | None = None,
        grace: float = DEFAULT_GRACE,
        memory_limit: int | None = DEFAULT_MEMORY,
        niceness: int = DEFAULT_NICE,
    ) -> None:
        self.buffers = buffers
        self.student_code_name = student_code_name
        self.student_code = Path(student_code)
        self.state_dir = None if state_dir is None else str(state_dir)
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.period = timeout_for(self.timeouts, "teleop_main")
        self.grace = grace
        self.memory_limit = memory_limit
        self.niceness = niceness
        self.api = StudentAPI(buffers)  # only its stop_motors: zeroes every motor param
        #: estop latched until cleared by field control or an operator; kept in the state dir
        #: (``estop.latched``), so a restarted executor starts in estop again, still latched
        latch = self._latch_file()
        self.latched = latch is not None and latch.exists()
        self.match = Match(mode="estop" if self.latched else "idle", since=time.time())
        self.field_connected = False  #: field/presence says field control is online
        self.game_state: str | None = None  #: retained field/game_state (student: Match)
        self.zygote = Zygote(self._on_message, self._on_gone)
        self.student: StudentProcess | None = None
        self.listeners: list[Listener] = []
        self.connection: Connection | None = None
        self.runs = 0  #: student processes started
        self.crashes = 0  #: student processes that ended on their own
        self.mode_started_at = 0.0  #: monotonic time of the last mode change (bench)
        self._generation = 0  # one per mode change: which run a student process belongs to
        self._switch_lock: asyncio.Lock | None = None
        self._outbox: asyncio.Queue[tuple[str, BaseModel]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: tells the device service a new mode through shared memory, before anything else
        #: (``LivenessBeat.state_mode``; app.py sets it): stops skip the broker round trip
        self.state_mode: Callable[[str], None] = lambda mode: None

    # -- RPC --------------------------------------------------------------------------------
    @rpc
    async def set_mode(self, mode: str, alliance: str | None = None,
                       start_pos: str | None = None, clear_estop: bool = False) -> dict[str, Any]:
        """Change the mode (idle, auto, teleop, estop); the new ``match`` plus ``restarted``
        (the same mode started again with a fresh run) and ``estop_latched``."""
        match, restarted = self.change_mode(mode, alliance, start_pos, role=caller_role.get(),
                                            clear_estop=clear_estop)
        return {**match.to_wire(), "restarted": restarted, "estop_latched": self.latched}

    @rpc
    def get_mode(self) -> dict[str, Any]:
        """The current ``match`` plus ``estop_latched`` and ``field_connected``."""
        return {**self.match.to_wire(), "estop_latched": self.latched,
                "field_connected": self.field_connected}

    @rpc(blocking=True)
    def upload(self, source: str) -> dict[str, Any]:
        """Check and store a new student program (used from the next run)."""
        role = caller_role.get()
        if role not in (OPERATOR, DRIVER):
            raise ExecutionError(f"the login {role!r} may not upload student code: only a "
                                 "driver station or a local operator may", role=role)
        state_dir = Path(self.state_dir) if self.state_dir is not None else None
        result = store_source(self.student_code, source, known_aliases(state_dir))
        log.info("new student program stored in %s (sha256 %s)", self.student_code,
                 result["sha256"][:12])
        return result

    @rpc(blocking=True)
    def program(self) -> dict[str, Any]:
        """The stored student program: ``{source, sha256}`` (what the driver station edits)."""
        try:
            data = self.student_code.read_bytes()
        except FileNotFoundError:
            raise ExecutionError(f"there is no student program yet at {self.student_code}: "
                                 "upload one", path=str(self.student_code)) from None
        return {"source": data.decode("utf-8", "replace"),
                "sha256": hashlib.sha256(data).hexdigest()}

    async def serve(self, connection: Connection, service_name: str | None = None) -> None:
        """Answer RPCs (plain and per-role topics), follow field control's presence, publish
        the current (retained) ``match``, and warm up the zygote."""
        self.connection = connection
        self._outbox = asyncio.Queue()
        self._switch_lock = asyncio.Lock()
        await super().serve(connection, service_name)
        topics = connection.topics
        await connection.subscribe(topics.rpc_as_filter(self.service_name or "executor"),
                                   self._on_role_request, qos=1, concurrent=True)
        await connection.subscribe_typed(topics.field_presence, FieldPresence,
                                         self._on_field_presence, qos=1)
        await connection.subscribe_typed(topics.game_state, GameState, self._on_game_state,
                                         qos=1)
        await connection.publish(connection.topics.match, self.match, qos=1, retain=True)
        connection.on_connected(self._republish)
        self._spawn(self._publisher(connection), "publish student log")
        self._spawn(self._warm_up(), "start zygote")

    async def _republish(self) -> None:
        """After a reconnect (a restarted broker lost its retained messages): ``match``."""
        if self.connection is not None:
            await self.connection.publish(self.connection.topics.match, self.match, qos=1,
                                          retain=True)

    def _latch_file(self) -> Path | None:
        return None if self.state_dir is None else Path(self.state_dir) / LATCH_FILE

    def _set_latched(self, latched: bool) -> None:
        """Latch or clear estop, in memory and in the state dir (best effort: a read-only
        state dir only loses the latch across a restart, and says so)."""
        self.latched = latched
        path = self._latch_file()
        if path is None:
            return
        try:
            if latched:
                path.write_text(f"{time.time()}\n")
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("estop latch not kept in %s (%s): a restarted executor would not "
                        "know it", path, exc.strerror or exc)

    async def close(self) -> None:
        """Stop the student process (motors 0) and the zygote."""
        self._generation += 1
        student, self.student = self.student, None
        if student is not None:
            student.stopping = True
            student.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(student.gone.wait(), 2.0)
            student.close()
        self.api.stop_motors()
        self.zygote.close()
        for task in list(self._tasks):
            task.cancel()
        self.connection = None

    # -- mode changes -------------------------------------------------------------------------
    def change_mode(self, mode: Any, alliance: Any = None, start_pos: Any = None, *,
                    role: str = "operator", clear_estop: bool = False) -> tuple[Match, bool]:
        """Switch modes now (on the event loop); the new match and whether the same mode was
        restarted. Motors are 0 and ``match`` is queued before this returns."""
        hop("executor: mode change asked")
        match = requested_match(mode, alliance, start_pos)
        refusal = check_mode_change(ModeRequest(role, str(match.mode), bool(clear_estop)),
                                    RobotState(self.latched, self.field_connected))
        if refusal is not None:
            raise ExecutionError(f"cannot set mode {match.mode}: {refusal}",
                                 mode=str(match.mode), role=role, estop_latched=self.latched)
        if clear_estop and self.latched:
            self._set_latched(False)
            log.info("estop cleared by %s", role)
        current = self.match
        if match.mode == current.mode and match.mode not in MODES:  # idle/estop again
            if (match.alliance, match.start_pos) != (current.alliance, current.start_pos):
                self.match = match.model_copy(update={"since": current.since})
                self._emit("match", self.match)
            return self.match, False
        restarted = match.mode == current.mode
        if match.mode == "estop" and not self.latched:
            # before stating it: the device service stops on the stated estop at once, and an
            # executor killed right after that must come back latched (a small file write)
            self._set_latched(True)
        self._state_mode(str(match.mode))
        hop("executor: mode stated")
        stopped = self.api.stop_motors()
        self.match = match
        self._generation += 1
        self.mode_started_at = time.monotonic()
        if self.student is not None:
            self._ask_stop(self.student)
        self._emit("match", match)
        self._spawn(self._switch(), "switch runs")
        log.info("mode %s (was %s)%s%s", match.mode, current.mode,
                 " restarted" if restarted else "",
                 f"; motors set to 0 on {len(stopped)} device"
                 f"{'' if len(stopped) == 1 else 's'}" if stopped else "")
        return match, restarted

    def _state_mode(self, mode: str) -> None:
        try:
            self.state_mode(mode)
        except Exception:  # the match on MQTT still stops the devices, a broker hop later
            log.exception("could not state mode %s in shared memory", mode)
        # Hand this core to the device service just woken: it has the stop to write, while the
        # rest of a mode change (zeroing buffers, publishing match) can wait a moment. Without
        # it a busy student process on the other core delays the stop by ~0.7 ms (bench/stop.py
        # --hops: "device: stated mode rang" 0.83 -> 0.14 ms median).
        os.sched_yield()

    def _ask_stop(self, student: StudentProcess) -> None:
        """Ask ``student`` to stop; SIGKILL it after the grace period if it is still there."""
        if student.stopping:
            return
        student.stopping = True
        student.send({"kind": "stop"})
        asyncio.get_running_loop().call_later(self.grace, student.kill)

    async def _switch(self) -> None:
        """End the student process of an older mode and start the current mode's (serially)."""
        assert self._switch_lock is not None
        async with self._switch_lock:
            student = self.student
            if student is not None:
                if student.generation == self._generation and not student.stopping:
                    return  # already running the current mode
                self._ask_stop(student)
                await student.gone.wait()
                if self.student is student:
                    self.student = None
                student.close()
                self.api.stop_motors()  # undo anything it wrote before it stopped
            generation, match = self._generation, self.match
            if match.mode not in MODES or self.student is not None:
                return
            try:
                student = await self._start_student(match)
            except Exception as exc:
                log.error("cannot start the student process: %s", exc)
                self._student_log("error", f"{match.mode} cannot start: the robot could not "
                                  f"start a process for your program ({exc}); try again",
                                  {"mode": str(match.mode)})
                return
            student.generation = generation
            self.student = student
            self.runs += 1
            if generation != self._generation:  # a newer change came while it started
                self._ask_stop(student)
                self._spawn(self._switch(), "switch runs")
            elif student.gone.is_set():  # it crashed before this task resumed: report it now
                self._on_gone(student)

    async def _start_student(self, match: Match) -> StudentProcess:
        """A student process for ``match``; a second try with a new zygote if the first fails
        (a zygote that a student froze or killed is replaced)."""
        try:
            return await self.zygote.spawn(self._spec(match))
        except RuntimeError as exc:
            log.warning("starting the student process failed (%s): trying once more", exc)
            return await self.zygote.spawn(self._spec(match))

    def _spec(self, match: Match) -> dict[str, Any]:
        """What the student process needs to run ``match`` (child.py)."""
        return {"robot": self.buffers.robot, "timeouts": dict(self.timeouts),
                "student_code": str(self.student_code), "state_dir": self.state_dir,
                "student_code_name": self.student_code_name, "match": match.to_wire(),
                "memory_limit": self.memory_limit, "nice": self.niceness,
                "game_state": self.game_state}

    # -- the student process's messages and end -------------------------------------------------
    def _on_message(self, student: StudentProcess, message: dict[str, Any]) -> None:
        if message.get("kind") != "log":
            return
        try:
            record = validate(LogRecord, message.get("record"))
        except MessageError as exc:
            log.warning("a bad record from the student process was dropped: %s", exc)
            return
        self._publish_log(record)

    def _on_gone(self, student: StudentProcess) -> None:
        pid = student.pid
        if student.stopping or student is not self.student:
            return
        self.student = None
        self.crashes += 1
        stopped = self.api.stop_motors()
        log.warning("the student process %d ended by itself; motors set to 0 on %d devices",
                    pid, len(stopped))
        self._spawn(self._report_crash(student, str(self.match.mode)), "report crash")

    async def _report_crash(self, student: StudentProcess, mode: str) -> None:
        try:
            status = await asyncio.wait_for(asyncio.shield(student.status), STATUS_WAIT)
        except TimeoutError:
            status = None
        student.close()
        self._student_log("error", crash_sentence(student.notes, status, mode),
                          {"mode": mode, "status": status})

    async def _warm_up(self) -> None:
        try:
            await self.zygote.start()
        except Exception as exc:
            log.error("cannot start the zygote process: %s", exc)

    # -- requests by role, field control's presence ---------------------------------------------
    async def _on_role_request(self, topic: str, payload: bytes) -> None:
        """``as/<login>/rpc/executor/<method>``: the ACL lets only ``<login>`` write it."""
        assert self.connection is not None
        role = topic[len(self.connection.topics.prefix):].split("/")[1]
        token = caller_role.set(role)
        try:
            await self._rpc_server.on_request(topic, payload)
        finally:
            caller_role.reset(token)

    def _on_field_presence(self, topic: str, presence: FieldPresence | None) -> None:
        """``field/presence`` (retained, with a last will ``offline``): is field control here?
        (An empty payload, the retained message cleared, means no.)"""
        connected = presence is not None and presence.state == "online"
        if connected != self.field_connected:
            self.field_connected = connected
            log.info("field control %s", "connected" if connected else "disconnected")

    def _on_game_state(self, topic: str, game_state: GameState | None) -> None:
        """Retained ``field/game_state``: student code reads it as ``Match.game_state``; the
        running student process gets each change, a new one the current state at its start."""
        state = game_state.state if game_state is not None else None
        self.game_state = state
        if self.student is not None and not self.student.stopping:
            self.student.send({"kind": "game_state", "state": state})

    # -- publishing, in order ---------------------------------------------------------------------
    def _student_log(self, level: str, message: str, context: dict[str, Any]) -> None:
        self._publish_log(LogRecord(ts=time.time(), level=level, logger="student",
                                    message=message, context=context))

    def _publish_log(self, record: LogRecord) -> None:
        student_log.log(level_number(record.level), "%s", record.message)
        self._emit("log", record)

    def _emit(self, kind: str, payload: BaseModel) -> None:
        for listener in list(self.listeners):
            try:
                listener(kind, payload)
            except Exception:
                log.exception("listener failed on %s", kind)
        if self._outbox is not None:
            self._outbox.put_nowait((kind, payload))

    async def _publisher(self, connection: Connection) -> None:
        """One publisher, so ``log/student`` records leave in the order they came."""
        assert self._outbox is not None
        topics = connection.topics
        while True:
            kind, payload = await self._outbox.get()
            topic = topics.match if kind == "match" else topics.log("student")
            try:
                await connection.publish(topic, payload, qos=1 if kind == "match" else 0,
                                         retain=kind == "match")
            except Exception as exc:
                log.debug("publish on %s failed: %s", topic, exc)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("executor task %s failed", task.get_name(), exc_info=task.exception())


def options_for(options: Options) -> dict[str, Any]:
    """Dispatcher keyword arguments from the robot's options."""
    return {"timeouts": timeouts_from_options(options), "grace": options.stop_grace,
            "memory_limit": options.student_memory * 2**20 if options.student_memory else None}
