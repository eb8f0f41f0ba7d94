"""``runtime service NAME``: run one service in the foreground (what compose runs)."""

from __future__ import annotations

import importlib
import sys

import click

from runtime.cli.common import service_options
from runtime.cli.errors import fail
from runtime.cli.main import main
from runtime.config import ServiceConfig

SERVICES = ("broker", "device", "executor", "gateway")


@main.command()
@click.argument("name", type=click.Choice(SERVICES))
@service_options
def service(name: str, config: ServiceConfig) -> None:
    """Run one service (broker, device, executor or gateway) until SIGINT/SIGTERM."""
    module = importlib.import_module(f"runtime.service.{name}")
    entry = getattr(module, "main", None)
    if entry is None:
        fail(f"runtime service {name}: not implemented yet")
    sys.exit(entry(config) or 0)
