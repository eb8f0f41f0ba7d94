"""Supervised child processes for ``runtime up``: start, watch, restart with backoff, stop.

Each service runs as ``python -m runtime service NAME ...`` in its own session, so a Ctrl-C in
the terminal reaches only the supervisor, which then stops the children in order (SIGTERM,
wait, SIGKILL). Children also get SIGTERM from the kernel if the supervisor dies without
cleaning up (``PR_SET_PDEATHSIG``), so a killed ``runtime up`` leaves no orphans behind.

A child that exits on its own is restarted after a delay that doubles with every quick crash;
one that crashes ``max_crashes`` times within ``window`` seconds is reported and left stopped
while the other services keep running.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runtime.backoff import backoff_delay
from runtime.up.logstream import LogStream

log = logging.getLogger("runtime.up")
PR_SET_PDEATHSIG = 1
LINE_LIMIT = 1 << 20

_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: children just will not follow a killed parent
    _prctl = None


@dataclass(frozen=True)
class RestartPolicy:
    """When and how often a crashed child is restarted."""

    first_delay: float = 0.5
    max_delay: float = 8.0
    max_crashes: int = 5
    window: float = 60.0
    stable_after: float = 30.0

    def delay(self, consecutive: int) -> float:
        """Seconds to wait before restart number ``consecutive`` (1, 2, ...) of a quick crash."""
        return backoff_delay(consecutive, self.first_delay, self.max_delay)


def describe_exit(code: int) -> str:
    """``exited with code 3`` / ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _child_setup(parent: int) -> None:
    """In the child, before exec: die with the supervisor (Linux), even if it is SIGKILLed."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the supervisor died between fork and prctl
        os._exit(1)


class ServiceProcess:
    """One supervised child: its output goes to the log stream under ``name``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        stream: LogStream,
        *,
        env: dict[str, str] | None = None,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.stream = stream
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.policy = policy or RestartPolicy()
        self.state = "new"
        self.starts = 0
        self.crashes: collections.deque[float] = collections.deque()
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The running child's pid (None between restarts, after giving up, or when stopped)."""
        process = self._process
        return process.pid if process and process.returncode is None else None

    def start(self) -> None:
        """Start supervising (returns at once; the child starts in the background)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"supervise-{self.name}"
            )

    async def wait(self) -> None:
        """Until supervision ends (stopped, or given up on)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the child, SIGKILL it after ``timeout`` s, and end supervision."""
        self._stopping.set()
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), timeout)
            except TimeoutError:
                log.warning("%s did not stop within %g s: killing it", self.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._task is not None:
            await self._task
        self.state = "failed" if self.state == "failed" else "stopped"

    async def _spawn(self) -> asyncio.subprocess.Process:
        parent = os.getpid()
        process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=lambda: _child_setup(parent),
            limit=LINE_LIMIT,
        )
        self.starts += 1
        return process

    async def _pump(self, process: asyncio.subprocess.Process) -> None:
        """Copy the child's output, line by line, into the log stream."""
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:
                self.stream.line(self.name, f"(a line longer than {LINE_LIMIT} bytes was cut)")
                continue
            if not line:
                return
            self.stream.line(self.name, line.decode(errors="replace"))

    async def _supervise(self) -> None:
        consecutive = 0
        while not self._stopping.is_set():
            try:
                process = await self._spawn()
            except OSError as exc:
                log.error("cannot start %s: %s", self.name, exc)
                self.state = "failed"
                return
            self._process = process
            self.state = "running"
            started = time.monotonic()
            pump = asyncio.create_task(self._pump(process))
            code = await process.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pump, 2.0)  # a grandchild may hold the pipe open
            pump.cancel()
            if self._stopping.is_set():
                return
            now = time.monotonic()
            self.crashes.append(now)
            while self.crashes and now - self.crashes[0] > self.policy.window:
                self.crashes.popleft()
            if len(self.crashes) >= self.policy.max_crashes:
                log.error(
                    "%s %s and has crashed %d times within %g s: giving up on it "
                    "(the rest keeps running; see its log above)",
                    self.name,
                    describe_exit(code),
                    len(self.crashes),
                    self.policy.window,
                )
                self.state = "failed"
                self._process = None
                return
            consecutive = 1 if now - started >= self.policy.stable_after else consecutive + 1
            delay = self.policy.delay(consecutive)
            log.warning(
                "%s %s; restarting it in %g s (crash %d of %d allowed within %g s)",
                self.name,
                describe_exit(code),
                delay,
                len(self.crashes),
                self.policy.max_crashes - 1,
                self.policy.window,
            )
            self.state = "restarting"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
