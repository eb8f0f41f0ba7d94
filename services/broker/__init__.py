"""The broker service: driver input into buffers, device data to clients, options, lint,
aliases (``runtime.service.broker.Broker``; ``main(config)`` runs it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.service.broker.broker import Broker

if TYPE_CHECKING:
    from runtime.config import ServiceConfig


def main(config: ServiceConfig) -> int:
    """Run the broker service until SIGINT/SIGTERM (``runtime service broker``)."""
    from runtime.service.broker.app import main as run

    return run(config)


__all__ = ["Broker", "main"]
