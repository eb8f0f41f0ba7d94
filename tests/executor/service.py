"""A real executor service process (``runtime service executor``) and a client that records
its ``match`` and ``log/student`` (shared by the service tests)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from runtime.aliases import set_alias
from runtime.messages import LogRecord, Match, decode
from runtime.remote import Client, Connection

from tests.executor.rig import KOALA
from tests.support.wait import wait_for_async


class Executor:
    """A running executor process plus a client connection that records match and logs."""

    def __init__(self, broker, robot: str, state: Path) -> None:
        self.broker = broker
        self.robot = robot
        self.state = state
        self.matches: list[Match] = []
        self.logs: list[LogRecord] = []
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, connection: Connection) -> None:
        self.client = Client(connection)
        await connection.subscribe(connection.topics.match,
                                   lambda t, p: self.matches.append(decode(Match, p)), qos=1)
        await connection.subscribe(connection.topics.log("student"),
                                   lambda t, p: self.logs.append(decode(LogRecord, p)))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runtime", "service", "executor", "--mqtt", self.broker.url,
            "--robot", self.robot, "--state-dir", str(self.state),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        await wait_for_async(lambda: self.matches, 30, message="no retained match published")

    async def call(self, method: str, *args, **kwargs):
        return await self.client.call("executor", method, *args, **kwargs)

    async def upload_and_check(self, source: str) -> None:
        result = await self.call("upload", source)
        assert len(result["sha256"]) == 64

    def messages(self, fragment: str = "") -> list[str]:
        return [r.message for r in list(self.logs) if fragment in r.message]

    async def count(self, fragment: str, n: int, timeout: float = 10.0) -> list[str]:
        """Wait until ``n`` student log messages contain ``fragment``; those messages."""
        return await wait_for_async(lambda: len(self.messages(fragment)) >= n
                                    and self.messages(fragment), timeout, message=lambda:
                                    f"not {n} x {fragment!r} in {self.messages()}")

    async def log(self, fragment: str) -> str:
        def find():
            return next((r.message for r in self.logs if fragment in r.message), None)
        return await wait_for_async(find, message=lambda: f"no {fragment!r} in "
                                    f"{[r.message for r in self.logs]}")

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode


@contextlib.asynccontextmanager
async def running_executor(broker, robot_name: str, tmp_path: Path
                           ) -> AsyncIterator[tuple[Executor, Connection]]:
    """An (unstarted) executor and a client connection; the process is stopped at the end and
    its stderr must hold no traceback."""
    set_alias(tmp_path, "koala", str(KOALA))
    executor = Executor(broker, robot_name, tmp_path)
    async with Connection(broker.url, robot=robot_name) as connection:
        try:
            yield executor, connection
        finally:
            if executor.process is not None:
                await executor.stop()
                stderr = await executor.process.stderr.read()
                assert b"Traceback (most recent" not in stderr, stderr.decode()


