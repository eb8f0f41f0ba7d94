"""``runtime up``: the whole robot on one machine, from one command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import click

from runtime.cli.common import service_options
from runtime.cli.errors import fail
from runtime.cli.main import main
from runtime.cli.mqtt import parse_listen
from runtime.config import ServiceConfig
from runtime.up.stack import redact


def broker_choice(ctx: click.Context) -> bool:
    """True for an external broker (``--mqtt`` or ``RUNTIME_MQTT``), False for the embedded one.

    ``--listen`` asks for the embedded broker and ``--mqtt`` names another one: both at once
    cannot be obeyed, so it is refused rather than one silently winning (``RUNTIME_MQTT`` in the
    environment used to override an explicit ``--listen``, leaving no broker at all).
    """
    Source = click.core.ParameterSource
    mqtt_from = ctx.get_parameter_source("mqtt")
    listen_given = ctx.get_parameter_source("listen") == Source.COMMANDLINE
    if mqtt_from == Source.ENVIRONMENT and listen_given:
        fail(f"--listen {ctx.params['listen']} asks for the embedded broker but RUNTIME_MQTT="
             f"{redact(ctx.params['mqtt'])} names another one: unset RUNTIME_MQTT to run the "
             "embedded broker, or drop --listen to use that broker")
    if mqtt_from == Source.COMMANDLINE and listen_given:
        fail("give --listen HOST:PORT (run the embedded broker) or --mqtt URL (use another "
             "broker), not both")
    return mqtt_from not in (Source.DEFAULT, None)


@main.command()
@click.option("--listen", default="127.0.0.1:1883", show_default=True,
              help="Address of the embedded MQTT broker (HOST:PORT); not with --mqtt.")
@click.option("--simulate", "simulate", multiple=True, metavar="TYPE[:UID]",
              help="Add a virtual smart device (repeatable), e.g. KoalaBear or KoalaBear:42; "
              "without UID the n-th of a type gets the id n (stable across starts); lowcar "
              "devices by qualified name, e.g. lowcar.KoalaBear:4660.")
@click.option("--broker-password-file", type=click.Path(path_type=Path, exists=True),
              default=None, help="Embedded broker: require logins from this mosquitto_passwd "
              "file (the services then need credentials in --mqtt or --password-file).")
@click.option("--broker-acl-file", type=click.Path(path_type=Path, exists=True), default=None,
              help="Embedded broker: restrict topics with this Mosquitto ACL file.")
@click.option("--web", default="127.0.0.1:8000", show_default=True, metavar="HOST:PORT|off",
              help="Serve the browser driver station here ('off': not at all).")
@click.option("--ws-port", type=click.IntRange(1, 65535), default=9001, show_default=True,
              help="MQTT over WebSockets for the page: the embedded broker listens on it (on "
              "the --listen host); with --mqtt, the port of that broker's WebSocket listener.")
@click.option("--gateway", default="127.0.0.1:8101", show_default=True,
              metavar="HOST:PORT|off",
              help="Serve PiE's Dawn and Shepherd here (the gateway service; 'off': no gateway). "
              "Use 0.0.0.0:8101 for clients on other machines.")
@click.option("--user", "broker_user", default=None,
              help="With --broker-password-file: the login of the services (their password "
              "is read from --password-file).")
@service_options
@click.pass_context
def up(ctx: click.Context, listen: str, simulate: tuple[str, ...],
       broker_password_file: Path | None, broker_acl_file: Path | None,
       broker_user: str | None, web: str, ws_port: int, gateway: str,
       config: ServiceConfig) -> None:
    """Run the whole robot: MQTT broker, the three services, simulated devices.

    Without --mqtt an embedded broker (amqtt) listens on --listen; Ctrl-C stops everything.
    A start that is refused (port taken, a robot of this name already running, bad options)
    changes nothing in the state dir.
    """
    from runtime.mqtt_server import quiet_amqtt
    from runtime.up.logstream import LogStream, StreamHandler
    from runtime.up.simulate import SimulatedDevice
    from runtime.up.stack import Stack
    from runtime.web.station import DriverStation

    external = broker_choice(ctx)
    if broker_password_file is not None and not external and (
            broker_user is None or config.password_file is None):
        fail("with --broker-password-file the services must log in: give --user NAME and "
             "--password-file FILE (the password of NAME)")
    devices = SimulatedDevice.parse_all(simulate)  # bad or duplicate: refused here
    address = None if external else parse_listen(listen)
    stream = LogStream()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(StreamHandler(stream, "up"))
    quiet_amqtt()
    if external and ctx.get_parameter_source("mqtt") == click.core.ParameterSource.ENVIRONMENT:
        logging.getLogger("runtime.up").info(
            "using the MQTT broker of RUNTIME_MQTT (%s); no embedded broker",
            redact(config.mqtt))
    stack = Stack(config, listen=address, simulate=devices, stream=stream,
                  broker_password_file=broker_password_file,
                  broker_acl_file=broker_acl_file, broker_user=broker_user,
                  station=DriverStation(
                      web=None if web == "off" else parse_listen(web), ws_port=ws_port),
                  gateway=None if gateway == "off" else parse_listen(gateway))

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await stack.run(stop)

    with contextlib.suppress(KeyboardInterrupt):
        # A refused start (port taken, robot already running): one line from the boundary.
        sys.exit(asyncio.run(run()))
