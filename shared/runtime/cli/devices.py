"""Device commands: ``runtime devices`` (what is plugged in) and ``runtime virtual-device``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import sys
import time
from typing import Any, TextIO

import click

from runtime.address import Address, AddressType
from runtime.catalog import default_catalog
from runtime.cli.errors import fail, unreachable
from runtime.cli.main import main
from runtime.cli.robot import common, robot_options
from runtime.cli.table import DeviceRow, render
from runtime.exception import MessageError, MQTTConnectionError, RPCError
from runtime.messages import DeviceData, DeviceInfo, decode
from runtime.remote import Client, Connection, call_sync
from runtime.topics import parse_topic


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the device service's list as JSON.")
@click.option("--watch", is_flag=True,
              help="A live table (until Ctrl-C): values as they arrive on device/+/data.")
@click.option("--all", "all_params", is_flag=True,
              help="Every param of every device (wrapped), not just what fits on one line.")
@robot_options
def devices(as_json: bool, watch: bool, all_params: bool, **kwargs: Any) -> None:
    """Connected devices: name (alias or uid), type, port and values, one row each.

    Values are ordered most recently changed first and cut to the terminal width (--all shows
    them all). If the device service does not answer (it is down, or this account may not call
    it, like the ``driver`` role), the devices it announced (retained ``device/<uid>/info``)
    are shown, without values.
    """
    params = common(kwargs)
    logging.getLogger("runtime.remote").setLevel(logging.ERROR)
    if watch:
        if as_json:
            fail("--watch and --json do not go together (try `runtime monitor 'device/#'`)")
        asyncio.run(_watch(params, all_params, sys.stdout))
        return
    try:
        listed = call_sync(params["mqtt"], "device", "list", robot=params["robot"],
                           timeout=params["timeout"], password_file=params["password_file"])
    except MQTTConnectionError as exc:
        unreachable(exc)
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
    names = _aliases(params)
    rows = [DeviceRow(uid=str(device.get("uid", "?")), type=_type_label(device),
                      port=device.get("port"), name=names.get(str(device.get("uid"))),
                      values=dict(device.get("values") or {}),
                      never=set(device.get("never_received") or ()))
            for device in listed]
    for line in render(rows, _width(), all_params):
        click.echo(line)


def _type_label(device: dict[str, Any]) -> str:
    """The type name, marked for lowcar devices (type names exist in both generations)."""
    kind = str(device.get("type", "?"))
    return f"{kind} (lowcar)" if device.get("generation") == "lowcar" else kind


def _width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def _aliases(params: dict[str, Any]) -> dict[str, str]:
    """uid -> alias, from the broker service (nothing if it cannot tell within ``--timeout``:
    a shorter cap of its own made a busy robot's table come out without its names)."""
    try:
        aliases = call_sync(params["mqtt"], "broker", "list_aliases", robot=params["robot"],
                            timeout=params["timeout"],
                            password_file=params["password_file"])
    except (RPCError, MQTTConnectionError):
        return {}
    return {str(uid): name for name, uid in sorted(aliases.items(), reverse=True)}


def _uid(topic: str) -> str | None:
    """The uid of a ``device/<uid>/...`` topic, None if it is not a valid one."""
    try:
        return parse_topic(topic).uid
    except MessageError:
        return None


async def _watch(params: dict[str, Any], all_params: bool, out: TextIO,
                 period: float = 0.25) -> None:
    """Redraw the table whenever values changed (at most every ``period`` s) until a signal."""
    rows: dict[str, DeviceRow] = {}
    changed = asyncio.Event()
    stop = asyncio.Event()
    tty = out.isatty()

    def on_info(topic: str, payload: bytes) -> None:
        uid = _uid(topic)
        if uid is None:
            return
        if not payload:
            rows.pop(uid, None)
        else:
            with contextlib.suppress(MessageError):
                info = decode(DeviceInfo, payload)
                row = rows.setdefault(uid, DeviceRow(uid=uid))
                row.type, row.port = info.type, info.port
        changed.set()

    def on_data(topic: str, payload: bytes) -> None:
        uid = _uid(topic)
        if uid is None:
            return
        with contextlib.suppress(MessageError):
            data = decode(DeviceData, payload)
            if rows.setdefault(uid, DeviceRow(uid=uid)).update(data.params, time.monotonic()):
                changed.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    async with Connection(params["mqtt"], robot=params["robot"], connect_timeout=0,
                          password_file=params["password_file"]) as connection:
        await connection.wait_connected(params["timeout"])
        names = await asyncio.to_thread(_aliases, params)
        await connection.subscribe(connection.topics.any_device_info, on_info)
        await connection.subscribe(connection.topics.any_device_data, on_data)
        # device/+/data carries changes only: the values so far come from the device service
        with contextlib.suppress(RPCError):
            for device in await Client(connection).call("device", "list",
                                                        timeout=params["timeout"]):
                row = rows.setdefault(str(device.get("uid")), DeviceRow(uid=str(device["uid"])))
                row.type, row.port = device.get("type", row.type), device.get("port")
                never = set(device.get("never_received") or ())
                for param, value in (device.get("values") or {}).items():
                    if param not in row.values:
                        row.values[param] = value
                        if param in never:
                            row.never.add(param)
        changed.set()
        drawn = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if changed.is_set() or now - drawn >= 1.0:  # at least every second: the age
                changed.clear()
                drawn = now
                for uid, row in rows.items():
                    row.name = names.get(uid)
                last = max((max(row.changed.values(), default=0.0) for row in rows.values()),
                           default=0.0)
                age = (f", no data for {now - last:.0f} s" if last and now - last > 2.0
                       else "")
                title = (f"{params['robot']}: {len(rows)} device{'s' * (len(rows) != 1)} "
                         f"at {time.strftime('%H:%M:%S')}{age} (Ctrl-C quits)")
                lines = [title, *render(list(rows.values()), _width(), all_params)]
                if not connection.connected.is_set():
                    lines[0] += "  NO BROKER CONNECTION (reconnecting)"
                text = ("\033[H\033[J" if tty else "\n") + "\n".join(lines) + "\n"
                with contextlib.suppress(OSError, ValueError):
                    out.write(text)
                    out.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)


async def _announced(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The retained device infos of the robot."""
    infos: dict[str, dict[str, Any]] = {}

    def on_info(topic: str, payload: bytes) -> None:
        if payload:
            uid = _uid(topic)
            with contextlib.suppress(MessageError):
                if uid is not None:
                    infos[uid] = decode(DeviceInfo, payload).to_wire()

    async with Connection(params["mqtt"], robot=params["robot"], connect_timeout=0,
                          password_file=params["password_file"]) as connection:
        await connection.wait_connected(params["timeout"])
        await connection.subscribe_retained(connection.topics.any_device_info, on_info)
    return list(infos.values())


@main.command("virtual-device")
@click.argument("device_type", metavar="TYPE")
@click.option("--uid", default=None, help="Full decimal uid, or just its 64-bit id part.")
@click.option("--connect", "address", default=None, type=AddressType(("unix", "tcp")),
              help="Device service address: unix:PATH or tcp:HOST:PORT.")
@click.option("--generation", type=click.Choice(["hibike", "lowcar"]), default="hibike",
              show_default=True, help="Protocol generation (firmware) of the device.")
@click.option("--pty", "link", default=None,
              help="Create a pseudo-terminal and link LINK to it (open it as a serial port).")
@click.option("--fault", "faults", multiple=True,
              help="Misbehave: unresponsive, garbage, bad-checksum, silent-after:N, "
              "lose-confirmations:N.")
def virtual_device(device_type: str, uid: str | None, address: Address | None,
                   link: str | None, generation: str, faults: tuple[str, ...]) -> None:
    """Simulate a Smart Device of TYPE (name or id) speaking the real protocol."""
    from runtime.virtual import Faults, VirtualDevice
    from runtime.virtual_lowcar import VirtualLowcarDevice

    if (address is None) == (link is None):
        fail("give exactly one of --connect ADDR or --pty LINK")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        kind = default_catalog().get(device_type, generation)
        device: VirtualDevice | VirtualLowcarDevice = (
            VirtualLowcarDevice(kind, uid, faults=Faults.parse(list(faults)))
            if kind.generation == "lowcar"
            else VirtualDevice(kind, uid, faults=Faults.parse(list(faults))))
    except ValueError as exc:  # a bad --uid or --fault (Runtime's own errors: the boundary)
        fail(str(exc))
    click.echo(f"virtual {device.device_type.qualified_name} uid {device.uid} "
               + (f"connecting to {address}" if address else f"on {link}"), err=True)
    async def serve() -> None:
        task = asyncio.ensure_future(device.connect(address) if address
                                     else device.serve_pty(str(link)))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: the pty link goes too
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())  # a refused connection: one line from the error boundary
