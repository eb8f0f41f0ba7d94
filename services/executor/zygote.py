"""The zygote: a warm, pre-imported process that forks one student process per run.

Why a zygote (and not ``fork`` from the control process, nor a fresh ``spawn`` per run):

- a fresh interpreter that imports Runtime takes hundreds of milliseconds; a fork of a process
  that already imported everything takes a few (mode change -> first ``*_setup`` is measured in
  ``bench/stop.py``);
- the control process has threads and an asyncio loop; forking it would copy locks held by
  other threads. The zygote is single-threaded, so its forks are clean;
- the student process's parent is the zygote, not the control process: a student's
  ``os.kill(os.getppid(), SIGKILL)`` kills the zygote (and, through ``PR_SET_PDEATHSIG``, the
  student process itself), never the control process, which starts a new zygote.

Protocol on one ``SOCK_SEQPACKET`` pair (CBOR maps, one per packet):

- control -> zygote: ``{kind: "start", run, spec}`` with the child's channel socket as an
  ``SCM_RIGHTS`` fd;
- zygote -> control: ``{kind: "ready"}`` once imported; ``{kind: "started", run, pid}`` with a
  pidfd of the child (so control signals the right process even after the pid is reused);
  ``{kind: "exited", run, pid, status}`` (a ``waitpid`` status) when it ended. Before reaping
  the child, the zygote SIGKILLs the child's process group (the zombie leader keeps its id
  reserved), so the student's subprocesses end with the run.

The zygote dies with the control process (``PR_SET_PDEATHSIG``) and when the channel closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import select
import signal
import socket
import subprocess
import sys
from typing import Any

import cbor2

log = logging.getLogger("runtime.service.executor")

MAX_MESSAGE = 1 << 16
SPAWN_TIMEOUT = 5.0  #: seconds the zygote has to fork a student process
START_TIMEOUT = 30.0  #: seconds a new zygote has to import Runtime
ZYGOTE_MAIN = "import sys; from runtime.service.executor.zygote import main; main(sys.argv[1])"


# -- the zygote process -------------------------------------------------------------------------
def main(fd: str) -> None:
    """The zygote process's entry point: serve until the control process goes away."""
    with contextlib.suppress(OSError, KeyboardInterrupt):  # the control process went away
        serve(int(fd))


def serve(fd: int) -> None:
    """The zygote's loop (``python -m runtime.service.executor.zygote FD``)."""
    from runtime.service.executor.child import (
        child_main,
        set_parent_death_signal,
        set_process_name,
    )

    set_parent_death_signal()
    set_process_name("runtime-zygote")
    if os.getppid() == 1:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the control process's to handle
    sock = socket.socket(fileno=fd)
    children: dict[int, tuple[int, Any]] = {}  # pidfd -> (pid, run)
    sock.sendall(cbor2.dumps({"kind": "ready"}))
    while True:
        watched: list[Any] = [sock, *children]
        ready, _, _ = select.select(watched, [], [])
        for fd_ in ready:
            if fd_ is sock:
                try:
                    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
                except OSError:
                    data, fds = b"", []
                if not data:
                    return
                message = cbor2.loads(data)
                if message.get("kind") != "start" or not fds:
                    for extra in fds:
                        os.close(extra)
                    continue
                pid = os.fork()
                if pid == 0:
                    sock.close()
                    for pidfd in children:
                        os.close(pidfd)
                    child_main(fds[0], {**message["spec"], "zygote": os.getppid()})
                os.close(fds[0])
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, message.get("run"))
                socket.send_fds(sock, [cbor2.dumps({"kind": "started", "run": message.get("run"),
                                                    "pid": pid})], [pidfd])
            else:
                assert isinstance(fd_, int)
                pid, run = children.pop(fd_)
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)  # the student's own subprocesses
                _, status = os.waitpid(pid, 0)
                os.close(fd_)
                with contextlib.suppress(OSError):
                    sock.sendall(cbor2.dumps({"kind": "exited", "run": run, "pid": pid,
                                              "status": status}))


# -- the control process's side -----------------------------------------------------------------
class StudentProcess:
    """One student process as the control process sees it: pid, pidfd, channel, exit."""

    def __init__(self, run: int, pid: int, pidfd: int, channel: socket.socket) -> None:
        self.run = run
        self.pid = pid
        self.pidfd = pidfd
        self.channel = channel
        self.gone = asyncio.Event()  #: the process no longer runs (pidfd readable)
        self.status: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.notes: list[str] = []  #: last words sent by the program (child.py)
        self.stopping = False  #: control asked it to stop (its end is not a crash)
        self.generation = 0  #: the mode change it runs for (the Dispatcher's count)
        self._closed = False

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.channel.send(cbor2.dumps(message))

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self._closed:  # the pidfd number may belong to something else by now
            return
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.pidfd, signum)

    def set_status(self, status: int | None) -> None:
        if not self.status.done():
            self.status.set_result(status)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.close(self.pidfd)
        with contextlib.suppress(OSError):
            self.channel.close()


class Zygote:
    """Starts the zygote process and student processes through it (control process side).

    ``on_message(process, message)`` receives each channel message of a student process, in
    order; ``on_gone(process)`` is called once when it has ended, after its last message.
    """

    def __init__(self, on_message: Any, on_gone: Any) -> None:
        self.on_message = on_message
        self.on_gone = on_gone
        self.process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future[None] | None = None
        self._started: dict[int, asyncio.Future[StudentProcess]] = {}
        self._children: dict[int, StudentProcess] = {}
        self._runs = itertools.count(1)
        self._lock = asyncio.Lock()
        self._restart: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._sock is not None

    async def start(self) -> None:
        """Start the zygote unless it runs; returns when it has imported everything."""
        async with self._lock:
            if self._sock is None:
                await self._start()
            assert self._ready is not None
            ready = self._ready
        try:
            await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT)
        except TimeoutError:
            if self.process is not None:
                self.process.kill()  # its channel closes: a later start tries again
            raise RuntimeError(f"the zygote process did not start within {START_TIMEOUT:g} s"
                               ) from None

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # glibc arenas count against RLIMIT_AS
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", ZYGOTE_MAIN, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_zygote, ours)

    def _on_zygote(self, sock: socket.socket) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            self._zygote_gone(sock)
            return
        message = cbor2.loads(data)
        kind = message.get("kind")
        if kind == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        elif kind == "started":
            future = self._started.pop(message["run"], None)
            if future is None or future.done() or not fds:
                for fd in fds:
                    os.close(fd)
                return
            channel = future.channel  # type: ignore[attr-defined]
            process = StudentProcess(message["run"], message["pid"], fds[0], channel)
            self._children[process.run] = process
            loop = asyncio.get_running_loop()
            loop.add_reader(channel.fileno(), self._on_channel, process)
            loop.add_reader(process.pidfd, self._on_exit, process)
            future.set_result(process)
        elif kind == "exited":
            ended = self._children.get(message["run"])
            if ended is not None:
                ended.set_status(message["status"])
                if ended.gone.is_set():
                    self._children.pop(ended.run, None)

    def _zygote_gone(self, sock: socket.socket) -> None:
        """The zygote died (killed by a student, or crashed): its children die with it."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        sock.close()
        self._sock = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(RuntimeError("the zygote process ended while starting"))
        for future in self._started.values():
            if not future.done():
                future.set_exception(RuntimeError("the zygote process ended"))
        self._started.clear()
        for process in list(self._children.values()):
            process.set_status(None)
        was_ready = self._ready is not None and self._ready.done() and \
            self._ready.exception() is None
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.process.wait(1.0)
            log.warning("the zygote process ended (%s)%s", _status_text(self.process.returncode),
                        "; starting a new one" if was_ready else "")
            self.process = None
        if was_ready:  # warm again before the next run (one that failed to start: not again)
            self._restart = asyncio.get_running_loop().create_task(self._restart_quietly())

    async def _restart_quietly(self) -> None:
        try:
            await self.start()
        except Exception as exc:
            log.error("cannot start the zygote process: %s", exc)

    def _on_channel(self, process: StudentProcess) -> None:
        self._drain(process)

    def _drain(self, process: StudentProcess) -> bool:
        """Hand on every waiting message; False once the channel is closed."""
        while True:
            try:
                data = process.channel.recv(MAX_MESSAGE)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(process.channel.fileno())
                return False
            try:
                message = cbor2.loads(data)
            except Exception:
                continue
            if isinstance(message, dict):
                if message.get("kind") == "note":
                    process.notes.append(str(message.get("text")))
                self.on_message(process, message)

    def _on_exit(self, process: StudentProcess) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(process.pidfd)
        self._drain(process)  # its last words first
        with contextlib.suppress(Exception):
            loop.remove_reader(process.channel.fileno())
        process.gone.set()
        if process.status.done():
            self._children.pop(process.run, None)
        self.on_gone(process)

    async def spawn(self, spec: dict[str, Any]) -> StudentProcess:
        """Fork a student process for ``spec`` (child.py); starts the zygote if needed."""
        await self.start()
        sock = self._sock
        if sock is None:
            raise RuntimeError("the zygote process is not running")
        run = next(self._runs)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        future: asyncio.Future[StudentProcess] = asyncio.get_running_loop().create_future()
        future.channel = ours  # type: ignore[attr-defined]
        self._started[run] = future
        try:
            socket.send_fds(sock, [cbor2.dumps({"kind": "start", "run": run, "spec": spec})],
                            [theirs.fileno()])
        except OSError as exc:
            self._started.pop(run, None)
            ours.close()
            raise RuntimeError(f"cannot reach the zygote process: {exc}") from None
        finally:
            theirs.close()
        try:
            return await asyncio.wait_for(future, SPAWN_TIMEOUT)
        except TimeoutError:
            ours.close()
            self._started.pop(run, None)
            if self.process is not None and self._sock is sock:  # frozen (SIGSTOPped?)
                log.warning("the zygote process did not answer within %g s: killing it",
                            SPAWN_TIMEOUT)
                self.process.kill()
                self._zygote_gone(sock)  # now, so that the next spawn starts a new one
            raise RuntimeError(f"the zygote process did not answer within {SPAWN_TIMEOUT:g} s"
                               ) from None
        except BaseException:
            ours.close()
            raise

    def close(self) -> None:
        """Kill every student process and end the zygote."""
        if self._restart is not None:
            self._restart.cancel()
        for process in list(self._children.values()):
            process.kill()
            process.close()
        self._children.clear()
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self.process is not None:
            try:
                self.process.wait(2.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def _status_text(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"

