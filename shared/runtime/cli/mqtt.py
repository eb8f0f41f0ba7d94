"""MQTT commands: ``runtime mqtt-server``, ``runtime monitor``, ``runtime call``."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

import click

from runtime.cli.common import connection_options, password_file_option
from runtime.cli.errors import fail
from runtime.cli.main import main
from runtime.exception import MessageError, RPCError
from runtime.messages import loads
from runtime.mqtt_server import EmbeddedBroker
from runtime.remote import Client, Connection, check_filter, error_line


def quiet_client_logs() -> None:
    """Command-line clients report connection problems once, as their error line."""
    logging.getLogger("runtime.remote").setLevel(logging.ERROR)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, or ``PORT``) -> (host, port)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host or "127.0.0.1", int(port)


async def _until_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@main.command("mqtt-server")
@click.option("--listen", default="127.0.0.1:1883", show_default=True,
              help="Address to listen on (HOST:PORT).")
@click.option("--password-file", "broker_password_file", default=None,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Mosquitto password file (mosquitto_passwd): logins required.")
@click.option("--acl-file", default=None,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Mosquitto ACL file: who may publish and read which topics.")
def mqtt_server(listen: str, broker_password_file: Path | None, acl_file: Path | None) -> None:
    """Run the embedded MQTT broker (amqtt) until Ctrl-C.

    Anonymous and open unless given broker-config's password file and ACL (the files a
    Mosquitto deployment uses).
    """
    host, port = parse_listen(listen)

    async def run() -> None:
        async with EmbeddedBroker(host, port, password_file=broker_password_file,
                                  acl_file=acl_file) as broker:
            access = "logins required" if broker_password_file else "anonymous"
            if acl_file:
                access += ", ACL enforced"
            click.echo(f"MQTT broker listening on {broker.url} ({access}; Ctrl-C stops it)",
                       err=True)
            await _until_signal()

    asyncio.run(run())  # a taken port: one line from the error boundary


def payload_json(payload: bytes) -> dict[str, Any]:
    """The JSON-friendly form of a payload: decoded CBOR, or why it is not CBOR."""
    if not payload:
        return {"payload": None, "empty": True}
    try:
        return {"payload": _jsonable(loads(payload))}
    except MessageError as exc:
        return {"payload": None, "raw": payload.hex(), "error": exc.message}


def _jsonable(value: Any) -> Any:
    """CBOR values as JSON: byte strings as hex, map keys as text, other types as text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def is_input(topic: str) -> bool:
    """``runtime/<robot>/input/...``: driver input, 20 Hz per driver station."""
    levels = topic.split("/")
    return len(levels) > 2 and levels[2] == "input"


@main.command()
@click.argument("topic_filter", metavar="[FILTER]", default="#")
@click.option("--input", "with_input", is_flag=True,
              help="Also show input/ (gamepads and keyboard, 20 Hz each): hidden unless FILTER "
              "names input.")
@click.option("--once", is_flag=True, help="Exit after the first message.")
@click.option("--timeout", type=float, default=None,
              help="With --once: fail if no message arrives within this many seconds.")
@password_file_option
@connection_options
def monitor(topic_filter: str, with_input: bool, once: bool, timeout: float | None,
            password_file: Path | None, mqtt: str, robot: str) -> None:
    """Print every message as a JSON line {"topic", "payload"} (payloads decoded from CBOR).

    FILTER is relative to runtime/<robot>/ unless it starts with "runtime/"
    (default "#": everything of the robot except the 20 Hz driver input; --input or a FILTER
    such as "input/#" shows it).
    """
    quiet_client_logs()
    if not topic_filter.startswith("runtime/"):
        topic_filter = f"runtime/{robot}/{topic_filter}"
    try:
        check_filter(topic_filter)
    except MessageError as exc:
        raise click.BadParameter(exc.message) from None
    show_input = with_input or is_input(topic_filter)

    async def run() -> None:
        done = asyncio.Event()

        def show(topic: str, payload: bytes) -> None:
            if done.is_set() or (not show_input and is_input(topic)):
                return
            line = {"topic": topic, **payload_json(payload)}
            click.echo(json.dumps(line, allow_nan=True))
            if once:
                done.set()

        async with Connection(mqtt, robot=robot, password_file=password_file,
                              connect_timeout=0) as connection:
            await connection.wait_connected(10.0)
            await connection.subscribe(topic_filter, show)
            waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(_until_signal())]
            finished, pending = await asyncio.wait(
                waiters, timeout=timeout if once else None, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if once and not finished:
                fail(f"no message on {topic_filter} within {timeout:g} s")

    asyncio.run(run())


@main.command()
@click.argument("service")
@click.argument("method")
@click.argument("arguments", metavar="[JSON]", default="[]")
@click.option("--timeout", type=float, default=5.0, show_default=True,
              help="Seconds to wait for the reply.")
@password_file_option
@connection_options
def call(service: str, method: str, arguments: str, timeout: float,
         password_file: Path | None, mqtt: str, robot: str) -> None:
    """Call SERVICE.METHOD; JSON is a list of arguments or an object of keyword arguments.

    Prints the result as JSON. Example: runtime call executor set_mode '["teleop"]'
    """
    quiet_client_logs()
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param_hint="JSON") from None
    if isinstance(parsed, list):
        args, kwargs = parsed, {}
    elif isinstance(parsed, dict):
        args, kwargs = [], parsed
    else:
        raise click.BadParameter("expected a JSON list of arguments or an object of keyword "
                                 "arguments", param_hint="JSON")

    async def run() -> Any:
        async with Connection(mqtt, robot=robot, password_file=password_file,
                              connect_timeout=0) as connection:
            await connection.wait_connected(timeout)
            return await Client(connection).request(service, method, args, kwargs,
                                                    timeout=timeout)

    try:
        result = asyncio.run(run())
    except (RPCError, MessageError) as exc:
        fail(error_line(exc))  # a remote error with its type and context
    click.echo(json.dumps(_jsonable(result)))
