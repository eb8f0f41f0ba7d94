"""The README's first command, as a new user meets it: a fresh clone, no venv yet.

The install must say what it does and roughly how long it takes (one line per step), show no
warning block (pip's and setuptools' output go to ``.venv/install.log``), install no test-only
tools, and end with the robot up. Uses the machine's pip configuration and cache (a warm cache
makes this about a minute; a cold one needs the network).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from runtime.mqtt_server import free_port

from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def readme_first_command() -> list[str]:
    """The first line of the README's first shell block, without its comment."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has no ```bash block"
    return shlex.split(block.group(1).splitlines()[0].split("#", 1)[0])


def test_the_readme_first_command_from_a_fresh_clone(tmp_path):
    command = readme_first_command()
    assert command[:2] == ["./run", "up"], command
    clone = tmp_path / "runtime"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {key: value for key, value in os.environ.items()
           if key not in ("RUNTIME_VENV", "VIRTUAL_ENV", "RUNTIME_MQTT", "RUNTIME_ROBOT")}
    # The user's command, on ports and a robot name of its own (tests run side by side).
    argv = [*command, "--listen", f"127.0.0.1:{free_port()}", "--robot",
            f"first{uuid.uuid4().hex[:6]}"]
    process = subprocess.Popen(argv, cwd=clone, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env={**env, "NO_COLOR": "1"})
    lines: list[str] = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Runtime is up") or line.startswith("Runtime is up but"):
                break
        assert any(line.startswith("Runtime is up: robot") for line in lines), "\n".join(lines)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    install = [line for line in lines if line.startswith("run:")]
    text = "\n".join(lines)
    # Progress: what, where, roughly how long; then each step with its time.
    assert re.match(r"run: installing Runtime into .*\.venv \(first run .*about a minute",
                    install[0]), text
    assert any(re.match(r"run:   installing the project and its dependencies\.\.\. done \(\d+ s\)",
                        line) for line in install), text
    assert re.match(r"run: installed in \d+ s", install[-1]), text
    # No warning block between the command and the robot's own log.
    before_robot = lines[: next(i for i, line in enumerate(lines) if " | " in line)]
    assert before_robot == install, text
    assert not any(re.search(r"warning|!!|\*\*\*\*", line, re.I) for line in before_robot)
    # Only what the robot needs: the test tools are not installed by `./run up`.
    venv = clone / ".venv"
    assert (venv / "bin" / "runtime").exists() and not (venv / "bin" / "pytest").exists()
    log = (venv / "install.log").read_text()  # pip's own output went to the log
    assert "== installing the project and its dependencies" in log and "Successfully" in log
    wait_for(lambda: process.poll() is not None, 60)
