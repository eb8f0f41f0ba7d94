"""``main(config)``: run the gateway service until SIGINT/SIGTERM (``runtime service gateway``)."""

from __future__ import annotations

import asyncio
import functools
import logging

from runtime.config import ServiceConfig
from runtime.remote import Connection, MQTTLogHandler
from runtime.service.gateway.gateway import Gateway
from runtime.servicemain import read_options, run_service, unless_stopped

log = logging.getLogger("runtime.service.gateway")


async def serve(config: ServiceConfig, stop: asyncio.Event,
                listen: tuple[str, int] | None = None) -> None:
    """The gateway on ``config`` until ``stop`` is set; ``listen`` overrides the options'
    ``gateway_host``/``gateway_port``."""
    options = read_options(config, log)
    host, port = listen or (options.gateway_host, options.gateway_port)
    async with Connection(config.mqtt, robot=config.robot, service="gateway",
                          password_file=config.password_file) as connection:
        gateway = Gateway(host, port)
        logs = MQTTLogHandler(connection, "gateway").install()
        try:
            await gateway.start(connection)
        except OSError as exc:
            log.error("gateway cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
            logs.uninstall()
            raise SystemExit(1) from None
        try:
            # "online" means ready; waits for the broker, saying so
            if await unless_stopped(connection.go_online(), stop):
                log.info("gateway service ready (robot %s, Dawn and Shepherd on port %d)",
                         config.robot, gateway.port)
            await stop.wait()
        finally:
            await gateway.stop()
            logs.uninstall()


def main(config: ServiceConfig, listen: tuple[str, int] | None = None) -> int:
    """Run the gateway service until SIGINT/SIGTERM; the exit code."""
    return run_service(functools.partial(serve, listen=listen), config)
