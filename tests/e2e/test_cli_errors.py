"""The command line's error boundary: every failure is one ``error:`` line and exit code 1.

What a user types (an invalid ``--robot``, a password file that cannot be read, a bad address,
no robot to talk to) through the real ``runtime`` command line: checks refused at the command
line run in-process (``main.main`` as the ``runtime`` script calls it; a subprocess each would
cost a second of imports), those that connect somewhere as subprocesses; the boundary itself
with a command raising what no command should (a bug still prints one line).
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import click
import pytest
from runtime.cli.errors import RuntimeGroup
from runtime.exception import DeviceError
from runtime.mqtt_server import free_port

from tests.e2e.robot import RUNTIME

#: Every command that talks to a robot, with the arguments it needs to get that far.
ROBOT_COMMANDS = (
    ["mode", "idle"], ["devices"], ["devices", "--watch"], ["lint"], ["option", "get"],
    ["option", "set", "data_rate=10"], ["alias", "list"], ["alias", "set", "koala", "42"],
    ["upload", __file__], ["call", "executor", "get_mode"], ["monitor"], ["health", "broker"],
    ["drive"], ["console", "--no-follow"],
)


def run_all(commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*RUNTIME, *args], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(run, commands))


def in_process(args: list[str], capsys: pytest.CaptureFixture[str]
               ) -> subprocess.CompletedProcess[str]:
    """``runtime ARGS`` in this process, as the ``runtime`` script runs it."""
    from runtime.cli import main

    with pytest.raises(SystemExit) as exit_:
        main.main(args, prog_name="runtime")
    out, err = capsys.readouterr()
    code = exit_.value.code if isinstance(exit_.value.code, int) else 1
    return subprocess.CompletedProcess(["runtime", "-", "-", *args], code, out, err)


def assert_one_line(result: subprocess.CompletedProcess[str], *fragments: str,
                    after: int = 0) -> None:
    """Exit code 1 and one ``error:`` line on stderr (after ``after`` progress lines)."""
    what = " ".join(result.args[3:])
    assert result.returncode == 1, f"{what}: {result.returncode} {result.stderr}"
    lines = result.stderr.splitlines()[after:]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: {result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{what}: {lines[0]}"


def test_an_invalid_robot_name_is_one_line_for_every_command(capsys):
    for command in ROBOT_COMMANDS:
        result = in_process([*command, "--robot", "my robot/1"], capsys)
        assert_one_line(result, "Invalid value for '--robot'", "invalid robot name "
                        "'my robot/1'", "--help")


def test_a_password_file_that_cannot_be_read_is_one_line(tmp_path, capsys):
    missing, directory = tmp_path / "missing", tmp_path
    for command in [*ROBOT_COMMANDS, ["up"], ["service", "broker"]]:
        for path, reason in ((missing, "does not exist"), (directory, "is a directory")):
            result = in_process([*command, "--password-file", str(path)], capsys)
            assert_one_line(result, "Invalid value for '--password-file'", reason)


def test_a_bad_address_or_url_is_one_line(capsys):
    results = run_all([
        ["virtual-device", "KoalaBear", "--connect", "bogus"],
        ["virtual-device", "KoalaBear", "--connect", f"tcp:127.0.0.1:{free_port()}"],
        ["devices", "--mqtt", "mqtt://127.0.0.1:99999"],
    ])
    # A bad address is refused by the command line (runtime.address.AddressType) before the
    # device starts; a good one nobody listens on fails after it said which device it is.
    assert_one_line(results[0], "Invalid value for '--connect'", "bogus")
    assert_one_line(results[1], "127.0.0.1", after=1)
    assert_one_line(results[2], "invalid MQTT URL")
    assert "is the robot running" not in results[2].stderr  # a bad URL is not a dead robot
    assert_one_line(in_process(["mqtt-server", "--listen", "nowhere"], capsys),
                    "expected HOST:PORT")
    assert_one_line(in_process(["up", "--listen", "127.0.0.1:0x"], capsys), "expected HOST:PORT")


def test_no_robot_to_talk_to_is_one_line_with_the_likely_cause():
    url = f"mqtt://127.0.0.1:{free_port()}"
    results = run_all([[*command, "--mqtt", url, "--timeout", "1"]
                       for command in (["mode", "idle"], ["devices"])])
    for result in results:
        assert_one_line(result, f"cannot connect to MQTT broker {url[7:]}",
                        "is the robot running? start one with `runtime up`")


def boundary_group() -> click.Group:
    @click.group(cls=RuntimeGroup)
    def group() -> None:
        pass

    @group.command()
    @click.argument("kind")
    def boom(kind: str) -> None:
        if kind == "bug":
            raise KeyError("missing")
        if kind == "runtime":
            raise DeviceError("motor 7 is unplugged", uid="7")
        if kind == "os":
            raise FileNotFoundError(2, "No such file or directory", "/robot/studentcode.py")

    return group


@pytest.mark.parametrize(("kind", "line"), [
    ("bug", "error: unexpected KeyError: 'missing' (a bug in Runtime; run with RUNTIME_DEBUG=1 "
            "for the traceback)"),
    ("runtime", "error: motor 7 is unplugged"),
    ("os", "error: /robot/studentcode.py: No such file or directory"),
])
def test_the_boundary_turns_any_exception_into_one_line(kind, line, capsys, monkeypatch):
    monkeypatch.delenv("RUNTIME_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        boundary_group().main(["boom", kind], prog_name="runtime")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == line + "\n"


def test_usage_errors_are_one_line_and_exit_1(capsys):
    with pytest.raises(SystemExit) as exit_:
        boundary_group().main(["boom"], prog_name="runtime")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == ("error: Missing argument 'KIND'. (see `runtime boom "
                                       "--help`)\n")
