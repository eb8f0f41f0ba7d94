"""``runtime up``: the whole robot on one machine, started and stopped as one.

Order of a start: the checks that may refuse it (options readable, no robot of this name running
on this machine), the MQTT broker (embedded amqtt unless ``--mqtt``: from then on we own the
port), on an external broker no robot of this name online there; only then the state dir
(sample student program on first use, the ``koala`` alias), the three services as supervised
processes, simulated devices (in this process, connected to the device service's
virtual-device socket), then a summary of where to connect once every service is online and
every simulated device published. A refused start writes nothing.
A stop (Ctrl-C, SIGTERM) goes the other way: services (SIGTERM, wait, SIGKILL), simulated
devices, broker, then shared-memory segments that a killed child may have left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import quote, urlsplit, urlunsplit

from runtime import aliases
from runtime.config import ServiceConfig
from runtime.exception import MessageError, MQTTConnectionError, RuntimeBaseException
from runtime.messages import DeviceInfo, ServiceStatus
from runtime.mqtt_server import EmbeddedBroker
from runtime.options import Options, load_options
from runtime.remote import Connection
from runtime.topics import parse_topic
from runtime.up import conflicts, shm
from runtime.up.logstream import LogStream
from runtime.up.simulate import SimulatedDevice
from runtime.up.supervisor import RestartPolicy, ServiceProcess
from runtime.web.station import DriverStation, port_free

log = logging.getLogger("runtime.up")

SERVICES = ("broker", "device", "executor")
SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "studentcode.py"
SAMPLE_ALIAS = "koala"
READY_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0


class ConflictError(RuntimeBaseException):
    """A robot of this name is already running (on this machine or on the broker)."""


def redact(url: str) -> str:
    """``url`` without its password (it goes into messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def install_sample(student_code: Path) -> bool:
    """Copy the sample program to ``student_code`` if there is none yet; True if copied."""
    if student_code.exists():
        return False
    student_code.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SAMPLE, student_code)
    return True


def with_user(url: str, user: str | None) -> str:
    """``url`` with a login name: with ``--broker-password-file`` the services log in to the
    embedded broker as ``--user`` (their password comes from ``--password-file``)."""
    if not user:
        return url
    return url.replace("://", f"://{quote(user, safe='')}@", 1)


@dataclass
class Ready:
    """What the supervisor has seen on MQTT: services online, devices published."""

    online: dict[str, int] = field(default_factory=dict)
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Stack:
    """Everything ``runtime up`` runs; ``await Stack(...).run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        listen: tuple[str, int] | None = ("127.0.0.1", 1883),
        simulate: Sequence[SimulatedDevice] = (),
        stream: LogStream | None = None,
        out: TextIO | None = None,
        policy: RestartPolicy | None = None,
        broker_password_file: Path | None = None,
        broker_acl_file: Path | None = None,
        broker_user: str | None = None,
        station: DriverStation | None = None,
        gateway: tuple[str, int] | None = None,
    ) -> None:
        self.config = config
        self.gateway = gateway  #: where Dawn and Shepherd connect (None: no gateway)
        self.gateway_problem: str | None = None
        self._service_names: tuple[str, ...] | None = None
        self.station = station or DriverStation(web=None)
        self.listen = listen
        self.simulated = list(simulate)
        self.stream = stream or LogStream()
        self.out = out or sys.stdout
        self.policy = policy or RestartPolicy()
        self.broker_password_file = broker_password_file
        self.broker_acl_file = broker_acl_file
        self.broker_user = broker_user
        self.broker: EmbeddedBroker | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.ready = Ready()
        self.options = Options()
        self.url = config.mqtt
        self.virtual_listen = config.virtual_listen
        self._tmp: Path | None = None
        self._monitor: Connection | None = None

    # -- start -----------------------------------------------------------------------------
    async def claim(self) -> None:
        """Everything that may refuse the start, before anything is written: options readable,
        the port ours (embedded broker), the robot name free here and on the broker.

        Raises (``RuntimeBaseException``) after undoing what it started."""
        self.options = load_options(self.config.state_dir)  # reads only
        running = conflicts.on_this_machine(self.config.robot)
        if running:
            raise ConflictError(conflicts.refusal(self.config.robot, redact(self.url), running),
                                robot=self.config.robot)
        try:
            if self.listen is not None:
                self.broker = EmbeddedBroker(*self.listen,
                                             password_file=self.broker_password_file,
                                             acl_file=self.broker_acl_file,
                                             ws_port=self.station.broker_ws_port(self.listen[0]))
                try:
                    await self.broker.start()
                except MQTTConnectionError as exc:
                    if "already in use" in exc.message:  # the usual cause, and the way out
                        raise MQTTConnectionError(
                            f"{exc.message} (another `runtime up`, or a compose deployment's "
                            "Mosquitto? give this one --listen 127.0.0.1:PORT, or join that "
                            "broker with --mqtt URL)", **exc.context) from None
                    raise
                self.url = with_user(self.broker.url, self.broker_user)
            self._monitor = Connection(self.url, robot=self.config.robot,
                                       password_file=self.config.password_file,
                                       connect_timeout=0)
            await self._monitor.start()
            await self._monitor.wait_connected(CONNECT_TIMEOUT)
            if self.broker is None:  # a fresh embedded broker has no robot on it yet
                services = await conflicts.on_broker(self._monitor)
                if services:
                    raise ConflictError(conflicts.refusal(
                        self.config.robot, redact(self.url), conflicts.Running(
                            services=services)), robot=self.config.robot)
        except BaseException:
            await self._release()
            raise

    async def _release(self) -> None:
        """Undo :meth:`claim` (monitor connection, embedded broker); never raises."""
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                await self._monitor.close()
            self._monitor = None
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.stop()
            self.broker = None

    def prepare_state(self) -> None:
        """State dir, sample program, the sample's alias (only once the start is ours)."""
        state = self.config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        if install_sample(self.config.student_code_path):
            log.info("no student program yet: installed the sample as %s",
                     self.config.student_code_path)
        koalas = [device for device in self.simulated if device.type_name == "KoalaBear"]
        if koalas:
            aliases.set_alias(state, SAMPLE_ALIAS, koalas[0].uid)
            log.info("alias %s -> %s (the simulated KoalaBear the sample program drives)",
                     SAMPLE_ALIAS, koalas[0].uid)

    def service_names(self) -> tuple[str, ...]:
        """The services this stack runs: the three, plus the gateway if asked for and its
        port is free (a busy port is reported, not fatal: the robot runs without it)."""
        if self._service_names is not None:  # decided once: later the gateway holds its port
            return self._service_names
        if self.gateway is not None and not port_free(*self.gateway):
            self.gateway_problem = (f"port {self.gateway[1]} is in use: choose another with "
                                    "--gateway HOST:PORT")
            log.warning("gateway not started: %s", self.gateway_problem)
        self._service_names = (SERVICES if self.gateway is None or self.gateway_problem
                               else (*SERVICES, "gateway"))
        return self._service_names

    def service_argv(self, name: str) -> list[str]:
        """``python -m runtime service NAME`` with this stack's common options."""
        config = self.config
        argv = [sys.executable, "-m", "runtime", "service", name, "--mqtt", self.url,
                "--robot", config.robot, "--state-dir", str(config.state_dir),
                "--observer", config.observer]
        if config.student_code is not None:
            argv += ["--student-code", str(config.student_code)]
        for pattern in config.serial_globs:
            argv += ["--serial-glob", pattern]
        if self.virtual_listen:
            argv += ["--virtual-listen", self.virtual_listen]
        if config.password_file is not None:
            argv += ["--password-file", str(config.password_file)]
        return argv

    async def start(self) -> None:
        """Bring everything up after :meth:`claim` (returns once started, not once ready)."""
        assert self._monitor is not None, "claim() first"
        self.prepare_state()
        self._tmp = Path(tempfile.mkdtemp(prefix=f"runtime-{self.config.robot}-"))
        if not self.virtual_listen:
            self.virtual_listen = f"unix:{self._tmp / 'virtual.sock'}"
        self.station.start(self.config.robot)
        topics = self._monitor.topics
        await self._monitor.subscribe_typed(topics.any_status, ServiceStatus, self._on_status)
        await self._monitor.subscribe_typed(topics.any_device_info, DeviceInfo, self._on_info)
        for name in self.service_names():
            argv = self.service_argv(name)
            if name == "gateway":
                assert self.gateway is not None
                argv += ["--listen", f"{self.gateway[0]}:{self.gateway[1]}"]
            service = ServiceProcess(name, argv, self.stream, policy=self.policy)
            self.services[name] = service
            service.start()
        for device in self.simulated:
            device.start(self.virtual_listen)

    def _on_status(self, topic: str, status: ServiceStatus | None) -> None:
        name = _topic_field(topic, "service")
        if status is None or name is None:
            return
        was = self.ready.online.get(name)
        if status.state == "online":
            self.ready.online[name] = status.pid
            if was != status.pid:
                log.info("%s is online (pid %d)", name, status.pid)
        else:
            self.ready.online.pop(name, None)
            if was is not None:
                log.info("%s is offline", name)
        self.ready.changed.set()

    def _on_info(self, topic: str, info: DeviceInfo | None) -> None:
        uid = _topic_field(topic, "uid")
        if uid is None:
            return
        if info is None:
            if self.ready.devices.pop(uid, None) is not None:
                log.info("device %s is gone", uid)
        else:
            self.ready.devices[uid] = info
        self.ready.changed.set()

    def is_ready(self) -> bool:
        """All services online and every simulated device published."""
        return set(self.service_names()) <= set(self.ready.online) and all(
            device.uid in self.ready.devices for device in self.simulated
        )

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """True once ready; False after ``timeout`` (or if a service was given up on)."""
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if any(service.state == "failed" for service in self.services.values()):
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.ready.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.changed.wait(), min(remaining, 0.5))
        return True

    def summary(self, elapsed: float) -> str:
        """Where to connect and what runs (printed once ready)."""
        config = self.config
        broker = "embedded amqtt" if self.broker else "external"
        robot = f" --robot {config.robot}" if config.robot != "robot" else ""
        url = redact(self.url)
        mqtt = f" --mqtt {url}" if url != "mqtt://127.0.0.1:1883" else ""
        lines = [
            f"Runtime is up: robot {config.robot!r}, ready in {elapsed:.2f} s",
            f"  MQTT broker      {url} ({broker})",
            f"  virtual devices  {self.virtual_listen} "
            f"(runtime virtual-device TYPE --connect {self.virtual_listen})",
            f"  student code     {config.student_code_path}",
            f"  state dir        {config.state_dir}",
            "  services         " + ", ".join(
                f"{name} (pid {self.ready.online.get(name, '?')})"
                for name in self.service_names()),
        ]
        if "gateway" in self.service_names():
            assert self.gateway is not None
            lines.append(f"  PiE clients      Dawn and Shepherd on {self.gateway[0]}:"
                         f"{self.gateway[1]} (gateway)")
        elif self.gateway is not None:
            lines.append(f"  PiE clients      no gateway: {self.gateway_problem}")
        lines.append(self.station.summary())
        for uid, info in sorted(self.ready.devices.items()):
            lines.append(f"  device           {info.type} {uid} on {info.port or '?'}")
        changed = {name: value for name, value in self.options.model_dump(exclude_unset=True)
                   .items()}
        if changed:
            lines.append("  options          " + ", ".join(f"{k}={v}" for k, v in changed.items()))
        lines.append(f"Try: runtime mode teleop{robot}{mqtt}   runtime drive{robot}{mqtt}   "
                     f"runtime devices{robot}{mqtt}   runtime monitor{robot}{mqtt}")
        lines.append("Ctrl-C stops everything.")
        return "\n".join(lines)

    async def run(self, stop: asyncio.Event) -> int:
        """Start, report readiness, run until ``stop`` is set, then stop everything."""
        started = time.monotonic()
        await self.claim()  # a refusal raises here, having written nothing
        try:
            await self.start()
            ready = asyncio.ensure_future(self.wait_ready())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait((ready, stopped), return_when=asyncio.FIRST_COMPLETED)
            if ready.done():
                if ready.result():
                    self._print(self.summary(time.monotonic() - started))
                else:
                    self._print(self.not_ready_report())
                await stopped
            ready.cancel()
            stopped.cancel()
        finally:
            await self.shutdown()
        return 0

    def not_ready_report(self) -> str:
        missing = [name for name in self.service_names() if name not in self.ready.online]
        devices = [device.uid for device in self.simulated if device.uid not in self.ready.devices]
        return (f"Runtime is up but not ready after {READY_TIMEOUT:g} s: "
                f"services not online: {', '.join(missing) or 'none'}; "
                f"simulated devices not published: {', '.join(devices) or 'none'} "
                "(see the log above). Ctrl-C stops everything.")

    def _print(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.out.write(text + "\n")
            self.out.flush()

    # -- stop ------------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop services, simulated devices, broker; remove leftovers. Never raises."""
        log.info("stopping")
        await asyncio.gather(*(service.stop() for service in self.services.values()),
                             return_exceptions=True)
        await asyncio.gather(*(device.stop() for device in self.simulated),
                             return_exceptions=True)
        self.station.stop()
        await self._release()
        removed = shm.cleanup(self.config.robot)
        if removed:
            log.info("removed %d shared-memory segment(s) left by killed processes", removed)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        log.info("stopped")


def _topic_field(topic: str, name: str) -> str | None:
    """One field of a parsed topic (``service``, ``uid``), or None if it is not a valid one."""
    try:
        value = getattr(parse_topic(topic), name)
    except MessageError:
        return None
    return str(value) if value is not None else None
