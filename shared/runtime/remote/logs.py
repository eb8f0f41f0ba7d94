"""Service logs to ``log/<source>``: what a driver station shows when something goes wrong.

``MQTTLogHandler`` is a ``logging.Handler`` that turns records (INFO and above by default) into
``LogRecord`` payloads and publishes them, QoS 0, from the connection's event loop, whatever
thread logged. It never blocks the logger and never raises: records are queued (at most
``backlog``; beyond that they are counted and the count is reported in the next record), and a
record logged while MQTT is down is dropped, as QoS 0 would be anyway.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from runtime.messages import LogRecord, encode
from runtime.remote.connection import Connection


class MQTTLogHandler(logging.Handler):
    """Publish log records of this process on ``log/<source>`` (see the module docstring)."""

    def __init__(self, connection: Connection, source: str, level: int = logging.INFO,
                 backlog: int = 200) -> None:
        super().__init__(level)
        self.connection = connection
        self.topic = connection.topics.log(source)
        self.loop = asyncio.get_running_loop()
        self.queue: collections.deque[LogRecord] = collections.deque()
        self.backlog = backlog
        self.dropped = 0
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("runtime.remote", "aiomqtt", "paho")):
            return  # logging the MQTT connection over itself only makes loops
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message = f"{message}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            if len(self.queue) >= self.backlog:
                self.dropped += 1
                return
            context: dict[str, Any] = {}
            if self.dropped:  # say how many lines the last flood cost
                context["dropped"] = self.dropped
                self.dropped = 0
            self.queue.append(LogRecord(ts=record.created, level=record.levelname,
                                        logger=record.name, message=message, context=context))
            if not self._scheduled:
                self._scheduled = True
                self.loop.call_soon_threadsafe(self._flush_soon)
        except RuntimeError:
            pass  # the loop is closed: the process is ending
        except Exception:
            self.handleError(record)

    def _flush_soon(self) -> None:
        self.connection.spawn(self._flush(), name="publish logs")

    async def _flush(self) -> None:
        self._scheduled = False
        while self.queue:
            record = self.queue.popleft()
            try:
                await self.connection.publish(self.topic, encode(record), qos=0)
            except Exception:  # a log line is never worth an error
                self.dropped += 1

    def install(self) -> MQTTLogHandler:
        """Attach to the root logger; returns self (``uninstall`` detaches)."""
        logging.getLogger().addHandler(self)
        return self

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
