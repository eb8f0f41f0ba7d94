"""The embedded MQTT broker: amqtt in-process, loopback and anonymous by default.

Used by ``runtime mqtt-server``, ``runtime up`` and the tests. amqtt (0.12) quirks handled
here: the ``Broker`` must be created inside a running loop; reading the
port of a ``:0`` listener needs a private attribute, so a free port is picked first; a
``plugins`` key replaces amqtt's defaults entirely, so the minimal set (anonymous auth, no
$SYS, no packet logging) is given explicitly; accepted sockets get TCP_NODELAY (amqtt leaves
Nagle on, which costs ~40 ms per request/response).

amqtt 0.12.1 faults worked around here (issue 11; each has a test in tests/broker/
test_embedded_faults.py that shows it on amqtt as shipped, with ``workarounds=False``):

- *churn race*: amqtt iterates its subscription dict while awaiting (a connecting client's
  retained messages, a broadcast through an ACL plugin), so a client subscribing or leaving
  meanwhile raised "dictionary changed size during iteration" and dropped clients. The dict is
  replaced by one whose iteration works on a snapshot.
- *retained leak*: on every CONNECT amqtt sent the new client the retained messages of every
  filter *anyone* subscribes to, once per matching filter: a subscriber of ``y/c`` got ``x/a``
  two to four times. Retained messages now go only to a session that holds the filter.
- *keepalive never enforced*: its read-timeout handler does nothing, so a hung client (SIGSTOP,
  power loss behind a live TCP peer) was never dropped and its last will never fired. A client
  silent for 1.5 x its keepalive (MQTT 3.1.1, 3.1.2.10) is now disconnected, which sends its
  will, as Mosquitto does.

Authentication: ``password_file`` (made by ``mosquitto_passwd``) and ``acl_file`` (Mosquitto's
ACL format) are the very files a Mosquitto deployment uses (``broker-config/``), enforced by
``runtime.mqtt_auth.MosquittoFilesPlugin``; without them the broker is anonymous and open.
``plugins_config`` replaces the whole plugin map instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from runtime.exception import MQTTConnectionError
from runtime.mqtt_auth import AccessList, PasswordFile

log = logging.getLogger(__name__)

ANONYMOUS_PLUGINS: dict[str, Any] = {
    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
}
AMQTT_LOGGERS = ("amqtt", "transitions", "websockets")  # websockets: its WebSocket listener
FILES_PLUGIN = "runtime.mqtt_auth.MosquittoFilesPlugin"


FREE_PORT_LOW = 10000  #: lowest port ``free_port`` hands out (well above the usual services)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, *below* the kernel's ephemeral range.

    Not the OS's pick (port 0), which comes from the ephemeral range: a broker stopped and
    started again on such a port (an outage, in tests and benches) could find it taken by any
    outgoing connection meanwhile, among them its own clients retrying to reach it (on
    loopback a connect to a closed port in that range can even connect to itself). Outside
    the range, only another listener can take it. (A kernel whose range starts below
    ``FREE_PORT_LOW`` + 1000 leaves no room: the OS picks then.)
    """
    low = _ephemeral_low()
    for _ in range(200 if low > FREE_PORT_LOW + 1000 else 0):
        port = random.randrange(FREE_PORT_LOW, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default 32768 if unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def quiet_amqtt(level: int = logging.WARNING) -> None:
    """amqtt logs every connection and packet at INFO/DEBUG: keep only warnings."""
    for name in AMQTT_LOGGERS:
        logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _no_amqtt_tracebacks() -> Iterator[None]:
    """amqtt logs a failed start with a traceback and raises too; keep just the exception."""

    def strip(record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = None
        return True

    logger = logging.getLogger("amqtt.broker")  # filters are not inherited: its own logger
    logger.addFilter(strip)
    try:
        yield
    finally:
        logger.removeFilter(strip)


class _SnapshotDict(dict):  # type: ignore[type-arg]
    """A dict whose iteration works on a copy: amqtt awaits inside loops over its
    subscriptions, and a client (un)subscribing meanwhile must not break them."""

    def __iter__(self) -> Iterator[Any]:
        return iter(list(super().keys()))

    def keys(self) -> list[Any]:  # type: ignore[override]
        return list(super().keys())

    def values(self) -> list[Any]:  # type: ignore[override]
        return [list(v) if isinstance(v, list) else v for v in super().values()]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        return [(k, list(v) if isinstance(v, list) else v) for k, v in super().items()]


class _StampedReader(ReaderAdapter):
    """A client's byte stream that remembers when it last delivered anything (keepalive)."""

    def __init__(self, reader: ReaderAdapter) -> None:
        self._reader = reader
        self.last = time.monotonic()

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        self.last = time.monotonic()
        return data

    def feed_eof(self) -> None:
        self._reader.feed_eof()


class _CheckedBroker(Broker):
    """amqtt's Broker with retained messages checked against the topic plugins (an ACL) like
    live ones when a subscription receives them (amqtt 0.12 skips that check), and, with
    ``workarounds``, its churn race, retained leak and missing keepalive fixed (see above)."""

    workarounds = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.workarounds:
            subscriptions: dict[str, Any] = getattr(self, "_subscriptions")  # noqa: B009 (untyped)
            self._subscriptions = _SnapshotDict(subscriptions)

    async def _client_connected(self, listener_name: str, reader: ReaderAdapter,
                                writer: WriterAdapter) -> None:
        if self.workarounds:
            reader = _StampedReader(reader)
        await super()._client_connected(listener_name, reader, writer)

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        handler, session = await super()._initialize_client_session(
            reader, writer, remote_address, remote_port)
        if isinstance(reader, _StampedReader) and session.keep_alive > 0:
            def read_timeout() -> None:  # amqtt calls it after keep_alive s without a packet
                self._check_keepalive(handler, session, reader, reschedule=True)

            handler.handle_read_timeout = read_timeout  # type: ignore[method-assign]
        return handler, session

    async def _stop_handler(self, handler: BrokerProtocolHandler) -> None:
        """Stop a client's reader for sure before amqtt waits for it to end.

        Python 3.11's ``asyncio.wait_for`` loses a cancel that lands while the awaited read
        completes (fixed in 3.12): amqtt's reader loop then reads on, and ``handler.stop()``
        waits for it forever, so a broker stop hung (seen on a loaded machine: a client
        published while the broker stopped). Cancelled again until it is done, it ends.
        """
        task = handler._reader_task
        if self.workarounds and task is not None and task is not asyncio.current_task():
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)
        await super()._stop_handler(handler)

    def _check_keepalive(self, handler: BrokerProtocolHandler, session: Session,
                         reader: _StampedReader, reschedule: bool) -> None:
        """Drop a client silent for 1.5 x its keepalive: amqtt then sends its last will."""
        limit = 1.5 * session.keep_alive
        silence = time.monotonic() - reader.last
        task = handler._reader_task
        if task is None or task.done():
            return
        if silence >= limit:
            log.info("MQTT client %s silent for %.1f s (keepalive %d s): disconnecting it",
                     session.client_id, silence, session.keep_alive)
            task.cancel()
        elif reschedule:
            asyncio.get_running_loop().call_later(
                limit - silence, self._check_keepalive, handler, session, reader, False)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        if self.workarounds and not any(
            held.client_id == session.client_id
            for held, _ in dict.get(self._subscriptions, topic_filter, ())
        ):
            return  # amqtt calls this on CONNECT for every filter anyone holds
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                continue
            tasks.append(asyncio.ensure_future(handler.mqtt_publish(
                retained.topic, retained.data, min(qos, retained.qos or qos), retain=True
            )))
        if tasks:
            await asyncio.wait(tasks)


class _NoDelayBroker(_CheckedBroker):
    """With TCP_NODELAY on every accepted client socket."""

    async def stream_connected(self, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter, listener_name: str) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await super().stream_connected(reader, writer, listener_name)

    async def ws_connected(self, websocket: Any, listener_name: str) -> None:
        sock = websocket.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await super().ws_connected(websocket, listener_name)


class _AsShipped(_NoDelayBroker):
    """amqtt's faults left in (tests show them with it)."""

    workarounds = False


class EmbeddedBroker:
    """amqtt on ``host:port`` in the current event loop: ``await start()`` / ``await stop()``.

    ``port=None`` picks a free port once, so ``start()`` after ``stop()`` reuses it (clients
    reconnect to the same URL). ``nodelay=False`` only exists to measure what Nagle costs,
    ``workarounds=False`` to show amqtt's own faults in tests.
    ``password_file`` / ``acl_file``: Mosquitto's files (logins required / topics restricted).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        plugins_config: dict[str, Any] | None = None,
        password_file: str | Path | None = None,
        acl_file: str | Path | None = None,
        nodelay: bool = True,
        workarounds: bool = True,
        ws_port: int | None = None,
    ) -> None:
        self.host = host
        #: MQTT over WebSockets for the browser driver station (None: no such listener).
        self.ws_port = ws_port
        self.port = port or free_port(host)
        self.password_file = Path(password_file) if password_file is not None else None
        self.acl_file = Path(acl_file) if acl_file is not None else None
        if plugins_config is None and (password_file is not None or acl_file is not None):
            plugins_config = {FILES_PLUGIN: {
                "password_file": str(self.password_file) if self.password_file else None,
                "acl_file": str(self.acl_file) if self.acl_file else None,
            }}
        self.plugins_config = plugins_config
        self.nodelay = nodelay
        self.workarounds = workarounds
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._broker is not None

    def config(self) -> dict[str, Any]:
        """amqtt configuration: one TCP listener, given plugins (files) or anonymous access."""
        plugins = self.plugins_config if self.plugins_config is not None else ANONYMOUS_PLUGINS
        listeners: dict[str, Any] = {
            "default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}
        if self.ws_port is not None:
            listeners["ws"] = {"type": "ws", "bind": f"{self.host}:{self.ws_port}"}
        return {"listeners": listeners, "plugins": dict(plugins)}

    async def start(self) -> None:
        """Listen; ``MQTTConnectionError`` (naming the address) if that fails."""
        if self._broker is not None:
            return
        quiet_amqtt()
        # Read the files here so that a bad one is one clear error, not a plugin traceback.
        if self.password_file is not None:
            PasswordFile(self.password_file)
        if self.acl_file is not None:
            AccessList.load(self.acl_file)
        broker_class: type[_CheckedBroker] = _NoDelayBroker if self.nodelay else _CheckedBroker
        if not self.workarounds:
            broker_class = _AsShipped
        broker = broker_class(self.config())
        try:
            with _no_amqtt_tracebacks():  # its failure is reported below, in one line
                await broker.start()
        except Exception as exc:
            reason = str(exc)
            if "address already in use" in reason.lower():
                reason = ("the address is already in use: is another MQTT broker (a system "
                          "Mosquitto?) or robot running? Pick another with --listen HOST:PORT, "
                          "or use that broker with --mqtt URL")
            also = (f" (its WebSocket listener wants port {self.ws_port} too: --ws-port)"
                    if self.ws_port is not None else "")
            raise MQTTConnectionError(
                f"embedded MQTT broker cannot listen on {self.host}:{self.port}: {reason}{also}",
                host=self.host, port=self.port,
            ) from None
        self._broker = broker
        log.info("embedded MQTT broker listening on %s", self.url)

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class EmbeddedBrokerThread:
    """The embedded broker on its own event loop in a daemon thread; ``start()``/``stop()``.

    For synchronous callers: tests, ``runtime up`` (whose services are other processes).
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, **kwargs: Any) -> None:
        self.broker = EmbeddedBroker(host, port, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    host = property(lambda self: self.broker.host)
    port = property(lambda self: self.broker.port)
    url = property(lambda self: self.broker.url)

    def start(self, timeout: float = 10.0) -> None:
        """Start the loop thread (once) and the broker in it; raises if it cannot listen."""
        if self._thread is None:
            ready = threading.Event()

            def run() -> None:
                loop = asyncio.new_event_loop()
                self._loop = loop
                asyncio.set_event_loop(loop)
                ready.set()
                loop.run_forever()
                loop.close()

            self._thread = threading.Thread(target=run, name="embedded-mqtt", daemon=True)
            self._thread.start()
            ready.wait()
        self._run(self.broker.start(), timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (the loop thread stays for a later ``start()``)."""
        if self._loop is not None:
            self._run(self.broker.stop(), timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the broker and end the loop thread."""
        self.stop(timeout)
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        self._loop = self._thread = None

    def _run(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> EmbeddedBrokerThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
