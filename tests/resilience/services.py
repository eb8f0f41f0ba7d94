"""One Runtime service as a real subprocess (``runtime service NAME``), its output collected."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

RUNTIME = [sys.executable, "-m", "runtime"]


class ServiceProcess:
    """``runtime service NAME --mqtt URL --robot R --state-dir D`` with its log lines kept."""

    def __init__(self, name: str, url: str, robot: str, state_dir: Path, *extra: str) -> None:
        self.name = name
        self.argv = [*RUNTIME, "service", name, "--mqtt", url, "--robot", robot,
                     "--state-dir", str(state_dir), "--observer", "poll",
                     "--serial-glob", str(state_dir / "no-serial-*"), *extra]
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> ServiceProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: int) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signum)

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it does not end; the exit code."""
        assert self.process is not None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return self.process.returncode or 0

    async def __aenter__(self) -> ServiceProcess:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
