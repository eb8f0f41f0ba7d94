"""``runtime up``: the whole robot on one machine, from one command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import click

from runtime import eventloop
from runtime.cli.common import service_options
from runtime.cli.main import main
from runtime.cli.mqtt import parse_listen
from runtime.config import ServiceConfig
from runtime.exception import RuntimeBaseException


@main.command()
@click.option("--listen", default="127.0.0.1:1883", show_default=True,
              help="Address of the embedded MQTT broker (HOST:PORT); unused with --mqtt.")
@click.option("--simulate", "simulate", multiple=True, metavar="TYPE[:UID]",
              help="Add a virtual smart device (repeatable), e.g. KoalaBear or KoalaBear:42.")
@click.option("--broker-password-file", type=click.Path(path_type=Path, exists=True),
              default=None, help="Embedded broker: require logins from this mosquitto_passwd "
              "file (the services then need credentials in --mqtt or --password-file).")
@click.option("--broker-acl-file", type=click.Path(path_type=Path, exists=True), default=None,
              help="Embedded broker: restrict topics with this Mosquitto ACL file.")
@click.option("--user", "broker_user", default=None,
              help="With --broker-password-file: the login of the services (their password "
              "is read from --password-file).")
@service_options
@click.pass_context
def up(ctx: click.Context, listen: str, simulate: tuple[str, ...],
       broker_password_file: Path | None, broker_acl_file: Path | None,
       broker_user: str | None, config: ServiceConfig) -> None:
    """Run the whole robot: MQTT broker, the three services, simulated devices.

    Without --mqtt an embedded broker (amqtt) listens on --listen; Ctrl-C stops everything.
    """
    from runtime.up.logstream import LogStream, StreamHandler
    from runtime.up.simulate import SimulatedDevice
    from runtime.up.stack import Stack

    external = ctx.get_parameter_source("mqtt") not in (
        click.core.ParameterSource.DEFAULT, None)
    stream = LogStream()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(StreamHandler(stream, "up"))
    from runtime.mqtt_server import quiet_amqtt

    quiet_amqtt()
    if broker_password_file is not None and not external and (
            broker_user is None or config.password_file is None):
        click.echo("error: with --broker-password-file the services must log in: give --user "
                   "NAME and --password-file FILE (the password of NAME)", err=True)
        sys.exit(2)
    try:
        devices = [SimulatedDevice.parse(spec) for spec in simulate]
        stack = Stack(config, listen=None if external else parse_listen(listen),
                      simulate=devices, stream=stream,
                      broker_password_file=broker_password_file,
                      broker_acl_file=broker_acl_file, broker_user=broker_user)
    except RuntimeBaseException as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await stack.run(stop)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            sys.exit(eventloop.run(run()))
    except (OSError, RuntimeBaseException) as exc:
        message = getattr(exc, "message", None) or str(exc)
        click.echo(f"error: {message}", err=True)
        sys.exit(1)
