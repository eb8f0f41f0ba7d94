"""``runtime up`` as a subprocess, as a user starts it, plus helpers to watch and drive it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from runtime.buffer.segment import SHM_DIR
from runtime.mqtt_server import free_port
from runtime.remote import call_sync

RUNTIME = [sys.executable, "-m", "runtime"]


class RunningRobot:
    """``runtime up ...`` with its output collected line by line in a thread."""

    def __init__(self, robot: str, state_dir: Path, *args: str, mqtt: str | None = None) -> None:
        self.robot = robot
        self.state_dir = state_dir
        self.port = free_port()
        self.url = mqtt or f"mqtt://127.0.0.1:{self.port}"
        argv = [*RUNTIME, "up", "--robot", robot, "--state-dir", str(state_dir), *args]
        # the page and the gateway listen on fixed default ports: a test asks for them
        # (on a free port) when it uses them, so robots of parallel tests never compete
        for option in ("--web", "--gateway"):
            if option not in args:
                argv += [option, "off"]
        argv += ["--mqtt", mqtt] if mqtt else ["--listen", f"127.0.0.1:{self.port}"]
        env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 60.0) -> str:
        """The first output line containing ``text`` (AssertionError with the log if none)."""
        deadline = time.monotonic() + timeout
        for line in list(self.lines):
            if text in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; output so far:\n{self.output()}")

    def wait_until_up(self, timeout: float = 60.0) -> str:
        """The "Runtime is up: ..." line; AssertionError with the log if ``runtime up`` said
        "Runtime is up but not ready" instead (a service or device missing after 30 s)."""
        line = self.wait_for_line("Runtime is up", timeout)
        assert line.startswith("Runtime is up:"), f"{line}\noutput so far:\n{self.output()}"
        return line

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A ``runtime`` command against this robot, with ``--timeout 30`` (the default 5 s is
        a person's patience; on a loaded 2-core CI machine an answer may take longer)."""
        result = subprocess.run([*RUNTIME, *args, "--mqtt", self.url, "--robot", self.robot,
                                 "--timeout", "30"],
                                capture_output=True, text=True, timeout=90)
        if check and result.returncode != 0:
            raise AssertionError(f"runtime {' '.join(args)} failed: {result.stderr}")
        return result

    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return call_sync(self.url, service, method, args, kwargs, robot=self.robot, timeout=10)

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def segments(self) -> list[str]:
        return [name for name in os.listdir(SHM_DIR) if name.startswith(f"runtime.{self.robot}@")]

    def stop(self) -> int:
        """Ctrl-C, as a user would; the exit code."""
        children = self.children()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        _, alive = psutil.wait_procs(children, timeout=10)
        for process in alive:
            process.kill()
        assert not alive, f"processes left behind: {alive}"
        return code
