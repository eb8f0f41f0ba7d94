"""``runtime up`` refusing to start says why in one line, exit code 1, and changes nothing on
disk: the state dir of a refused start is byte-identical afterwards (the robot already using
it keeps its aliases), whatever the reason (port taken, a robot of that name already running
on this machine or on the broker, conflicting options, duplicate simulated devices)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from runtime.mqtt_server import free_port

from tests.e2e.robot import RUNTIME, RunningRobot

pytestmark = pytest.mark.slow


def snapshot(state: Path) -> dict[str, bytes]:
    """Every file under ``state`` (relative path -> bytes): what "nothing changed" compares."""
    return {str(path.relative_to(state)): path.read_bytes()
            for path in sorted(state.rglob("*")) if path.is_file()}


def used_state(tmp_path: Path) -> Path:
    """A state dir as a running robot leaves it: options, aliases, a student program."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "options.json").write_text('{"data_rate": 10}\n')
    (state / "aliases.json").write_text('{"koala": "61409211021379097329706"}\n')
    (state / "studentcode.py").write_text("def teleop_main():\n    pass\n")
    return state


def up(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A ``runtime up`` that is expected to be refused (so it returns by itself)."""
    return subprocess.run([*RUNTIME, "up", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    return errors[0]


def test_a_taken_port_is_one_clear_line_and_writes_nothing(tmp_path):
    state = used_state(tmp_path)
    before = snapshot(state)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        results = [
            up("--state-dir", str(state), "--simulate", "KoalaBear", "--listen",
               f"127.0.0.1:{port}"),
            subprocess.run([*RUNTIME, "mqtt-server", "--listen", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=60),
        ]
    for result in results:
        assert_one_line_refusal(
            result, f"cannot listen on 127.0.0.1:{port}: the address is already in use")
    assert snapshot(state) == before  # the koala alias of the robot using the port is intact


def test_an_unknown_simulated_type_is_refused(tmp_path):
    result = up("--simulate", "Toaster", "--state-dir", str(tmp_path / "state"))
    assert_one_line_refusal(result, "--simulate Toaster: unknown device type 'Toaster'")
    assert not (tmp_path / "state").exists()


def test_a_duplicate_simulated_uid_is_refused_at_the_command_line(tmp_path):
    state = used_state(tmp_path)
    before = snapshot(state)
    koala_1 = str((13 << 72) | (1 << 64) | 1)  # the full uid of KoalaBear:1
    for specs in (["KoalaBear:7", "KoalaBear:7"], ["KoalaBear:1", f"KoalaBear:{koala_1}"]):
        args = [item for spec in specs for item in ("--simulate", spec)]
        result = up(*args, "--state-dir", str(state), "--listen", f"127.0.0.1:{free_port()}")
        assert_one_line_refusal(result, f"--simulate {specs[0]} and --simulate {specs[1]} are "
                                        "the same device", "give each its own uid")
    assert snapshot(state) == before


def test_listen_with_runtime_mqtt_in_the_environment_is_refused(tmp_path):
    state = used_state(tmp_path)
    before = snapshot(state)
    port = free_port()
    result = up("--listen", f"127.0.0.1:{port}", "--state-dir", str(state),
                env={"RUNTIME_MQTT": "mqtt://driver:s3cret@127.0.0.1:1"})
    line = assert_one_line_refusal(
        result, f"--listen 127.0.0.1:{port} asks for the embedded broker but RUNTIME_MQTT=",
        "unset RUNTIME_MQTT")
    assert "s3cret" not in line  # the password is not echoed
    result = up("--listen", f"127.0.0.1:{port}", "--mqtt", "mqtt://127.0.0.1:1",
                "--state-dir", str(state))
    assert_one_line_refusal(result, "not both")
    assert snapshot(state) == before


def test_runtime_mqtt_alone_names_the_broker_it_uses(tmp_path):
    """No --listen: RUNTIME_MQTT is used, said so, and an unreachable one is one line."""
    url = f"mqtt://127.0.0.1:{free_port()}"
    result = up("--state-dir", str(tmp_path / "state"), env={"RUNTIME_MQTT": url})
    assert f"using the MQTT broker of RUNTIME_MQTT ({url}); no embedded broker" in result.stderr
    assert_one_line_refusal(result, f"cannot connect to MQTT broker {url[7:]}")
    assert not (tmp_path / "state").exists()


@pytest.fixture
def running(tmp_path):
    robot = RunningRobot(f"e2e{uuid.uuid4().hex[:6]}", used_state(tmp_path),
                         "--simulate", "KoalaBear:42")
    robot.wait_until_up()
    yield robot
    assert robot.stop() == 0


def test_a_second_robot_of_one_name_is_refused_and_the_first_keeps_running(running):
    state = running.state_dir
    before = snapshot(state)
    name = running.robot
    # On this machine (another broker): its parameter buffers are held by live processes.
    result = up("--robot", name, "--state-dir", str(state), "--simulate", "KoalaBear",
                "--listen", f"127.0.0.1:{free_port()}")
    assert_one_line_refusal(result, f"a robot named {name!r} is already running on this "
                                    "machine", f"`kill {running.process.pid}`",
                            "or choose another --robot")
    # On its broker, seen from elsewhere (another shared-memory directory stands in for
    # another machine): its services' retained online statuses, and they answer.
    elsewhere = Path(state.parent / "shm")
    elsewhere.mkdir()
    result = up("--robot", name, "--state-dir", str(state), "--simulate", "KoalaBear",
                "--mqtt", running.url, env={"RUNTIME_SHM_DIR": str(elsewhere)})
    line = assert_one_line_refusal(
        result, f"a robot named {name!r} is already running on the broker {running.url}",
        "broker pid", "device pid", "executor pid", f"`kill {running.process.pid}`")
    named = {int(pid) for pid in re.findall(r"(?:broker|device|executor) pid (\d+)", line)}
    assert len(named) == 3 and named <= {child.pid for child in running.children()}, line
    assert snapshot(state) == before
    assert running.call("executor", "get_mode")["mode"] == "idle"  # still serving
    assert "koala" in running.call("broker", "list_aliases")
