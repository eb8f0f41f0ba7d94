"""``WebServer``: the driver station's files over HTTP, from a thread (stdlib ``http.server``).

Why the standard library and not an asyncio web framework: the page is a handful of static
files plus one generated ``config.json``; everything live goes over MQTT, browser to broker.
A threading server keeps this off every service's event loop and adds no dependency.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runtime import __version__
from runtime.exception import MQTTConnectionError
from runtime.topics import Topics

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "studentcode.py"
DEFAULT_WS_PORT = 9001  # Mosquitto's WebSockets listener in broker-config/mosquitto.conf
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
         ".html": "text/html", ".json": "application/json", ".txt": "text/plain",
         ".py": "text/x-python", ".svg": "image/svg+xml"}


class WebConfig(BaseModel):
    """What the page is told in ``config.json``.

    ``ws_url``: where MQTT over WebSockets listens; None lets the page use the host it was
    loaded from with ``ws_port`` (so a laptop that opened ``http://<robot>:8000/`` reaches
    ``ws://<robot>:9001/``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    robot: str = "robot"
    ws_port: int = Field(default=DEFAULT_WS_PORT, ge=1, le=65535)
    ws_url: str | None = None
    version: str = __version__
    #: Executor requests of a logged-in page go to ``as/<login>/rpc/executor/<method>`` (the
    #: executor's per-login request topics, docs/deployment.md "Authority") when this
    #: Runtime has them; the plain ``rpc/executor/<method>`` otherwise.
    rpc_as_login: bool = hasattr(Topics, "rpc_as")


class _Handler(SimpleHTTPRequestHandler):
    """Static files from ``STATIC``, ``/config.json`` and ``/sample.py`` generated/redirected."""

    config: WebConfig

    def __init__(self, *args: Any, config: WebConfig, **kwargs: Any) -> None:
        self.config = config
        super().__init__(*args, directory=str(STATIC), **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/config.json":
            self._send(self.config.model_dump_json().encode(), "application/json")
        elif path == "/sample.py":
            self._send(SAMPLE.read_bytes(), TYPES[".py"])
        else:
            super().do_GET()

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def guess_type(self, path: str | Any) -> str:
        return TYPES.get(Path(str(path)).suffix) or super().guess_type(path)

    def end_headers(self) -> None:
        # A robot's page changes with every update of Runtime: the browser must revalidate.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class WebServer:
    """The page on ``http://host:port/`` until ``stop()``; ``port=0`` picks a free one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000,
                 config: WebConfig | None = None) -> None:
        self.config = config or WebConfig()
        try:
            self._server = ThreadingHTTPServer((host, port), partial(_Handler,
                                                                     config=self.config))
        except OSError as exc:
            raise MQTTConnectionError(
                f"the driver station page cannot be served on {host}:{port}: {exc.strerror} "
                "(pick another address with --web HOST:PORT, or --web off)",
                host=host, port=port) from None
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> WebServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            name="driver-station-http", daemon=True)
            self._thread.start()
            log.info("driver station page on %s", self.url)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

