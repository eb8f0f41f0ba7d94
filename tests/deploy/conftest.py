"""The shipped broker configuration, running for real.

- ``credentials`` (session): passwords for every account made by the shipped
  ``broker-config/make-passwords`` (into a temporary env file and password file);
- ``secure_broker`` (module, parametrised ``mosquitto`` / ``amqtt``): Mosquitto running the
  shipped ``mosquitto.conf`` and ``acl`` (rewritten only for free ports and temporary paths), or
  the embedded amqtt broker given the same password file and ACL;
- ``login(broker, account, ...)``: an async context manager giving a connected
  ``runtime.remote.Connection`` as that account.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from runtime.mqtt_server import free_port
from runtime.remote import Connection

from tests.support.brokers import (
    AmqttTestBroker,
    MosquittoTestBroker,
    TestBroker,
    mosquitto_with_config,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "broker-config"
ACCOUNTS = ("broker", "device", "executor", "gateway", "driver", "field", "monitor",
            "operator")


@dataclass(frozen=True)
class Credentials:
    """What make-passwords produced: the env file, the password file, the passwords."""

    env_file: Path
    password_file: Path
    passwords: dict[str, str]


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def make_credentials(directory: Path, env_text: str = "") -> Credentials:
    """Run the shipped make-passwords on an env file holding ``env_text``."""
    env_file, password_file = directory / "env", directory / "passwd"
    env_file.write_text(env_text, encoding="utf-8")
    result = subprocess.run(
        [str(CONFIG_DIR / "make-passwords"), "--env-file", str(env_file),
         "--output", str(password_file)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"make-passwords failed: {result.stderr}"
    env = read_env(env_file)
    passwords = {account: env[f"MQTT_PASSWORD_{account.upper()}"] for account in ACCOUNTS}
    return Credentials(env_file, password_file, passwords)


@pytest.fixture(scope="session")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return make_credentials(tmp_path_factory.mktemp("credentials"))


def shipped_mosquitto_config(broker: MosquittoTestBroker, credentials: Credentials) -> str:
    """broker-config/mosquitto.conf with only its ports and paths moved into the test's own."""
    directory = broker.directory
    directory.chmod(0o755)  # Mosquitto reads the files as its own user after dropping root
    for name, source in (("passwd", credentials.password_file), ("acl", CONFIG_DIR / "acl")):
        target = directory / name
        target.write_bytes(source.read_bytes())
        target.chmod(0o644)
    data = directory / "data"
    data.mkdir()
    data.chmod(0o777)
    broker.log_path.touch()
    broker.log_path.chmod(0o666)
    text = (CONFIG_DIR / "mosquitto.conf").read_text(encoding="utf-8")
    broker.websockets_port = free_port()  # type: ignore[attr-defined]
    replacements = {
        "listener 1883\n": f"listener {broker.port} 127.0.0.1\n",
        "listener 9001\n": f"listener {broker.websockets_port}\n",  # type: ignore[attr-defined]
        "/mosquitto/config/passwd": str(directory / "passwd"),
        "/mosquitto/config/acl": str(directory / "acl"),
        "/mosquitto/data/": f"{data}/",
        "log_dest stdout": f"log_dest file {broker.log_path}",
    }
    for old, new in replacements.items():
        assert old in text, f"broker-config/mosquitto.conf no longer has {old!r}: update the test"
        text = text.replace(old, new)
    return text


def start_secure_broker(kind: str, credentials: Credentials) -> TestBroker:
    if kind == "mosquitto":
        return mosquitto_with_config(lambda b: shipped_mosquitto_config(b, credentials))
    broker = AmqttTestBroker(password_file=credentials.password_file,
                             acl_file=CONFIG_DIR / "acl")
    broker.start()
    return broker


@pytest.fixture(scope="module", params=["mosquitto", "amqtt"])
def secure_broker(request: pytest.FixtureRequest, credentials: Credentials) -> Iterator[TestBroker]:
    broker = start_secure_broker(request.param, credentials)
    try:
        yield broker
    finally:
        broker.close()


def account_url(broker: TestBroker, account: str, password: str) -> str:
    return f"mqtt://{account}:{password}@{broker.host}:{broker.port}"


@asynccontextmanager
async def login(
    broker: TestBroker,
    credentials: Credentials,
    account: str,
    robot: str,
    *,
    service: str | None = None,
    client_id: str | None = None,
) -> AsyncIterator[Connection]:
    """A connected Connection logged in as ``account`` (AssertionError if refused)."""
    url = account_url(broker, account, credentials.passwords[account])
    async with Connection(url, robot=robot, service=service, client_id=client_id,
                          connect_timeout=0) as connection:
        await connection.wait_connected(10.0)
        if service is not None:
            await connection.go_online()
        yield connection
