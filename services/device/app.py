"""``main(config)``: run the device service until SIGINT/SIGTERM (``runtime service device``)."""

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
from runtime.service.device.manager import SmartDeviceManager
from runtime.service.device.observers import EventObserver, Observer, PollingObserver

log = logging.getLogger("runtime.service.device")


def make_observer(config: ServiceConfig, interval: float = 1.0) -> Observer:
    """udev when asked and available, else polling (said once in the log)."""
    if config.observer == "udev":
        if EventObserver.available():
            return EventObserver(config.serial_globs)
        log.info("udev is not running here (/run/udev missing): polling %s every %g s "
                 "instead", ", ".join(config.serial_globs), interval)
    return PollingObserver(config.serial_globs, interval=interval)


def read_options(config: ServiceConfig) -> Options:
    try:
        return load_options(config.state_dir)
    except OptionError as exc:
        log.error("%s; using the default options", exc.message)
        return Options()


async def serve(config: ServiceConfig, stop: asyncio.Event) -> None:
    buffers = BufferStore(config.robot)
    for name in buffers.reclaim(("device",)):
        log.info("removed %s, left by a device service that died", name)
    options = read_options(config)
    manager = SmartDeviceManager(buffers, make_observer(config, options.observer_interval),
                                 discovery_timeout=options.discovery_timeout,
                                 subscription_interval=options.subscription_interval)
    try:
        async with Connection(config.mqtt, robot=config.robot, service="device",
                              password_file=config.password_file) as connection:
            logs = MQTTLogHandler(connection, "device").install()
            await manager.start(connection)
            await manager.open_serial_devices()
            if config.virtual_listen:
                await manager.open_virtual_devices(config.virtual_listen)
            log.info("device service ready (robot %s)", config.robot)
            try:
                await stop.wait()
            finally:
                await manager.stop()
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
    """Run the device service until SIGINT/SIGTERM; the exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(config))
    return 0
