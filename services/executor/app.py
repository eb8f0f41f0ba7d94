"""``main(config)``: run the executor service until SIGINT/SIGTERM (``runtime service executor``).

Unlike the other services, the asyncio loop with the MQTT connection runs in a second thread:
the main thread belongs to the student's code, because only the main thread can be interrupted
by a signal (time limits, estop). A student's ``while True: pass`` therefore never delays an
RPC, and ``set_mode("estop")`` stops the motors from the MQTT thread at once, whatever the main
thread is doing.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

from runtime.buffer import BufferStore
from runtime.buffer.liveness import start_liveness
from runtime.config import ServiceConfig
from runtime.exception import BufferStoreError
from runtime.remote import Connection, MQTTLogHandler
from runtime.service.executor.dispatcher import Dispatcher, timeouts_from_options
from runtime.service.executor.sync import EXECUTOR_SIGNALS, start_thread
from runtime.servicemain import read_options, setup_logging, unless_stopped

log = logging.getLogger("runtime.service.executor")


class MQTTThread:
    """The executor's MQTT connection and RPC service, on an asyncio loop of its own."""

    def __init__(self, config: ServiceConfig, dispatcher: Dispatcher) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="executor mqtt", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> MQTTThread:
        start_thread(self._thread)
        self.ready.wait(15.0)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # the loop is already closed
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.error = exc
            log.exception("the MQTT thread stopped")
            self.dispatcher.shutdown()
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = self.config
        # The device service stops the motors when this beat stops (frozen, stuck, killed).
        try:
            beat = start_liveness(self.dispatcher.buffers, self._loop)
        except BufferStoreError as exc:  # another executor of this robot owns it
            log.error("%s (the device service follows the liveness counter of that one, not "
                      "this executor)", exc.message)
            beat = None
        try:
            await self._connected(config)
        finally:
            if beat is not None:
                beat.stop()

    async def _connected(self, config: ServiceConfig) -> None:
        assert self._stop is not None
        async with Connection(config.mqtt, robot=config.robot, service="executor",
                              password_file=config.password_file) as connection:
            await self.dispatcher.serve(connection)
            logs = MQTTLogHandler(connection, "executor")
            logs.addFilter(lambda record: not record.name.startswith("student"))  # own topic
            logs.install()
            self.ready.set()
            try:
                # "online" means ready; waits for the broker, saying so
                if await unless_stopped(connection.go_online(), self._stop):
                    log.info("executor service ready (robot %s, student code %s, period %g s)",
                             config.robot, config.student_code_path, self.dispatcher.period)
                await self._stop.wait()
            finally:
                logs.uninstall()
            self.dispatcher.connection = None  # nothing more to publish on a closing link


def build(config: ServiceConfig, buffers: BufferStore) -> Dispatcher:
    """The dispatcher for ``config``, with the robot's options."""
    options = read_options(config, log)
    return Dispatcher(buffers, timeouts=timeouts_from_options(options),
                      student_code=config.student_code_path, state_dir=config.state_dir)


def main(config: ServiceConfig) -> int:
    """Run the executor service until SIGINT/SIGTERM; the exit code."""
    setup_logging()
    for signum in EXECUTOR_SIGNALS:  # until the dispatcher handles them: never fatal
        signal.signal(signum, signal.SIG_IGN)
    buffers = BufferStore(config.robot)
    buffers.reclaim()
    dispatcher = build(config, buffers)

    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        dispatcher.request_shutdown()  # lock-free: the main thread may be anywhere

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    mqtt = MQTTThread(config, dispatcher).start()
    try:
        dispatcher.run()
    finally:
        if received:
            log.info("stopping (%s)", signal.Signals(received[0]).name)
        mqtt.stop()
        buffers.close()
    return 0 if mqtt.error is None else 1
