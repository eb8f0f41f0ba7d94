"""``runtime service NAME``: run one service in the foreground (what compose runs)."""

from __future__ import annotations

import importlib
import sys

import click

from runtime.cli.common import service_options
from runtime.cli.errors import fail
from runtime.cli.main import main
from runtime.cli.mqtt import parse_listen
from runtime.config import ServiceConfig

SERVICES = ("broker", "device", "executor", "gateway")


@main.command()
@click.argument("name", type=click.Choice(SERVICES))
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="gateway only: where Dawn and Shepherd connect (default: the "
              "gateway_host/gateway_port options, 0.0.0.0:8101).")
@service_options
def service(name: str, listen: str | None, config: ServiceConfig) -> None:
    """Run one service (broker, device, executor or gateway) until SIGINT/SIGTERM."""
    module = importlib.import_module(f"runtime.service.{name}")
    entry = getattr(module, "main", None)
    if entry is None:
        fail(f"runtime service {name}: not implemented yet")
    if listen is not None:
        if name != "gateway":
            fail(f"--listen is an option of the gateway, not of the {name} service")
        sys.exit(entry(config, listen=parse_listen(listen)) or 0)
    sys.exit(entry(config) or 0)
