"""``runtime console``: the student console as readable lines (runtime.studentconsole).

It subscribes to ``log/+`` first, then (with ``--since``) asks the broker service for what it
kept, prints that, then the live records it held back meanwhile (none twice), then follows.
On a terminal errors are red and warnings yellow; piped, the same lines without colour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from typing import Any

import click

from runtime.cli.main import main
from runtime.cli.robot import common, fail, robot_options
from runtime.exception import MessageError, MQTTConnectionError, RPCError
from runtime.messages import LogRecord, decode
from runtime.remote import Client, Connection
from runtime.studentconsole import from_wire, lines, parse_since, relevant
from runtime.topics import parse_topic


@main.command()
@click.option("--since", "since_text", default=None, metavar="DURATION",
              help="First show what the robot kept of the last DURATION (30s, 10m, 2h).")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep printing new lines (Ctrl-C to stop).")
@click.option("--color", "colour", type=click.Choice(["auto", "always", "never"]),
              default="auto", show_default=True, help="Colour errors and warnings.")
@robot_options
def console(since_text: str | None, follow: bool, colour: str, **kwargs: Any) -> None:
    """Show what the student program prints, its errors, and the robot's events."""
    params = common(kwargs)
    try:
        since = parse_since(since_text) if since_text is not None else None
    except ValueError as exc:
        fail(str(exc))
    use_colour = colour == "always" or (colour == "auto" and sys.stdout.isatty()
                                        and "NO_COLOR" not in os.environ)
    logging.getLogger("runtime.remote").setLevel(logging.ERROR)
    try:
        asyncio.run(_console(params, since, follow, use_colour))
    except KeyboardInterrupt:
        pass
    except MQTTConnectionError as exc:
        fail(f"{exc.message} (is the robot running? start one with `runtime up`)")
    except RPCError as exc:
        fail(f"the robot keeps no console history here ({exc.message})")


async def _console(params: dict[str, Any], since: float | None, follow: bool,
                   colour: bool) -> None:
    held: list[LogRecord] | None = []  # live records while the history is fetched
    shown: set[tuple[float, str, str]] = set()

    def show(record: LogRecord) -> None:
        key = (record.ts, record.logger, record.message)
        if key in shown:
            return
        shown.add(key)
        for line in lines(record, colour):
            click.echo(line)

    def on_log(topic: str, payload: bytes) -> None:
        try:
            source = parse_topic(topic).source or ""
            record = decode(LogRecord, payload)
        except MessageError:
            return
        if not relevant(source, record):
            return
        if held is not None:
            held.append(record)
        else:
            show(record)

    async with Connection(params["mqtt"], robot=params["robot"], connect_timeout=0,
                          password_file=params["password_file"]) as connection:
        await connection.wait_connected(params["timeout"])
        if follow:
            await connection.subscribe(connection.topics.any_log, on_log)
            click.echo(f"following the console of robot {params['robot']} (Ctrl-C to stop)",
                       err=True)
        if since is not None:
            client = Client(connection)
            await client.start()
            history = await client.call("broker", "console", since=time.time() - since,
                                        timeout=params["timeout"])
            for record in from_wire(history):
                show(record)
        pending, held = held or [], None
        for record in pending:
            show(record)
        if follow:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
