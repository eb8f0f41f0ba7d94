"""``main(config)``: run the device service until SIGINT/SIGTERM (``runtime service device``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from runtime.aliases import AliasFile
from runtime.buffer import BufferStore
from runtime.config import ServiceConfig
from runtime.remote import Connection, MQTTLogHandler
from runtime.service.device.manager import SmartDeviceManager
from runtime.service.device.observers import EventObserver, Observer, PollingObserver
from runtime.service.device.studentlog import DeviceConsole
from runtime.servicemain import read_options, run_service, unless_stopped

log = logging.getLogger("runtime.service.device")


def make_observer(config: ServiceConfig, interval: float = 1.0,
                  udev_available: Callable[[], bool] = EventObserver.available) -> Observer:
    """udev when asked and available, else polling (said once in the log)."""
    if config.observer == "udev":
        if udev_available():
            return EventObserver(config.serial_globs)
        log.info("udev is not running here (/run/udev missing): polling %s every %g s "
                 "instead", ", ".join(config.serial_globs), interval)
    return PollingObserver(config.serial_globs, interval=interval)


async def serve(config: ServiceConfig, stop: asyncio.Event) -> None:
    buffers = BufferStore(config.robot)
    for name in buffers.reclaim(("device",)):
        log.info("removed %s, left by a device service that died", name)
    options = read_options(config, log)
    manager = SmartDeviceManager(buffers, make_observer(config, options.observer_interval),
                                 discovery_timeout=options.discovery_timeout,
                                 subscription_interval=options.subscription_interval,
                                 console=DeviceConsole(AliasFile(config.state_dir).get))
    try:
        async with Connection(config.mqtt, robot=config.robot, service="device",
                              password_file=config.password_file) as connection:
            logs = MQTTLogHandler(connection, "device").install()
            await manager.start(connection)
            await manager.open_serial_devices()
            if config.virtual_listen:
                await manager.open_virtual_devices(config.virtual_listen)
            try:
                # "online" means ready; waits for the broker, saying so
                if await unless_stopped(connection.go_online(), stop):
                    log.info("device service ready (robot %s)", config.robot)
                await stop.wait()
            finally:
                await manager.stop()
                logs.uninstall()
    finally:
        buffers.close()


def main(config: ServiceConfig) -> int:
    """Run the device service until SIGINT/SIGTERM; the exit code."""
    return run_service(serve, config)
