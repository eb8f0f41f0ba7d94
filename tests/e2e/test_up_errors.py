"""``runtime up`` refusing to start says why in one line, and leaves nothing behind."""

from __future__ import annotations

import socket
import subprocess

from tests.e2e.robot import RUNTIME


def test_a_taken_port_is_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        commands = (["up", "--state-dir", str(tmp_path / "state")], ["mqtt-server"])
        results = [subprocess.run([*RUNTIME, *command, "--listen", f"127.0.0.1:{port}"],
                                  capture_output=True, text=True, timeout=60)
                   for command in commands]
    for result in results:
        assert result.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" \
            in result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def test_an_unknown_simulated_type_is_refused(tmp_path):
    result = subprocess.run([*RUNTIME, "up", "--simulate", "Toaster", "--state-dir",
                             str(tmp_path / "state")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--simulate Toaster: unknown device type 'Toaster'" in result.stderr
