"""Credentials end to end through real processes: ``runtime health``, ``runtime mqtt-server``
with the shipped password file and ACL, and a service whose login is refused."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from runtime.mqtt_server import free_port

from tests.deploy.conftest import CONFIG_DIR, Credentials, account_url, login
from tests.support.brokers import TestBroker, wait_listening


async def runtime_cli(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def monitor_url(broker: TestBroker, credentials: Credentials) -> str:
    return account_url(broker, "monitor", credentials.passwords["monitor"])


async def test_health_says_online_then_offline(secure_broker: TestBroker,
                                               credentials: Credentials, robot_name: str) -> None:
    url = monitor_url(secure_broker, credentials)
    async with login(secure_broker, credentials, "executor", robot_name, service="executor"):
        code, out, err = await runtime_cli("health", "executor", "--mqtt", url,
                                           "--robot", robot_name, "--local", "--timeout", "20")
        assert (code, err) == (0, "")
        assert out.startswith(f"{robot_name}/executor: online (pid {os.getpid()}, version ")
    code, out, err = await runtime_cli("health", "executor", "--mqtt", url, "--robot", robot_name,
                                       "--timeout", "20")
    assert code == 1
    assert err.startswith(f"error: {robot_name}/executor: offline (pid {os.getpid()}")
    assert err.count("\n") == 1


async def test_health_of_a_service_that_never_ran(secure_broker: TestBroker,
                                                  credentials: Credentials,
                                                  robot_name: str) -> None:
    code, out, err = await runtime_cli("health", "device", "--mqtt",
                                       monitor_url(secure_broker, credentials),
                                       "--robot", robot_name, "--timeout", "1")
    assert (code, out) == (1, "")
    assert err == (f"error: {robot_name}/device: no status published within 1 s "
                   "(is it running?)\n")


async def test_health_reports_a_refused_login_in_one_line(secure_broker: TestBroker,
                                                          robot_name: str) -> None:
    url = account_url(secure_broker, "monitor", "not-the-password")
    code, out, err = await runtime_cli("health", "broker", "--mqtt", url, "--robot", robot_name)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: broker {secure_broker.host}:{secure_broker.port} refused "
                          "user 'monitor'")
    assert err.count("\n") == 1


async def test_mqtt_server_enforces_the_shipped_password_file_and_acl(
    credentials: Credentials, robot_name: str, tmp_path
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", "mqtt-server", "--listen", f"127.0.0.1:{port}",
        "--password-file", str(credentials.password_file), "--acl-file", str(CONFIG_DIR / "acl"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.to_thread(wait_listening, "127.0.0.1", port,
                                alive=lambda: process.returncode is None)
        base = f"127.0.0.1:{port}"
        executor = f"mqtt://executor:{credentials.passwords['executor']}@{base}"
        field = f"mqtt://field:{credentials.passwords['field']}@{base}"
        # The field account may set the mode, but no executor runs: the call times out, which
        # shows the request was sent and the login accepted. Anonymous is refused at once.
        code, _, err = await runtime_cli("call", "executor", "get_mode", "--mqtt", field,
                                         "--robot", robot_name, "--timeout", "0.5")
        assert code == 1 and "no reply from executor.get_mode" in err, err
        code, _, err = await runtime_cli("health", "broker", "--mqtt", f"mqtt://{base}",
                                         "--robot", robot_name)
        assert code == 1 and "refused anonymous login" in err, err
        code, _, err = await runtime_cli("health", "broker", "--mqtt", executor,
                                         "--robot", robot_name, "--timeout", "0.5")
        assert code == 1 and "no status published" in err, err
    finally:
        process.terminate()
        _, err_bytes = await asyncio.wait_for(process.communicate(), 30)
    assert "logins required, ACL enforced" in err_bytes.decode()


async def test_mqtt_server_refuses_a_plain_text_password_file(tmp_path) -> None:
    plain = tmp_path / "passwd"
    plain.write_text("driver:secret\n")
    code, _, err = await runtime_cli("mqtt-server", "--listen", f"127.0.0.1:{free_port()}",
                                     "--password-file", str(plain))
    assert code == 1
    assert err == (f"error: MQTT password file {plain} line 1: expected user:$7$... (a hash "
                   "made by mosquitto_passwd), not plain text\n")


@pytest.mark.slow
async def test_a_service_with_a_wrong_password_logs_one_clear_line(
    secure_broker: TestBroker, robot_name: str, tmp_path
) -> None:
    url = account_url(secure_broker, "broker", "wrong")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", "service", "broker", "--mqtt", url,
        "--robot", robot_name, "--state-dir", str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        # A service that cannot log in never says "ready" (online means ready): it says once
        # why, and that it keeps waiting for the broker.
        while not (any("refused user" in line for line in lines)
                   and any("waiting for broker" in line for line in lines)):
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, f"the service exited: {lines}"
            lines.append(line.decode())
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    assert not any("service ready" in line for line in lines), lines
    assert not any("wrong" in line for line in lines), lines  # the password is never shown
    about_login = [line for line in lines if "refused" in line]
    assert len(about_login) == 1, lines
    assert "refused user 'broker'" in about_login[0]
