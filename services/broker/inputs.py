"""Driver input: ``input/gamepad/<i>`` and ``input/keyboard`` into shared-memory buffers.

The broker service owns the four gamepad buffers and the keyboard buffer (it creates them;
the executor and the device service attach and read). A valid message updates its buffer at
once, on the MQTT callback, because this is the start of the gamepad -> motor path.

Safety: an input counts as connected while messages keep coming. When none has arrived for
``stale_after`` seconds (500 ms; driver stations send at least every 100 ms), or its client
says it is gone (an empty payload on its input topic, which is what a driver station sets as
its MQTT last will and sends when it quits), the buffer is marked disconnected; the executor
and the device service then stop the motors in teleop. One timer, re-armed only while some
input is connected, does the staleness check: an idle robot does no work here.

Malformed input is dropped and logged at most once per topic every 10 s (with a count of what
was dropped since), so a broken client cannot flood the log: payloads by the connection's typed
subscriptions, a bad gamepad index here, both with ``runtime.complaints.Complaints``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from runtime.complaints import Complaints
from runtime.exception import MessageError
from runtime.messages import GamepadInput, KeyboardInput
from runtime.remote import Connection
from runtime.topics import GAMEPAD_COUNT, Topics
from runtime.trace import hop

log = logging.getLogger(__name__)

STALE_AFTER = 0.5


class InputBridge:
    """Gamepad and keyboard messages into their buffers, with the staleness watchdog."""

    def __init__(self, buffers: Any, stale_after: float = STALE_AFTER,
                 complaints: Complaints | None = None) -> None:
        self.buffers = buffers
        self.stale_after = stale_after
        self.complaints = complaints or Complaints(log)
        self.topics: Topics | None = None
        self.gamepads: dict[int, Any] = {}
        self.keyboard: Any = None
        self._fresh: dict[Any, float] = {}  # connected buffer -> monotonic time of last input
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def button_params(self) -> list[dict[str, str]]:
        """The gamepad's parameters (buttons then axes), as the buffers define them."""
        return [{"name": param.name, "type": param.type} for param in self.buffers.gamepad_params()]

    async def start(self, connection: Connection) -> None:
        """Create the input buffers and subscribe to driver input."""
        self._loop = asyncio.get_running_loop()
        for index in range(GAMEPAD_COUNT):
            self.gamepads[index] = self.buffers.gamepad(index, create=True)
        self.keyboard = self.buffers.keyboard(create=True)
        topics = self.topics = connection.topics
        await connection.subscribe_typed(topics.any_gamepad, GamepadInput, self.on_gamepad)
        await connection.subscribe_typed(topics.keyboard, KeyboardInput, self.on_keyboard)

    async def stop(self) -> None:
        """Mark every input disconnected and stop the watchdog."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for buffer in list(self._fresh):
            self._disconnect(buffer, "the broker service is stopping")

    # -- callbacks (run inline on the MQTT loop: keep them short) ---------------------------
    def on_gamepad(self, topic: str, message: GamepadInput | None) -> None:
        hop("broker: input received")
        assert self.topics is not None
        try:
            index = self.topics.parse(topic).index
        except MessageError as exc:
            self.complaints.report(topic, f"dropped input on {topic}: {exc.message}")
            return
        assert index is not None
        buffer = self.gamepads[index]
        if message is None:
            self._disconnect(buffer, "its driver station said it is gone")
            return
        buffer.update(buttons=message.buttons, axes=message.axes, ts=time.time())
        hop("broker: buffer written")
        self._mark_fresh(buffer)

    def on_keyboard(self, topic: str, message: KeyboardInput | None) -> None:
        if message is None:  # an empty payload: the driver station's last will
            self._disconnect(self.keyboard, "its driver station said it is gone")
            return
        self.keyboard.update(keys=message.keys, ts=time.time())
        self._mark_fresh(self.keyboard)

    # -- staleness ------------------------------------------------------------------------
    def _mark_fresh(self, buffer: Any) -> None:
        self._fresh[buffer] = time.monotonic()
        if self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self.stale_after, self._check_stale)

    def _check_stale(self) -> None:
        """Disconnect inputs silent for ``stale_after``; re-arm for the next deadline."""
        self._timer = None
        now = time.monotonic()
        for buffer, last in list(self._fresh.items()):
            if now - last >= self.stale_after:
                self._disconnect(buffer, f"no input for {self.stale_after * 1000:.0f} ms")
        if self._fresh and self._loop is not None:
            next_deadline = min(self._fresh.values()) + self.stale_after
            self._timer = self._loop.call_at(
                self._loop.time() + max(0.0, next_deadline - now), self._check_stale
            )

    def _disconnect(self, buffer: Any, reason: str) -> None:
        if self._fresh.pop(buffer, None) is not None or buffer.connected:
            buffer.connected = False
            log.info("%s disconnected: %s", _describe(buffer, self), reason)


def _describe(buffer: Any, bridge: InputBridge) -> str:
    for index, gamepad in bridge.gamepads.items():
        if gamepad is buffer:
            return f"gamepad {index}"
    return "keyboard"
