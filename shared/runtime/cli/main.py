"""Root ``runtime`` group. Every other module of this package adds its commands to it.

The group is the command line's one error boundary (:mod:`runtime.cli.errors`).
"""

import importlib
import pkgutil

import click

from runtime import __version__
from runtime.cli.errors import RuntimeGroup


@click.group(cls=RuntimeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runtime")
def main() -> None:
    """Runtime: the robot-side software of the PiE robotics kit."""


def _load_commands() -> None:
    """Import every ``runtime.cli.*`` module so that its commands attach to ``main``."""
    import runtime.cli as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in {"main", "common", "errors"}:
            importlib.import_module(f"runtime.cli.{module.name}")


_load_commands()
