"""``main(config)``: run the broker service until SIGINT/SIGTERM (``runtime service broker``)."""

from __future__ import annotations

import asyncio
import logging

from runtime.buffer import BufferStore
from runtime.config import ServiceConfig
from runtime.remote import Connection, MQTTLogHandler
from runtime.service.broker.broker import Broker
from runtime.servicemain import read_options, run_service, unless_stopped

log = logging.getLogger("runtime.service.broker")


async def serve(config: ServiceConfig, stop: asyncio.Event) -> None:
    """The broker service on ``config`` until ``stop`` is set."""
    options = read_options(config, log)
    buffers = BufferStore(config.robot)
    buffers.reclaim(("gamepad", "keyboard"))  # left by a broker service that was killed
    try:
        async with Connection(config.mqtt, robot=config.robot, service="broker",
                              password_file=config.password_file) as connection:
            broker = Broker(buffers, state_dir=config.state_dir,
                            student_code=config.student_code_path, options=options)
            logs = MQTTLogHandler(connection, "broker").install()
            await broker.start(connection)
            try:
                # "online" means ready; waits for the broker, saying so
                if await unless_stopped(connection.go_online(), stop):
                    log.info("broker service ready (robot %s, data rate %g Hz)",
                             config.robot, options.data_rate)
                await stop.wait()
            finally:
                await broker.stop()
                logs.uninstall()
    finally:
        buffers.close()


def main(config: ServiceConfig) -> int:
    """Run the broker service until SIGINT/SIGTERM; the exit code."""
    return run_service(serve, config)
