"""The ``runtime`` command line (click). Each command group lives in its own module."""

from runtime.cli.main import main

__all__ = ["main"]
