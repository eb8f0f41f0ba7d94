"""Real MQTT brokers for tests: the embedded amqtt and a Mosquitto subprocess, same interface.

Both listen on a free loopback port and have ``url``, ``host``, ``port``, ``start()`` (also a
restart on the same port, for reconnect tests), ``stop()`` and ``close()``. Mosquitto is never
optional: if it is missing the test fails with a message saying how to install it.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from runtime.exception import MQTTConnectionError
from runtime.mqtt_server import EmbeddedBrokerThread, free_port

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
START_TIMEOUT = 20.0
START_ATTEMPTS = 3  # a broker on a port chosen here: fresh ports after a start that failed


def mosquitto_path() -> str:
    """The mosquitto binary, or AssertionError saying how to get it."""
    for path in (*MOSQUITTO_PATHS, shutil.which("mosquitto")):
        if path and Path(path).is_file():
            return path
    raise AssertionError(
        "mosquitto not found (looked in /usr/sbin, /usr/local/sbin, PATH): "
        "install Debian's mosquitto package (apt-get install mosquitto); the tests need it"
    )


def wait_listening(host: str, port: int, timeout: float = START_TIMEOUT,
                   alive: object = None) -> None:
    """Return once ``host:port`` accepts TCP connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as exc:
            if callable(alive) and not alive():
                raise AssertionError(f"broker on {host}:{port} exited while starting") from exc
            if time.monotonic() >= deadline:
                raise AssertionError(f"nothing listens on {host}:{port} after {timeout} s") from exc
            time.sleep(0.02)


class AmqttTestBroker:
    """The embedded amqtt broker, on its own loop thread (so sync and async tests can use it)."""

    kind = "amqtt"

    def __init__(self, port: int | None = None, **kwargs: object) -> None:
        self._broker = EmbeddedBrokerThread("127.0.0.1", port, **kwargs)  # type: ignore[arg-type]
        self.host = self._broker.host
        self.port = self._broker.port

    @property
    def url(self) -> str:
        return self._broker.url

    def start(self) -> None:
        self._broker.start()  # returns once listening

    def stop(self) -> None:
        self._broker.stop()

    def close(self) -> None:
        self._broker.close()

    def __repr__(self) -> str:
        return f"<amqtt {self.url}>"


class MosquittoTestBroker:
    """``/usr/sbin/mosquitto`` with a generated config in a temporary directory.

    ``extra_config`` lines are appended (password_file, acl_file... for security tests); with
    ``anonymous=False`` the listener refuses clients without valid credentials. ``config``
    replaces the generated configuration entirely: ``config(broker)`` returns its text, and may
    use ``broker.port``, ``broker.directory`` (a temporary directory for files) and
    ``broker.log_path`` (see ``mosquitto_with_config``).
    """

    kind = "mosquitto"

    def __init__(self, port: int | None = None, *, extra_config: str = "",
                 anonymous: bool = True,
                 config: Callable[[MosquittoTestBroker], str] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self._dir = self.directory = Path(tempfile.mkdtemp(prefix="mosquitto-test-"))
        self.config_path = self._dir / "mosquitto.conf"
        self.log_path = self._dir / "mosquitto.log"
        self.config_path.write_text(
            config(self) if config is not None else
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "set_tcp_nodelay true\n"
            "persistence false\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            f"{extra_config}\n",
            encoding="utf-8",
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._process = subprocess.Popen(
            [mosquitto_path(), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        process = self._process
        try:
            # Every listener, not just the first: Mosquitto binds them one after the other and
            # exits if a later one cannot bind (its port taken meanwhile by another process)
            # while the first already accepts connections.
            for port in self.listener_ports():
                host = self.host if port == self.port else "127.0.0.1"
                wait_listening(host, port, alive=lambda: process.poll() is None)
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}: {self.log()}") from None

    def listener_ports(self) -> list[int]:
        """The ports of the configuration's ``listener`` lines (the main one first)."""
        text = self.config_path.read_text(encoding="utf-8")
        ports = [int(port) for port in re.findall(r"^listener\s+(\d+)", text, re.M)]
        return [self.port, *(port for port in ports if port != self.port)]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stderr is not None:
            process.stderr.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def log(self) -> str:
        """Mosquitto's log so far (for failure messages)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def __repr__(self) -> str:
        return f"<mosquitto {self.url}>"


TestBroker = AmqttTestBroker | MosquittoTestBroker
B = TypeVar("B", AmqttTestBroker, MosquittoTestBroker)


def mosquitto_with_config(config: Callable[[MosquittoTestBroker], str]) -> MosquittoTestBroker:
    """A started Mosquitto whose whole configuration is ``config(broker)`` (call ``close()``)."""
    return _started(lambda: MosquittoTestBroker(config=config))


def make_broker(kind: str) -> TestBroker:
    """A started broker of ``kind`` ("amqtt" or "mosquitto")."""
    if kind == "amqtt":
        return _started(AmqttTestBroker)
    return _started(MosquittoTestBroker)


def _started(make: Callable[[], B]) -> B:
    """``make()`` started; made again on fresh free ports if the start failed.

    A free port is only free when it is picked: on a machine running other suites another
    process (an outgoing connection's ephemeral port, too) may bind it before the broker does.
    A broken configuration fails every attempt, and the last error is raised.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        broker = make()
        try:
            broker.start()
            return broker
        except (AssertionError, MQTTConnectionError):  # Mosquitto exited / amqtt could not bind
            broker.close()
            if attempt == START_ATTEMPTS:
                raise
        except BaseException:
            broker.close()
            raise
    raise AssertionError("unreachable")
