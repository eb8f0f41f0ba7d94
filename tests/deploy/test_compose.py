"""compose.yaml: validated by docker-compose (fast), and run for real (slow, docker).

The real run builds the image from the Dockerfile and starts Mosquitto (shipped config) and the
three services on base images built from Debian packages, chosen in ``.env`` as
docs/deployment.md tells a staffer without registry access (``deploy/images.py``, with the
test's own prefix ``runtime-test``). It then plays the robot's day: a
virtual smart device connects to the device service, its info and data appear on MQTT (seen
with ``mosquitto_sub`` as the read-only monitor account), field control sets teleop, every
container turns healthy, and ``docker-compose down -v`` removes it all.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from runtime.exception import MessageError
from runtime.messages import loads
from runtime.mqtt_server import free_port

from tests.deploy.conftest import ACCOUNTS, ROOT, make_credentials
from tests.deploy.docker import DockerDaemon, ensure_tools, find_tool
from tests.deploy.images import MOSQUITTO, PYTHON, docker_binary, docker_env, ensure_base_images
from tests.support.brokers import wait_listening
from tests.support.wait import wait_for

SERVICES = ("broker", "device", "executor", "gateway")
LOCK = Path(tempfile.gettempdir()) / "runtime-compose-test.lock"


def compose_binary() -> str:
    ensure_tools()
    path = find_tool("docker-compose")
    assert path is not None, "docker-compose not found: apt-get install docker-compose"
    return path


class Compose:
    """``docker-compose -p PROJECT --env-file ENV -f compose.yaml [-f override] ...``."""

    def __init__(self, project: str, env_file: Path, *files: Path) -> None:
        self.base = [compose_binary(), "--project-directory", str(ROOT), "-p", project,
                     "--env-file", str(env_file), "-f", str(ROOT / "compose.yaml")]
        for file in files:
            self.base += ["-f", str(file)]

    def run(self, *args: str, timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.base, *args], capture_output=True, text=True,
                                env=docker_env(), timeout=timeout, cwd=ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed "
                                 f"({result.returncode}):\n{result.stdout[-3000:]}\n"
                                 f"{result.stderr[-5000:]}")
        return result

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).stdout.strip()


def env_text(robot: str, **extra: str) -> str:
    lines = [f"ROBOT={robot}", *(f"{key}={value}" for key, value in extra.items())]
    return "\n".join(lines) + "\n"


# -- fast: the file is valid and says what the deployment needs --------------------------------
def compose_config(tmp_path: Path, env: str) -> subprocess.CompletedProcess[str]:
    credentials = make_credentials(tmp_path, env)
    compose = Compose(f"cfg{uuid.uuid4().hex[:8]}", credentials.env_file)
    return compose.run("config", check=False, timeout=120)


def test_compose_config_is_valid_and_complete(tmp_path: Path) -> None:
    result = compose_config(tmp_path, env_text("koala", VIRTUAL_LISTEN="tcp:127.0.0.1:5600"))
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    passwords = {line.split("=", 1)[0]: line.split("=", 1)[1]
                 for line in (tmp_path / "env").read_text().splitlines() if "=" in line}
    services = config["services"]
    assert set(services) == {"mosquitto", "web", *SERVICES}
    web = services["web"]  # the driver station page, talking to Mosquitto's WebSockets
    assert web["command"] == ["runtime", "web"]
    assert web["environment"]["RUNTIME_WS_PORT"] == "9001"
    for name, service in services.items():
        assert service["network_mode"] == "host", name
        assert service["restart"] == "unless-stopped", name
        assert "healthcheck" in service, name
    mosquitto = services["mosquitto"]
    assert mosquitto["image"] == "eclipse-mosquitto:2"
    mounts = {volume["target"]: volume for volume in _volumes(mosquitto)}
    for target in ("mosquitto.conf", "acl", "passwd"):
        assert mounts[f"/mosquitto/config/{target}"]["read_only"] is True
    assert mounts["/mosquitto/data"]["type"] == "volume"
    for name in SERVICES:
        service = services[name]
        assert service["ipc"] == "host"
        assert service["command"] == ["runtime", "service", name]
        assert service["healthcheck"]["test"] == ["CMD", "runtime", "health", name, "--local"]
        environment = service["environment"]
        assert environment["RUNTIME_ROBOT"] == "koala"
        password = passwords[f"MQTT_PASSWORD_{name.upper()}"]
        assert environment["RUNTIME_MQTT"] == f"mqtt://{name}:{password}@127.0.0.1:1883"
        assert "/var/lib/runtime" in {volume["target"] for volume in _volumes(service)}
        assert service["build"]["network"] == "host"
        assert service["build"]["args"]["PYTHON_IMAGE"] == "python:3.11-slim"  # .env may swap
    device = services["device"]
    assert device["environment"]["RUNTIME_VIRTUAL_LISTEN"] == "tcp:127.0.0.1:5600"
    device_mounts = {volume["target"]: volume for volume in _volumes(device)}
    assert device_mounts["/dev"]["source"] == "/dev"
    assert device_mounts["/run/udev"]["read_only"] is True
    assert set(config["volumes"]) == {"state", "mosquitto-data"}


def _volumes(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Long-form volume entries, whatever form docker-compose printed them in."""
    volumes = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            volumes.append(entry)
            continue
        parts = entry.split(":")
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else "rw"
        volumes.append({"source": source, "target": target, "read_only": "ro" in mode,
                        "type": "bind" if source.startswith(("/", ".")) else "volume"})
    return volumes


def test_compose_config_refuses_to_run_without_passwords(tmp_path: Path) -> None:
    (tmp_path / "env").write_text("ROBOT=koala\n")
    compose = Compose("cfgnopass", tmp_path / "env")
    result = compose.run("config", check=False, timeout=120)
    assert result.returncode != 0
    assert "run broker-config/make-passwords first" in result.stderr


# -- slow: the real deployment -----------------------------------------------------------------
@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """One compose test per machine at a time (they share ports 1883 and 9001)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def assert_port_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            raise AssertionError(
                f"port {port} is in use: the compose test runs Mosquitto on the host network "
                "with the shipped configuration (ports 1883 and 9001); stop what listens there"
            ) from None


class Subscriber:
    """``mosquitto_sub -F '%t %x'`` (hex payloads: CBOR has 0x00 and 0x0a bytes) in a thread."""

    def __init__(self, port: int, user: str, password: str, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.process = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", password,
             "-t", topic, "-q", "1", "-F", "%t %x"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            topic, _, hex_payload = line.rstrip("\n").partition(" ")
            self.messages.append((topic, bytes.fromhex(hex_payload.strip())))

    def decoded(self, topic: str) -> list[Any]:
        values = []
        for got, payload in list(self.messages):
            if got == topic and payload:
                with contextlib.suppress(MessageError):
                    values.append(loads(payload))
        return values

    def topics(self) -> list[str]:
        return sorted({topic for topic, _ in list(self.messages)})

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.communicate(timeout=10)


def online(subscriber: Subscriber, robot: str, service: str) -> bool:
    states = subscriber.decoded(f"runtime/{robot}/service/{service}/status")
    return bool(states) and states[-1].get("state") == "online"


def remove_leftovers(prefix: str = "runtimetest") -> None:
    """Containers and volumes of an earlier run that was killed before its ``down``."""
    docker = docker_binary()

    def names(*args: str) -> list[str]:
        out = subprocess.run([docker, *args], capture_output=True, text=True,
                             env=docker_env(), timeout=60).stdout
        return out.split()

    containers = [line.split(":", 1)[0] for line in names(
        "ps", "-a", "--format", '{{.ID}}:{{.Label "com.docker.compose.project"}}')
        if line.split(":", 1)[-1].startswith(prefix)]
    if containers:
        subprocess.run([docker, "rm", "-f", *containers], capture_output=True,
                       env=docker_env(), timeout=300)
    volumes = [name for name in names("volume", "ls", "--format", "{{.Name}}")
               if name.startswith(prefix)]
    if volumes:
        subprocess.run([docker, "volume", "rm", "-f", *volumes], capture_output=True,
                       env=docker_env(), timeout=300)


def health(compose: Compose, service: str) -> str:
    container = compose.container(service)
    result = subprocess.run(
        [docker_binary(), "inspect", "--format", "{{.State.Health.Status}}", container],
        capture_output=True, text=True, env=docker_env(), timeout=60,
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def docker_daemon() -> Iterator[DockerDaemon]:
    daemon = DockerDaemon()
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.timeout(2400)
def test_the_compose_deployment_runs(docker_daemon: DockerDaemon, tmp_path: Path) -> None:
    timings: list[str] = []
    started = time.monotonic()

    def phase(name: str) -> None:
        timings.append(f"{name}: {time.monotonic() - started:.1f} s")

    timings.extend(ensure_base_images())
    phase("base images")
    robot = f"c{uuid.uuid4().hex[:8]}"
    virtual_port = free_port()
    credentials = make_credentials(tmp_path, env_text(
        robot,
        VIRTUAL_LISTEN=f"tcp:127.0.0.1:{virtual_port}",
        RUNTIME_IMAGE="runtime-test/runtime",
        PYTHON_IMAGE=PYTHON,  # the offline deployment of docs/deployment.md
        MOSQUITTO_IMAGE=MOSQUITTO,
        HEALTH_INTERVAL="2s",
        MQTT_PASSWD_FILE=str(tmp_path / "passwd"),
    ))
    assert set(credentials.passwords) == set(ACCOUNTS)
    compose = Compose(f"runtimetest{uuid.uuid4().hex[:8]}", credentials.env_file)
    monitor_password = credentials.passwords["monitor"]

    with exclusive(LOCK):
        remove_leftovers()
        assert_port_free(1883)
        assert_port_free(9001)
        assert_port_free(8101)
        watcher: Subscriber | None = None
        device: subprocess.Popen[bytes] | None = None
        try:
            compose.run("build", timeout=1800)
            phase("image built")
            compose.run("up", "-d", timeout=600)
            up_started = time.monotonic()
            wait_listening("127.0.0.1", 1883, timeout=60)
            phase("mosquitto listening")
            watcher = Subscriber(1883, "monitor", monitor_password, f"runtime/{robot}/#")

            def seen() -> str:
                assert watcher is not None
                return f"topics seen: {watcher.topics()}"

            # The services run as the unprivileged user, in dialout.
            assert compose.run("exec", "-T", "broker", "id", "-u").stdout.strip() != "0"
            assert "dialout" in compose.run("exec", "-T", "broker", "id", "-Gn").stdout
            # Anonymous clients are refused by the shipped configuration.
            anonymous = subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", "1883", "-t", "x", "-m", "y"],
                capture_output=True, text=True, timeout=30,
            )
            assert anonymous.returncode != 0

            wait_for(lambda: online(watcher, robot, "broker"), timeout=120, message=seen)
            phase("broker service online")
            wait_for(lambda: health(compose, "mosquitto") == "healthy", timeout=120,
                     message=lambda: f"mosquitto is {health(compose, 'mosquitto')}")
            wait_for(lambda: health(compose, "broker") == "healthy", timeout=120,
                     message=lambda: f"broker is {health(compose, 'broker')}")
            phase("mosquitto and broker healthy")

            # A virtual smart device, through the device service, to the broker service.
            wait_for(lambda: online(watcher, robot, "device"), timeout=120, message=seen)
            phase("device service online")
            wait_listening("127.0.0.1", virtual_port, timeout=60)
            device = subprocess.Popen(
                [sys.executable, "-m", "runtime", "virtual-device", "LineFollower",
                 "--connect", f"tcp:127.0.0.1:{virtual_port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            info_topic = wait_for(lambda: next(
                (t for t, p in list(watcher.messages) if t.endswith("/info") and p), None),
                timeout=60, message=seen)
            info = watcher.decoded(info_topic)[-1]
            assert info["type"] == "LineFollower"
            data_topic = info_topic.removesuffix("/info") + "/data"
            wait_for(lambda: watcher.decoded(data_topic), timeout=60, message=seen)
            phase("virtual device info and data on MQTT")
            wait_for(lambda: health(compose, "device") == "healthy", timeout=120,
                     message=lambda: f"device is {health(compose, 'device')}")

            # Field control starts teleop through the executor service.
            wait_for(lambda: online(watcher, robot, "executor"), timeout=120, message=seen)
            phase("executor service online")

            field = f"mqtt://field:{credentials.passwords['field']}@127.0.0.1:1883"
            result = subprocess.run(
                [sys.executable, "-m", "runtime", "mode", "teleop", "--mqtt", field,
                 "--robot", robot], capture_output=True, text=True, timeout=60,
            )
            assert result.returncode == 0, result.stderr
            wait_for(lambda: any(m.get("mode") == "teleop"
                                 for m in watcher.decoded(f"runtime/{robot}/match")),
                     timeout=30, message=seen)
            phase("teleop set by field")

            # Shepherd through the gateway (Mosquitto's ACL lets it act as field control):
            # its AUTO starts the match; its disconnect sets the robot idle.
            wait_for(lambda: online(watcher, robot, "gateway"), timeout=120, message=seen)
            shepherd = socket.create_connection(("127.0.0.1", 8101), timeout=30)
            try:
                shepherd.sendall(b"\x00" + bytes([0, 2, 0]) + b"\x08\x01")  # RUN_MODE AUTO
                wait_for(lambda: any(m.get("mode") == "auto"
                                     for m in watcher.decoded(f"runtime/{robot}/match")),
                         timeout=30, message=seen)
            finally:
                shepherd.close()
            wait_for(lambda: watcher.decoded(f"runtime/{robot}/match")[-1].get("mode") == "idle",
                     timeout=30, message=seen)
            phase("auto set by Shepherd through the gateway, idle when it left")
            for name in ("executor", "gateway"):
                wait_for(lambda name=name: health(compose, name) == "healthy", timeout=120,
                         message=lambda name=name: f"{name} is {health(compose, name)}")
            phase("all healthy")
            timings.append(f"up -d to all healthy (health interval 2 s): "
                           f"{time.monotonic() - up_started:.1f} s")
        finally:
            if device is not None:
                device.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    device.communicate(timeout=10)
            if watcher is not None:
                watcher.close()
            logs = compose.run("logs", "--no-color", "--tail", "60", check=False, timeout=120)
            print(logs.stdout[-20000:])
            compose.run("down", "-v", "--remove-orphans", "-t", "15", check=False, timeout=600)
            phase("down")
            print("\n".join(timings))
    assert compose.run("ps", "-q").stdout.strip() == ""
