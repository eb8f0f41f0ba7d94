"""``runtime health SERVICE``: is a service up? (compose healthchecks, scripts, people).

Reads the retained ``service/<name>/status`` that every service publishes when it connects and
that its last will (or a clean exit) turns ``offline``: exit 0 and one line when it says
``online``, else exit 1 and one ``error:`` line (offline, nothing published, broker unreachable,
login refused). ``--local`` also requires the status's pid to be a live process here, which
catches a stale ``online`` in a container (run the check in the service's own container).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import click

from runtime.cli.common import connection_options, password_file_option
from runtime.cli.errors import fail
from runtime.cli.main import main
from runtime.messages import ServiceStatus, decode
from runtime.remote import Connection
from runtime.topics import check_name


async def read_status(url: str, robot: str, service: str, timeout: float,
                      password_file: Path | None = None) -> ServiceStatus | None:
    """The retained status of ``service`` (None if none arrives within ``timeout``)."""
    deadline = time.monotonic() + timeout
    found: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def take(topic: str, payload: bytes) -> None:
        if not found.done():
            found.set_result(payload)

    async with Connection(url, robot=robot, password_file=password_file,
                          connect_timeout=0) as connection:
        await connection.wait_connected(max(deadline - time.monotonic(), 0.1))
        await connection.subscribe(connection.topics.status(service), take, qos=1)
        try:
            payload = await asyncio.wait_for(found, max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            return None
    if not payload:
        return None
    return decode(ServiceStatus, payload)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a running process in this PID namespace."""
    return Path(f"/proc/{pid}").exists()


def check(status: ServiceStatus | None, robot: str, service: str, timeout: float,
          local: bool) -> tuple[bool, str]:
    """(healthy, the line to print)."""
    name = f"{robot}/{service}"
    if status is None:
        return False, f"{name}: no status published within {timeout:g} s (is it running?)"
    if status.state != "online":
        return False, f"{name}: {status.state} (pid {status.pid}, version {status.version})"
    if local and not pid_alive(status.pid):
        return False, (f"{name}: says online but its pid {status.pid} is not running here "
                       "(stale status)")
    uptime = max(time.time() - status.started, 0.0)
    return True, f"{name}: online (pid {status.pid}, version {status.version}, up {uptime:.0f} s)"


@main.command()
@click.argument("service_name", metavar="SERVICE")
@click.option("--timeout", type=float, default=5.0, show_default=True,
              help="Seconds to wait for the broker and the status.")
@click.option("--local", is_flag=True,
              help="Also require the status's pid to be running here (same container).")
@password_file_option
@connection_options
def health(service_name: str, timeout: float, local: bool, password_file: Path | None,
           mqtt: str, robot: str) -> None:
    """Exit 0 if SERVICE (broker, device, executor...) is online, else 1."""
    logging.getLogger("runtime.remote").setLevel(logging.ERROR)  # reported below, in one line
    service = check_name(service_name, "service name")
    status = asyncio.run(read_status(mqtt, robot, service, timeout, password_file))
    healthy, line = check(status, robot, service, timeout, local)
    if not healthy:
        fail(line)
    click.echo(line)
