"""What every service's ``main(config)`` does around its own work: logging, options, signals.

The broker and device services are asyncio programs that run until SIGINT/SIGTERM; the executor
shapes its threads differently but reads its options the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from runtime import eventloop
from runtime.config import ServiceConfig
from runtime.exception import OptionError
from runtime.options import Options, load_options

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """INFO and above to stderr, unless the host program configured logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def read_options(config: ServiceConfig, log: logging.Logger) -> Options:
    """The stored options; the defaults and one error line if the file is bad, so that
    ``runtime option set`` can still repair it."""
    try:
        return load_options(config.state_dir)
    except OptionError as exc:
        log.error("%s; using the default options until it is fixed", exc.message)
        return Options()


def run_service(serve: Callable[[ServiceConfig, asyncio.Event], Awaitable[None]],
                config: ServiceConfig) -> int:
    """``await serve(config, stop)`` until SIGINT/SIGTERM sets ``stop``; the exit code.

    The loop is uvloop (``runtime.eventloop``): every wake-up on the gamepad -> motor path
    costs less there."""
    setup_logging()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop)

    with contextlib.suppress(KeyboardInterrupt):
        eventloop.run(run())
    return 0


async def unless_stopped(awaitable: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Await ``awaitable`` unless ``stop`` is set first (then cancel it): True if it finished.

    Services wait for the broker with it (``connection.go_online()``), so SIGTERM still stops a
    service whose broker never comes.
    """
    task = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True
