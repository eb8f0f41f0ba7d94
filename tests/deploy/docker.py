"""Docker for the deployment tests: Debian's docker.io, docker-compose 1.29 and debootstrap,
installed when missing (as root, like ``run test`` installs Mosquitto), and a Docker engine:
the one running, else ``dockerd --iptables=false --bridge=none`` started here and stopped
again by ``DockerDaemon.stop()``. Containers use the host's network, so no bridge is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.deploy.images import docker_binary, docker_env

PACKAGES = {"dockerd": "docker.io", "docker-compose": "docker-compose",
            "debootstrap": "debootstrap"}
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
START_TIMEOUT = 60.0


def find_tool(name: str) -> str | None:
    for directory in SBIN:
        path = Path(directory) / name
        if path.is_file():
            return str(path)
    return shutil.which(name)


def ensure_tools() -> None:
    """Install whichever of docker.io, docker-compose, debootstrap is missing (root only)."""
    missing = sorted({package for tool, package in PACKAGES.items() if find_tool(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise AssertionError(f"missing {', '.join(missing)}: apt-get install {' '.join(missing)}"
                             " (as root), then run the tests again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")


def daemon_answers() -> bool:
    result = subprocess.run([docker_binary(), "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True, env=docker_env(), timeout=30)
    return result.returncode == 0 and bool(result.stdout.strip())


class DockerDaemon:
    """The Docker engine for the tests: an existing one, or one started (and stopped) here."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self) -> None:
        ensure_tools()
        if daemon_answers():
            return
        if os.geteuid() != 0:
            raise AssertionError("no Docker engine runs and starting dockerd needs root")
        dockerd = find_tool("dockerd")
        assert dockerd is not None
        handle, name = tempfile.mkstemp(prefix="dockerd-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(handle, "wb") as log:
            self.process = subprocess.Popen(
                [dockerd, "--iptables=false", "--bridge=none"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not daemon_answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_text = self.log_path.read_text(errors="replace")[-3000:]
                self.stop()
                raise AssertionError(f"dockerd did not come up:\n{log_text}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the dockerd started here (an engine that was already running stays)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
