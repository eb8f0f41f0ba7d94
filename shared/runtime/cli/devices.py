"""Device commands: ``runtime devices`` (what is plugged in) and ``runtime virtual-device``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from typing import Any

import click

from runtime.catalog import default_catalog
from runtime.cli.main import main
from runtime.cli.robot import common, fail, robot_options
from runtime.exception import MessageError, MQTTConnectionError, RPCError, RuntimeBaseException
from runtime.messages import DeviceInfo, decode
from runtime.remote import Connection, call_sync


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the device service's list as JSON.")
@robot_options
def devices(as_json: bool, **kwargs: Any) -> None:
    """List connected devices: uid, type, port and live values.

    If the device service does not answer (it is down, or this account may not call it, like
    the ``driver`` role), the devices it announced (retained ``device/<uid>/info``) are shown,
    without values.
    """
    params = common(kwargs)
    logging.getLogger("runtime.remote").setLevel(logging.ERROR)
    try:
        listed = call_sync(params["mqtt"], "device", "list", robot=params["robot"],
                           timeout=params["timeout"], password_file=params["password_file"])
    except MQTTConnectionError as exc:
        fail(f"{exc.message} (is the robot running? start one with `runtime up`)")
    except RPCError as exc:
        click.echo(f"note: the device service did not answer ({exc.message}); showing the "
                   "devices it announced, without values", err=True)
        listed = asyncio.run(_announced(params))
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    if not listed:
        click.echo("no devices connected")
        return
    rows = [("UID", "TYPE", "PORT", "VALUES")]
    for device in sorted(listed, key=lambda d: (d.get("type", ""), d.get("uid", ""))):
        values = device.get("values") or {}
        never = set(device.get("never_received") or ())  # the device has not sent these yet
        shown = " ".join(f"{name}={NOT_RECEIVED if name in never else _short(value)}"
                         for name, value in values.items())
        rows.append((device.get("uid", "?"), device.get("type", "?"),
                     str(device.get("port") or "-"), shown))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
                   + "  " + row[3])


async def _announced(params: dict[str, Any], settle: float = 0.5) -> list[dict[str, Any]]:
    """The retained device infos of the robot (what arrives within ``settle`` seconds)."""
    infos: dict[str, dict[str, Any]] = {}

    def on_info(topic: str, payload: bytes) -> None:
        if payload:
            with contextlib.suppress(MessageError):
                infos[topic.split("/")[-2]] = decode(DeviceInfo, payload).to_wire()

    async with Connection(params["mqtt"], robot=params["robot"], connect_timeout=0,
                          password_file=params["password_file"]) as connection:
        await connection.wait_connected(params["timeout"])
        await connection.subscribe(connection.topics.any_device_info, on_info)
        await asyncio.sleep(settle)  # retained messages arrive right after subscribing
    return list(infos.values())


NOT_RECEIVED = "(none)"  #: shown for a value the device never sent (not subscribed, not read)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


@main.command("virtual-device")
@click.argument("device_type", metavar="TYPE")
@click.option("--uid", default=None, help="Full decimal uid, or just its 64-bit id part.")
@click.option("--connect", "address", default=None,
              help="Device service address: unix:PATH or tcp:HOST:PORT.")
@click.option("--pty", "link", default=None,
              help="Create a pseudo-terminal and link LINK to it (open it as a serial port).")
@click.option("--fault", "faults", multiple=True,
              help="Misbehave: unresponsive, garbage, bad-checksum, silent-after:N, "
              "lose-confirmations:N.")
def virtual_device(device_type: str, uid: str | None, address: str | None, link: str | None,
                   faults: tuple[str, ...]) -> None:
    """Simulate a Smart Device of TYPE (name or id) speaking the real protocol."""
    from runtime.virtual import Faults, VirtualDevice

    if (address is None) == (link is None):
        fail("give exactly one of --connect ADDR or --pty LINK")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        device = VirtualDevice(default_catalog().get(device_type), uid,
                               faults=Faults.parse(list(faults)))
    except (RuntimeBaseException, ValueError) as exc:
        fail(getattr(exc, "message", str(exc)))
    click.echo(f"virtual {device.device_type.name} uid {device.uid} "
               + (f"connecting to {address}" if address else f"on {link}"), err=True)
    async def serve() -> None:
        task = asyncio.ensure_future(device.connect(address) if address
                                     else device.serve_pty(link))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: the pty link goes too
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
    except (OSError, RuntimeBaseException) as exc:
        fail(getattr(exc, "message", None) or str(exc))
