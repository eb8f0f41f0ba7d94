"""The driver station as part of ``runtime up``: which ports, started and stopped with it.

A busy port does not stop the robot: the page is a convenience, the robot runs without it,
so ``runtime up`` says in its summary why there is no page and how to choose another port.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from runtime.exception import MQTTConnectionError
from runtime.web.server import WebConfig, WebServer

log = logging.getLogger("runtime.up")

DEFAULT_WEB = ("127.0.0.1", 8000)


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class DriverStation:
    """``web``: where the page is served (None: not at all); ``ws_port``: MQTT over
    WebSockets (the embedded broker's listener, or an external broker's such as Mosquitto's)."""

    web: tuple[str, int] | None = DEFAULT_WEB
    ws_port: int | None = 9001
    server: WebServer | None = None
    problem: str | None = None

    def broker_ws_port(self, host: str) -> int | None:
        """The WebSocket port the embedded broker should open on ``host``, if it is free."""
        if self.ws_port is None or self.web is None:
            return None
        if not port_free(host, self.ws_port):
            self.problem = (f"port {self.ws_port} (MQTT over WebSockets) is in use: "
                            "choose another with --ws-port")
            log.warning("driver station not served: %s", self.problem)
            self.web = None
            return None
        return self.ws_port

    def start(self, robot: str) -> None:
        if self.web is None or self.ws_port is None:
            return
        try:
            self.server = WebServer(*self.web, config=WebConfig(robot=robot, ws_port=self.ws_port))
        except MQTTConnectionError as exc:
            self.problem = exc.message
            log.warning("driver station not served: %s", exc.message)
            return
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def summary(self) -> str:
        if self.server is not None:
            return (f"  driver station   {self.server.url} "
                    f"(MQTT over WebSockets on port {self.ws_port})")
        return f"  driver station   not served: {self.problem or 'off (--web off)'}"
