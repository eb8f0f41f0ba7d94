"""``runtime up`` with logins on the embedded broker: the password file and ACL of Mosquitto."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.e2e.robot import RUNTIME, RunningRobot

pytestmark = pytest.mark.slow


def _passwd(path, user: str, password: str) -> None:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([tool, "-b", "-c", str(path), user, password], check=True,
                   capture_output=True)


def test_services_log_in_and_anonymous_clients_are_refused(tmp_path):
    _passwd(tmp_path / "passwd", "admin", "s3cret")
    (tmp_path / "acl").write_text("user admin\ntopic readwrite #\n")
    (tmp_path / "password").write_text("s3cret\n")
    robot = RunningRobot(
        f"auth{uuid.uuid4().hex[:6]}", tmp_path / "state", "--simulate", "LimitSwitch:5",
        "--broker-password-file", str(tmp_path / "passwd"), "--broker-acl-file",
        str(tmp_path / "acl"), "--user", "admin", "--password-file", str(tmp_path / "password"))
    try:
        robot.wait_until_up()
        base = ["--robot", robot.robot, "--timeout", "30"]
        logged_in = subprocess.run(
            [*RUNTIME, "devices", *base, "--mqtt", f"mqtt://admin@127.0.0.1:{robot.port}",
             "--password-file", str(tmp_path / "password")],
            capture_output=True, text=True, timeout=60)
        assert logged_in.returncode == 0, logged_in.stderr
        assert "LimitSwitch" in logged_in.stdout
        anonymous = subprocess.run([*RUNTIME, "devices", *base, "--mqtt", robot.url],
                                   capture_output=True, text=True, timeout=60)
        assert anonymous.returncode == 1
        assert anonymous.stderr.startswith("error: ") and "Traceback" not in anonymous.stderr
        assert "not authori" in anonymous.stderr or "refused" in anonymous.stderr, anonymous.stderr
    finally:
        assert robot.stop() == 0


def test_a_password_file_without_a_login_is_a_clear_error(tmp_path):
    _passwd(tmp_path / "passwd", "admin", "s3cret")
    result = subprocess.run([*RUNTIME, "up", "--state-dir", str(tmp_path / "state"),
                             "--broker-password-file", str(tmp_path / "passwd")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "give --user NAME and --password-file FILE" in result.stderr
