"""``runtime web``: serve the browser driver station alone (what compose runs beside Mosquitto).

``runtime up`` serves the page itself; this command is for robots whose broker is Mosquitto
(its WebSocket listener, 9001 in broker-config/mosquitto.conf, is what the page talks to).
"""

from __future__ import annotations

import signal
import sys
import threading

import click

from runtime.cli.main import main
from runtime.cli.mqtt import parse_listen
from runtime.exception import RuntimeBaseException


@main.command()
@click.option("--listen", default="127.0.0.1:8000", show_default=True, envvar="RUNTIME_WEB",
              help="Serve the page on HOST:PORT (0.0.0.0 for every laptop on the robot's LAN).")
@click.option("--ws-port", type=click.IntRange(1, 65535), default=9001, show_default=True,
              envvar="RUNTIME_WS_PORT",
              help="Port of the broker's MQTT over WebSockets listener, on the page's host.")
@click.option("--ws-url", default=None, envvar="RUNTIME_WS_URL",
              help="Full WebSocket URL of the broker instead (e.g. ws://robot.local:9001/).")
@click.option("--robot", default="robot", show_default=True, envvar="RUNTIME_ROBOT",
              help="Robot name.")
def web(listen: str, ws_port: int, ws_url: str | None, robot: str) -> None:
    """Serve the browser driver station until SIGINT/SIGTERM."""
    from runtime.web import WebConfig, WebServer

    host, port = parse_listen(listen)
    try:
        server = WebServer(host, port, config=WebConfig(robot=robot, ws_port=ws_port,
                                                        ws_url=ws_url))
    except RuntimeBaseException as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        click.echo(f"driver station for robot {robot!r} on {server.url} "
                   f"(MQTT over WebSockets: {ws_url or f'port {ws_port}'})")
        stop.wait()
