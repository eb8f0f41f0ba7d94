"""``main(config)``: run the broker service until SIGINT/SIGTERM (``runtime service broker``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from runtime.buffer import BufferStore
from runtime.config import ServiceConfig
from runtime.exception import OptionError
from runtime.options import Options, load_options
from runtime.remote import Connection, MQTTLogHandler
from runtime.service.broker.broker import Broker

log = logging.getLogger("runtime.service.broker")


def read_options(config: ServiceConfig) -> Options:
    """The stored options; defaults (and one error line) if the file is bad, so that
    ``set_option`` can still repair it."""
    try:
        return load_options(config.state_dir)
    except OptionError as exc:
        log.error("%s; using the default options until it is fixed", exc.message)
        return Options()


async def serve(config: ServiceConfig, stop: asyncio.Event) -> None:
    """The broker service on ``config`` until ``stop`` is set."""
    options = read_options(config)
    buffers = BufferStore(config.robot)
    buffers.reclaim(("gamepad", "keyboard"))  # left by a broker service that was killed
    try:
        async with Connection(config.mqtt, robot=config.robot, service="broker",
                              password_file=config.password_file) as connection:
            broker = Broker(buffers, state_dir=config.state_dir,
                            student_code=config.student_code_path, options=options)
            logs = MQTTLogHandler(connection, "broker").install()
            await broker.start(connection)
            log.info("broker service ready (robot %s, data rate %g Hz)",
                     config.robot, options.data_rate)
            try:
                await stop.wait()
            finally:
                await broker.stop()
                logs.uninstall()
    finally:
        buffers.close()


async def run(config: ServiceConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(config, stop)


def main(config: ServiceConfig) -> int:
    """Run the broker service until SIGINT/SIGTERM; the exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(config))
    return 0
