"""Prompt writes: a QoS 0 PUBLISH leaves in the loop turn ``publish`` is called.

aiomqtt 2.x hands paho's "this socket has something to write" to the event loop with
``call_soon_threadsafe`` (paho may ask from the thread aiomqtt connects in), and even at QoS 0
waits for paho's ``on_publish`` through an ``asyncio.Event`` and ``wait_for``: a QoS 0 publish
took 4-6 loop turns, an eventfd write and a task before its bytes left: 0.5-0.7 ms of every
gamepad publish on this machine (the gateway's for Dawn's input, the web station's, `runtime
drive`'s: docs/performance.md, ``bench/e2e.py --publisher connection``).

:class:`PromptWriter`, installed on one aiomqtt client for one session:

- paho's "register write" coming from the loop's own thread adds the socket's writer at once
  (from any other thread it still goes through aiomqtt's thread-safe handler);
- :meth:`PromptWriter.publish` queues the PUBLISH with paho and writes it in the same call
  (paho's ``loop_write``, what the writer callback would do a turn later). What the socket does
  not take now stays queued and the writer finishes it; the caller then waits until its own
  message has been written (the back-pressure aiomqtt's wait for its ``on_publish`` gave: a
  flood of QoS 0 messages to a slow broker does not grow paho's queue without bound). Not until
  the whole queue drains: then a publish waited for every message queued after it, and under a
  steady flood, or behind a message its frozen broker never takes, reported a message that had
  left as dropped (tests/foundation/test_prompt_writes.py).

It uses aiomqtt's paho client (``client._client``, as ``Connection`` already does for
``on_message``) and, if a write raises, aiomqtt's ``_disconnected`` future (what aiomqtt's own
writer callback does); tests/foundation/test_prompt_writes.py pins both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

log = logging.getLogger(__name__)


class PromptWriter:
    """Write QoS 0 publishes of ``client`` (connected, on ``loop``) in the turn they are made."""

    def __init__(self, client: aiomqtt.Client, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.paho: paho.Client = client._client
        self.loop = loop
        self._thread = threading.get_ident()
        self._deferred = self.paho.on_socket_register_write  # aiomqtt's thread-safe handler
        #: the publishes waiting for their message to be written, oldest first
        self._waiting: list[tuple[paho.MQTTMessageInfo, asyncio.Future[None]]] = []
        self.paho.on_socket_register_write = self._register

    def _register(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() != self._thread:
            if self._deferred is not None:
                self._deferred(client, userdata, sock)
            return
        self.loop.add_writer(sock.fileno(), self._write)

    def _write(self) -> None:
        """Write what paho has queued (it removes the writer once all is sent)."""
        try:
            self.paho.loop_write()
        except Exception as exc:  # what aiomqtt's writer does: the session is over
            disconnected = getattr(self.client, "_disconnected", None)
            if isinstance(disconnected, asyncio.Future) and not disconnected.done():
                disconnected.set_exception(exc)
            else:
                log.warning("MQTT write failed: %s", exc)
        if self._waiting:
            waiting = []
            for info, future in self._waiting:
                if future.done():
                    continue
                if info.is_published():
                    future.set_result(None)
                else:
                    waiting.append((info, future))
            self._waiting = waiting

    async def publish(self, topic: str, payload: bytes, retain: bool, timeout: float) -> bool:
        """Publish at QoS 0 now; False if paho refused it (not connected) or it was still not
        written after ``timeout`` seconds (or when the session ended)."""
        info = self.paho.publish(topic, payload, 0, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return False
        self._write()
        if info.is_published():
            return True
        written = self.loop.create_future()
        self._waiting.append((info, written))
        try:
            await asyncio.wait_for(written, timeout)
        except TimeoutError:
            return False
        return info.is_published()

    def close(self) -> None:
        """The session ended: nobody waits for a write any more."""
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:
            with contextlib.suppress(asyncio.InvalidStateError):
                future.set_result(None)
