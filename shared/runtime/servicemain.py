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
    """``await serve(config, stop)`` until SIGINT/SIGTERM sets ``stop``; the exit code."""
    setup_logging()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0
