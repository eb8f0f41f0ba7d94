"""The student process: one run of the student's program, forked by the zygote.

What happens here, in order (``child_main``):

1. the process leaves the zygote's session (``setsid``: its own process group, which the zygote
   kills whole when the run ends, so a subprocess the student started goes with it) and asks the
   kernel to SIGKILL it when the zygote dies (``PR_SET_PDEATHSIG``);
2. it caps its address space (``RLIMIT_AS``, default 512 MB) so a huge allocation is a
   ``MemoryError`` reported in the student's words, not a robot that swaps, and, once Runtime's
   own set-up is done and just before the student's code loads, lowers its CPU priority
   (``nice``, default +10) so a busy student loop cannot starve the services;
3. it attaches the robot's shared-memory buffers and runs a :class:`StudentRunner` for the one
   mode it was started for; a command thread reads the control channel ("stop", or the end of
   the channel when the control process is gone) and stops the runner;
4. every record (prints, errors, warnings) goes to the control process over one
   ``SOCK_SEQPACKET`` channel, in program order; so do "last words": ``os._exit``, ``os.kill``,
   ``os.killpg`` and ``os.abort`` are wrapped so that the console can say what the program did
   and where ("your program ended the process with os._exit(1) in teleop_main, line 12") before
   the process really ends.

The process ends with ``os._exit`` (no interpreter teardown that a student thread could hold
up); the control process SIGKILLs it anyway if it has not ended within the stop grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import cbor2
from runtime.buffer import BufferStore
from runtime.messages import LogRecord
from runtime.service.executor import errors
from runtime.service.executor.runner import StudentRunner
from runtime.service.executor.sync import start_thread

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
MAX_MESSAGE = 1 << 16  #: bytes of one channel message (a record is at most 50 console lines)
THREAD_STACK = 4 << 20  #: stack of student threads: 128 actions must fit the memory limit


def set_parent_death_signal(signum: int = signal.SIGKILL) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def set_process_name(name: str) -> None:
    """The name ``ps -o comm``, ``top`` and ``pgrep`` show (at most 15 bytes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


class Channel:
    """The child's end of the control channel: whole CBOR messages, sent under one lock."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = cbor2.dumps(message)
        if len(data) > MAX_MESSAGE:  # keep the record, cut its text
            message = {**message, "message": str(message.get("message", ""))[:MAX_MESSAGE // 2]
                       + "\n... (cut)"}
            data = cbor2.dumps(message)
        with self._lock, contextlib.suppress(OSError):
            self.sock.sendall(data)

    def on_record(self, kind: str, payload: Any) -> None:
        """A :class:`StudentRunner` listener: log records go to control."""
        if kind == "log" and isinstance(payload, LogRecord):
            self.send({"kind": "log", "record": payload.to_wire()})

    def note(self, text: str) -> None:
        """Last words: what the program is about to do to its process."""
        self.send({"kind": "note", "text": text})


def where_in(files: tuple[str, ...], frame: Any) -> str:
    """`` in teleop_main, line 12`` for the innermost student frame at or above ``frame``."""
    while frame is not None:
        if frame.f_code.co_filename in files:
            name = frame.f_code.co_name
            if name == "<module>":
                return f" while loading {os.path.basename(frame.f_code.co_filename)}, line " \
                       f"{frame.f_lineno}"
            return f" in {name}, line {frame.f_lineno}"
        frame = frame.f_back
    return ""


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def install_last_words(channel: Channel, files: tuple[str, ...],
                       flush: Callable[[], None]) -> None:
    """Wrap the calls that end or signal processes so the console can say who did what."""
    real_exit, real_kill, real_killpg, real_abort = os._exit, os.kill, os.killpg, os.abort
    own, parent = os.getpid(), os.getppid()

    def say(text: str) -> None:
        with contextlib.suppress(Exception):
            flush()  # the program's prints come first
        channel.note(text + where_in(files, sys._getframe(2)))

    def _exit(status: int) -> NoReturn:
        say(f"your program ended the process with os._exit({status!r})")
        real_exit(status)

    def kill(pid: int, sig: int) -> None:
        if pid in (own, 0, -own):
            say(f"your program sent {signal_name(sig)} to its own process with os.kill")
        elif pid == parent:
            say(f"your program sent {signal_name(sig)} to its parent process with "
                "os.kill(os.getppid(), ...)")
        real_kill(pid, sig)

    def killpg(pgid: int, sig: int) -> None:
        if pgid in (own, 0):
            say(f"your program sent {signal_name(sig)} to its own process group with os.killpg")
        real_killpg(pgid, sig)

    def abort() -> NoReturn:
        say("your program ended the process with os.abort()")
        real_abort()

    os._exit, os.kill, os.killpg, os.abort = _exit, kill, killpg, abort  # type: ignore[assignment]


def limit_memory(memory_limit: int | None) -> None:
    """Cap the address space (``None``/0: no cap) and the stack of later threads."""
    threading.stack_size(THREAD_STACK)
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        errors.MEMORY_LIMIT = memory_limit


def child_main(channel_fd: int, spec: dict[str, Any]) -> NoReturn:
    """Run one mode of the student program (in a freshly forked process); never returns."""
    code = 70
    end = os._exit  # the real one: the student's gets wrapped (last words)
    try:
        os.setsid()
        set_parent_death_signal()
        set_process_name("runtime-student")
        if os.getppid() != spec["zygote"]:  # the zygote died between fork and prctl
            os._exit(0)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        channel = Channel(socket.socket(fileno=channel_fd))
        code = run_student(channel, spec)
    except BaseException as exc:  # a bug of Runtime's, not the student's: say so
        with contextlib.suppress(Exception):
            print(f"student process failed: {exc!r}", file=sys.stderr, flush=True)
    end(code)


def run_student(channel: Channel, spec: dict[str, Any]) -> int:
    limit_memory(spec.get("memory_limit"))
    buffers = BufferStore(spec["robot"])
    runner = StudentRunner(buffers, timeouts=spec["timeouts"],
                           student_code=spec["student_code"], state_dir=spec.get("state_dir"),
                           student_code_name=spec.get("student_code_name", "studentcode"))
    runner.listeners.append(channel.on_record)
    install_last_words(channel, (str(runner.student_code),), runner.console.flush)
    start_thread(threading.Thread(target=_commands, args=(channel.sock, runner),
                                  name="control channel", daemon=True))
    runner.api.match.game_state = spec.get("game_state")
    match = spec["match"]
    runner.change_mode(match["mode"], match.get("alliance"), match.get("start_pos"))
    if spec.get("nice"):  # from here on the student's code runs: below the services
        with contextlib.suppress(OSError):
            os.nice(spec["nice"])
    runner.run()
    channel.send({"kind": "done"})
    return 0


def _commands(sock: socket.socket, runner: StudentRunner) -> None:
    """Stop the runner on "stop" or when the control process closes the channel; follow the
    field's game state ("game_state")."""
    while True:
        try:
            data = sock.recv(MAX_MESSAGE)
        except OSError:
            data = b""
        if not data:
            break
        try:
            message = cbor2.loads(data)
        except Exception:
            continue
        kind = message.get("kind") if isinstance(message, dict) else None
        if kind == "stop":
            break
        if kind == "game_state":
            state = message.get("state")
            runner.api.match.game_state = state if isinstance(state, str) else None
    runner.shutdown()
