"""One asyncio MQTT connection per process, kept alive whatever the broker does.

Built on aiomqtt 2.x (asyncio integration of paho-mqtt, MQTT 3.1.1 so amqtt works too).
aiomqtt does not reconnect, restore subscriptions or route messages to callbacks; this module
adds exactly that:

- a supervisor task connects, and after any loss reconnects with exponential backoff (0.1 s
  doubling to 1 s) and re-subscribes every filter (waiting for the broker's SUBACK); a refused
  login is logged once as one clear line and retried;
- after every (re)connection the ``on_connected`` hooks run (each service re-publishes ALL its
  retained state there: the broker may have restarted and lost it), and only then is the
  service's retained ``online`` status published again;
- ``online`` means ready: a service connection publishes it only once the service called
  ``go_online()`` (after its subscriptions are acknowledged and its handlers serve), so a
  request sent the moment ``online`` is seen is answered. ``go_online()`` waits for the broker,
  saying "waiting for broker at <url>" while it is unreachable;
- every socket gets TCP_NODELAY (a request/response costs ~40 ms more without it);
- typed subscriptions (``subscribe_typed(filter, Model, callback)``) decode each payload once
  into the model (an empty payload is None, a retained message cleared or a last will); a bad
  payload is logged in one place, at most once per filter every 10 s with a count, and the
  callback never sees it;
- callbacks ``callback(topic, payload)`` may be sync or async, and can never kill the loop:
  sync callbacks run inline (keep them short), async ones run in order on one worker task per
  subscription (a slow subscription does not delay the others; at most 10,000 waiting), or
  each as its own task with ``concurrent=True`` (RPC handlers; at most 1,000 running at once:
  a flood beyond that is dropped and said, rate-limited, instead of growing without bound);
- with ``service=`` set, the last will marks ``service/<name>/status`` offline (retained, QoS 1)
  and a clean exit publishes offline itself.

A QoS 0 publish leaves in the loop turn it is made (``writes.PromptWriter``: aiomqtt's own
publish took several turns and a task first, ~0.5 ms on the gamepad -> motor path).

Publishing while disconnected: QoS 0 messages are dropped (like paho; input streams are resent
anyway) and ``publish`` returns False; QoS 1/2 messages wait for the reconnect, up to
``timeout`` (``MQTTConnectionError`` after that).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.matcher import MQTTMatcher
from pydantic import BaseModel

from runtime import __version__
from runtime.backoff import Backoff
from runtime.complaints import Complaints
from runtime.exception import MessageError, MQTTConnectionError
from runtime.messages import ServiceStatus, decode, encode
from runtime.remote.writes import PromptWriter
from runtime.tasks import TaskSet
from runtime.topics import Topics, check_name

log = logging.getLogger(__name__)

Callback = Callable[[str, bytes], Awaitable[None] | None]
#: An ``on_connected`` hook: called with no argument after every (re)connection.
ConnectedHook = Callable[[], Awaitable[None] | None]
M = TypeVar("M", bound=BaseModel)
#: A typed subscription's callback: ``callback(topic, model_or_None)``.
TypedCallback = Callable[[str, Any], Awaitable[None] | None]

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 1.0  # a returning broker is found within ~1 s
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
CALLBACK_QUEUE_LIMIT = 10_000
CONCURRENT_LIMIT = 1_000  # callbacks of one concurrent subscription running at once (RPCs)
WAITING_REPEAT = 30.0  # seconds between "still waiting for broker" lines


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and who we are: parsed from ``mqtt://[user:pass@]host:port``."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str, password_file: str | os.PathLike[str] | None = None) -> BrokerAddress:
        """Parse ``url``; ``password_file`` (first line) supplies or replaces the password."""
        text = url if "://" in url else f"mqtt://{url}"
        parts = urlsplit(text)
        problem = None
        if parts.scheme not in ("mqtt", "tcp"):
            problem = f"scheme {parts.scheme!r} is not supported"
        elif not parts.hostname:
            problem = "no host"
        elif parts.path not in ("", "/") or parts.query:
            problem = "unexpected path or query"
        try:
            port = parts.port or 1883
        except ValueError:
            problem, port = "bad port", 0
        if problem:
            raise MQTTConnectionError(
                f"invalid MQTT URL {_redact(url)!r}: {problem}; "
                "expected mqtt://[user:password@]host:port",
                url=_redact(url),
            )
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if password_file is not None:
            try:
                lines = Path(password_file).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise MQTTConnectionError(
                    f"cannot read MQTT password file {password_file}: {exc.strerror}",
                    path=str(password_file),
                ) from None
            password = lines[0] if lines else ""
        return cls(str(parts.hostname), port, username, password)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def check_filter(filter_: str) -> str:
    """An MQTT topic filter: ``+`` only as a whole level, ``#`` only as the whole last level."""
    levels = filter_.split("/")
    for i, level in enumerate(levels):
        if level in ("+", "#") and (level == "+" or i == len(levels) - 1):
            continue
        if "+" in level or "#" in level:
            break
    else:
        if filter_:
            return filter_
    raise MessageError(
        f"invalid topic filter {filter_!r}: '+' must be a whole level and '#' the whole last one",
        filter=filter_,
    )


def _os_reason(text: str) -> str:
    """``[Errno 111] Connection refused`` -> ``connection refused``."""
    if text.startswith("[Errno") and "] " in text:
        text = text.split("] ", 1)[1]
    return text[:1].lower() + text[1:] if text else "connection failed"


def _redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


class _Subscriber:
    """One callback on one filter, with its delivery policy."""

    def __init__(self, connection: Connection, filter_: str, callback: Callback, concurrent: bool,
                 key: Any = None):
        self.connection = connection
        self.filter = filter_
        self.callback = callback
        self.key = callback if key is None else key  # what unsubscribe() names
        self.is_async = _is_async(callback)
        self.concurrent = concurrent
        self.queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self.worker: asyncio.Task[None] | None = None
        self.running = 0  # concurrent callbacks not finished yet

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.running -= 1

    def deliver(self, topic: str, payload: bytes) -> None:
        """Hand one message to the callback without ever raising."""
        if not self.is_async:
            try:
                result = self.callback(topic, payload)
            except Exception:
                log.exception("callback %s failed on topic %s", _name(self.callback), topic)
                return
            if inspect.isawaitable(result):  # a plain function that returned a coroutine
                self.connection.spawn(self._await(topic, result), name=f"callback {topic}")
            return
        if self.concurrent:
            if self.running >= CONCURRENT_LIMIT:  # a flood: bounded, said (rate-limited)
                self.connection.complaints.report(
                    self.filter, f"{CONCURRENT_LIMIT} calls of {_name(self.callback)} still run "
                    f"for {self.filter}: dropping a message on {topic}")
                return
            self.running += 1
            task = self.connection.spawn(self._run(topic, payload), name=f"callback {topic}")
            task.add_done_callback(self._finished)
            return
        if self.queue is None:
            self.queue = asyncio.Queue(CALLBACK_QUEUE_LIMIT)
            self.worker = self.connection.spawn(self._work(), name=f"subscriber {self.filter}")
        try:
            self.queue.put_nowait((topic, payload))
        except asyncio.QueueFull:
            log.warning(
                "callback %s is %d messages behind on %s: dropping a message",
                _name(self.callback), CALLBACK_QUEUE_LIMIT, topic,
            )

    async def _run(self, topic: str, payload: bytes) -> None:
        await self._await(topic, self.callback(topic, payload))  # type: ignore[arg-type]

    async def _await(self, topic: str, awaitable: Awaitable[None]) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("callback %s failed on topic %s", _name(self.callback), topic)

    async def _work(self) -> None:
        assert self.queue is not None
        while True:
            topic, payload = await self.queue.get()
            await self._run(topic, payload)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()


async def _until_disconnected(client: aiomqtt.Client) -> None:
    """Wait until aiomqtt says the connection ended; raise ``MqttError`` like its message
    iterator does (the cause is the connection's error, if any)."""
    disconnected = client._disconnected
    # Its exception is read even when we stop waiting first (a close): no "never retrieved".
    disconnected.add_done_callback(_retrieve)
    await asyncio.wait((disconnected,))  # never cancels the future itself (aiomqtt owns it)
    cause = None if disconnected.cancelled() else disconnected.exception()
    raise aiomqtt.MqttError("Disconnected during message iteration") from cause


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _is_async(callback: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 (callable objects)
    )


def _name(callback: Callable[..., Any]) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)


class _Session:
    """One established connection: its client, and what has been announced on it."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.announced = asyncio.Event()  # hooks run, and online published if wanted then
        self.online = False  # online status acknowledged on this session


class Connection:
    """The process's MQTT connection: ``async with Connection(url, service="device") as conn``.

    Entering starts the supervisor and waits up to ``connect_timeout`` seconds for the first
    connection; it does not fail if the broker is not there yet (services keep retrying in the
    background). Callers that must know, such as command-line tools, use ``wait_connected``.
    """

    def __init__(
        self,
        url: str,
        *,
        robot: str = "robot",
        service: str | None = None,
        client_id: str | None = None,
        keepalive: int = 5,
        password_file: str | os.PathLike[str] | None = None,
        connect_timeout: float = 5.0,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.address = BrokerAddress.parse(url, password_file)
        self.url = _redact(url)
        self.topics = Topics(robot)
        self.robot = self.topics.robot
        self.service = check_name(service, "service name") if service is not None else None
        self.client_id = check_name(
            client_id or f"{self.service or 'client'}-{uuid.uuid4().hex[:10]}", "client id"
        )
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        #: (topic, payload) the broker publishes (retained, QoS 1) if this client vanishes;
        #: a service connection's will is its ``offline`` status instead
        self.will = will
        self.connected = asyncio.Event()
        self.started = time.time()
        self.last_error: MQTTConnectionError | None = None
        self.last_reason: str | None = None  # short form of last_error, for wait_connected
        self.dropped = 0  # QoS 0 messages dropped while disconnected
        self.failed_attempts = 0  # connection attempts that failed since the last success
        self._subscribers: dict[str, list[_Subscriber]] = {}
        self._qos: dict[str, int] = {}
        self._matcher = MQTTMatcher()
        self._client: aiomqtt.Client | None = None
        self._lost: asyncio.Future[None] | None = None
        self._writer: PromptWriter | None = None  #: QoS 0 publishes of the session in progress
        self._session_now: _Session | None = None
        self._hooks: list[ConnectedHook] = []
        self._online_wanted = False
        self._waiting_since: float | None = None  # "waiting for broker" said at (monotonic)
        self._waiting_said = 0.0
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks = TaskSet(log)
        self.complaints = Complaints(log)  # bad payloads of typed subscriptions
        self._attempt = asyncio.Event()  # set after every failed attempt
        self._refused = False
        self._established = False
        self._closing = False

    def __repr__(self) -> str:
        return f"Connection({self.url!r}, robot={self.robot!r}, client_id={self.client_id!r})"

    # -- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> Connection:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the supervisor and give the first connection ``connect_timeout`` seconds."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"mqtt {self}")
        if self.connect_timeout > 0:
            with contextlib.suppress(MQTTConnectionError):
                await self.wait_connected(self.connect_timeout)
            if not self.connected.is_set():
                self._say_waiting()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Return once connected; ``MQTTConnectionError`` on timeout or a refused login."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.connected.is_set():
            if self._refused and self.last_error is not None:
                raise self.last_error
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                reason = self.last_reason or "no answer"
                raise MQTTConnectionError(
                    f"cannot connect to MQTT broker {self.address} within {timeout:g} s: {reason}",
                    broker=str(self.address),
                )
            self._attempt.clear()
            waiters = [asyncio.ensure_future(self.connected.wait()),
                       asyncio.ensure_future(self._attempt.wait())]
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    def on_connected(self, hook: ConnectedHook) -> Callable[[], None]:
        """Call ``hook()`` after every (re)connection from now on; returns an unregister function.

        Hooks run once the subscriptions are restored (acknowledged), in the order they were
        added, before ``online`` is published again; messages keep flowing meanwhile, so a
        hook may publish (QoS 1 included) or even make an RPC call. Use it to re-publish
        retained state, which a restarted broker has lost: a client connecting afterwards
        must see what it saw before. Hooks must be idempotent (the first connection runs
        them too, if they were added before it); one that raises is logged and the others
        still run. A hook added while connected is not called for the current connection.
        """
        self._hooks.append(hook)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._hooks.remove(hook)

        return remove

    async def go_online(self) -> None:
        """Publish the service's retained ``online`` status: call it once the service serves.

        Before this call a service connection says nothing about itself (its last will says
        ``offline``), so ``online`` can only mean "subscriptions acknowledged, handlers in
        place". Waits for the broker as long as it takes, logging "waiting for broker at
        <url>" (again every 30 s) while it is unreachable; returns once the broker has
        acknowledged ``online``. After any reconnect ``online`` is re-published by itself,
        after the ``on_connected`` hooks.
        """
        if self.service is None:
            raise MQTTConnectionError("go_online() needs a connection made with service=...")
        self._online_wanted = True
        while not self._closing:
            session = self._session_now
            if session is None or not self.connected.is_set():
                self._say_waiting()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.connected.wait(), WAITING_REPEAT)
                continue
            await session.announced.wait()
            if session.online:
                return
            if await self._announce_online(session):
                return
        raise MQTTConnectionError("the connection was closed before the service went online")

    def _say_waiting(self) -> None:
        """"waiting for broker at <url>": once per outage, then again every 30 s."""
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = self._waiting_said = now
            log.warning("waiting for broker at %s (retrying in the background)", self.url)
        elif now - self._waiting_said >= WAITING_REPEAT:
            self._waiting_said = now
            log.warning("still waiting for broker at %s (%.0f s so far)", self.url,
                        now - self._waiting_since)

    async def _announce(self, session: _Session) -> None:
        """After a (re)connection: run the hooks, then publish ``online`` if the service is."""
        try:
            for hook in list(self._hooks):
                if session.lost.done():
                    return
                try:
                    result = hook()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("on_connected hook %s failed", _name(hook))
            if self._online_wanted and not session.lost.done():
                await self._announce_online(session)
        finally:
            session.announced.set()

    async def _announce_online(self, session: _Session) -> bool:
        """Publish ``online`` on ``session`` and wait for the ack; False if it was lost."""
        assert self.service is not None
        deadline = asyncio.get_running_loop().time() + 10.0
        topic = self.topics.status(self.service)
        data = encode(self._status("online"))
        if await self._publish_acked(session.client, session.lost, topic, data, 1, True,
                                     deadline):
            session.online = True
        return session.online

    async def close(self) -> None:
        """Publish ``offline`` (services), disconnect cleanly, stop every callback task."""
        if self._closing:
            return
        if self.service is not None and self.connected.is_set():
            try:
                await self.publish(
                    self.topics.status(self.service), self._status("offline"),
                    qos=1, retain=True, timeout=2.0,
                )
            except Exception as exc:
                log.warning("could not publish offline status: %s", exc)
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.stop()
        await self._tasks.cancel_all()

    def spawn(self, coro: Awaitable[Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by the connection (kept referenced, cancelled on close,
        logged if it fails)."""
        return self._tasks.spawn(coro, name=name)

    # -- publish / subscribe -----------------------------------------------------------------
    async def publish(
        self,
        topic: str,
        payload: bytes | bytearray | BaseModel | None = b"",
        qos: int = 0,
        retain: bool = False,
        *,
        timeout: float = 10.0,
    ) -> bool:
        """Publish; False if a QoS 0 message was dropped because we are disconnected."""
        data = b"" if payload is None else payload
        if isinstance(data, BaseModel):
            data = encode(data)
        if "+" in topic or "#" in topic or not topic:
            raise MessageError(f"cannot publish to {topic!r}: wildcards are for subscriptions")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            client, lost, writer = self._client, self._lost, self._writer
            if (client is not None and lost is not None and writer is not None
                    and self.connected.is_set()):
                if qos == 0:
                    if await writer.publish(topic, data, retain, timeout):
                        return True
                    log.debug("QoS 0 publish to %s dropped (connection lost or stuck)", topic)
                    self.dropped += 1
                    return False
                if await self._publish_acked(client, lost, topic, data, qos, retain, deadline):
                    return True
            elif qos == 0:
                self.dropped += 1
                log.debug("not connected: QoS 0 publish to %s dropped", topic)
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise MQTTConnectionError(
                    f"could not publish to {topic} within {timeout:g} s: not connected to "
                    f"MQTT broker {self.address}",
                    topic=topic,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), remaining)

    async def _publish_acked(
        self,
        client: aiomqtt.Client,
        lost: asyncio.Future[None],
        topic: str,
        data: bytes | bytearray,
        qos: int,
        retain: bool,
        deadline: float,
    ) -> bool:
        """QoS 1/2 publish that gives up (False) when the session ends before the ack."""
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.001)
        task = asyncio.ensure_future(client.publish(topic, data, qos, retain, timeout=remaining))
        try:
            await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            return False
        try:
            task.result()
        except aiomqtt.MqttError as exc:
            log.debug("QoS %d publish to %s failed (%s); retrying after reconnect", qos, topic, exc)
            return False
        return True

    async def subscribe(
        self, filter_: str, callback: Callback, qos: int = 0, *, concurrent: bool = False
    ) -> None:
        """Deliver ``filter_`` messages to ``callback(topic, payload)``, also after reconnects.

        ``concurrent=True`` runs each message's async callback as its own task (no ordering).
        """
        await self._subscribe(filter_, callback, qos, concurrent, None)

    async def subscribe_retained(self, filter_: str, callback: Callback) -> None:
        """``subscribe`` (QoS 0), returning once the retained messages of ``filter_`` have
        reached a sync ``callback`` (for a look at retained state: who is online, which devices).

        The broker sends them after its SUBACK; a second SUBSCRIBE of the filter is a barrier,
        since both brokers handle one client's packets in order and its SUBACK comes after
        them. (A fixed wait missed them on a loaded machine.) QoS 0, because Mosquitto keeps
        at most 20 QoS 1 messages in flight and sends the rest only as acknowledgements come
        back, after the barrier; a filter this connection already holds at QoS 1 has that
        limit. The second SUBSCRIBE sends the retained messages again: ``callback`` must take
        a message twice. Not connected: as ``subscribe``, without waiting.
        """
        await self.subscribe(filter_, callback, 0)
        await self._send_subscribe(filter_, "the barrier SUBSCRIBE is skipped")

    async def subscribe_typed(
        self, filter_: str, model: type[M], callback: TypedCallback, qos: int = 0, *,
        concurrent: bool = False,
    ) -> None:
        """Deliver ``filter_`` messages to ``callback(topic, message)``, decoded once.

        ``message`` is a ``model`` instance, or None for an empty payload (a retained message
        cleared, a last will). A payload that does not decode is logged here, at most once
        per filter every 10 s (with a count of the others), and never reaches ``callback``.
        ``unsubscribe(filter_, callback)`` takes the same callback.
        """
        await self._subscribe(filter_, self._typed(filter_, model, callback), qos, concurrent,
                              callback)

    def _typed(self, filter_: str, model: type[M], callback: TypedCallback) -> Callback:
        """``callback`` behind a decoder (sync or async like ``callback``)."""

        def decoded(topic: str, payload: bytes) -> tuple[bool, M | None]:
            if not payload:
                return True, None
            try:
                return True, decode(model, payload)
            except MessageError as exc:
                self.complaints.report(
                    filter_, f"ignoring a bad {model.__name__} message on {topic}: {exc.message}")
                return False, None

        if _is_async(callback):
            async def typed_async(topic: str, payload: bytes) -> None:
                ok, message = decoded(topic, payload)
                if ok:
                    await callback(topic, message)  # type: ignore[misc]

            typed_async.__qualname__ = _name(callback)
            return typed_async

        def typed(topic: str, payload: bytes) -> Awaitable[None] | None:
            ok, message = decoded(topic, payload)
            return callback(topic, message) if ok else None

        typed.__qualname__ = _name(callback)
        return typed

    async def _subscribe(self, filter_: str, callback: Callback, qos: int, concurrent: bool,
                         key: Any) -> None:
        check_filter(filter_)
        subscriber = _Subscriber(self, filter_, callback, concurrent, key)
        subscribers = self._subscribers.get(filter_)
        if subscribers is None:
            subscribers = self._subscribers[filter_] = []
            self._matcher[filter_] = subscribers
        subscribers.append(subscriber)
        self._qos[filter_] = max(qos, self._qos.get(filter_, 0))
        # A session in progress may have sent its SUBSCRIBE list already: subscribe now even
        # if it is not marked connected yet (subscribing twice is harmless).
        await self._send_subscribe(filter_, "done again after reconnect")

    async def _send_subscribe(self, filter_: str, otherwise: str) -> None:
        """SUBSCRIBE ``filter_`` at its QoS on the session in progress, if any (returns on
        SUBACK); a lost connection is only logged: the next session subscribes anyway."""
        client = self._client
        if client is not None:
            try:
                await client.subscribe(filter_, self._qos[filter_])
            except aiomqtt.MqttError as exc:
                log.debug("subscribe %s failed (%s); %s", filter_, exc, otherwise)

    async def unsubscribe(self, filter_: str,
                          callback: Callback | TypedCallback | None = None) -> None:
        """Stop delivering ``filter_`` to ``callback`` (all callbacks if None); a typed
        subscription's is the callback given to ``subscribe_typed``."""
        subscribers = self._subscribers.get(filter_, [])
        keep = [s for s in subscribers if callback is not None and s.key != callback]
        for subscriber in subscribers:
            if subscriber not in keep:
                subscriber.stop()
        if keep:
            subscribers[:] = keep
            return
        self._subscribers.pop(filter_, None)
        self._qos.pop(filter_, None)
        with contextlib.suppress(KeyError):
            del self._matcher[filter_]
        # As in ``_send_subscribe``: a session in progress may have sent its SUBSCRIBE list
        # (with this filter) before it is marked connected, so unsubscribe on it now too.
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(filter_)

    # -- the supervisor -----------------------------------------------------------------------
    def _status(self, state: Literal["online", "offline"]) -> ServiceStatus:
        return ServiceStatus(
            state=state, version=__version__, pid=os.getpid(), started=self.started
        )

    def _new_client(self) -> aiomqtt.Client:
        will = None if self.will is None else aiomqtt.Will(self.will[0], self.will[1], 1, True)
        if self.service is not None:
            will = aiomqtt.Will(
                self.topics.status(self.service), encode(self._status("offline")), 1, True
            )
        return aiomqtt.Client(
            self.address.host,
            self.address.port,
            username=self.address.username,
            password=self.address.password,
            identifier=self.client_id,
            will=will,
            clean_session=True,
            keepalive=self.keepalive,
            socket_options=NODELAY,
            timeout=10,
            logger=logging.getLogger("runtime.remote.paho"),
        )

    async def _supervise(self) -> None:
        """Connect, serve the session, and after any failure retry with backoff; never dies."""
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        while not self._closing:
            self._established = False
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                if self._established:
                    self._record_loss(exc)
                else:
                    self._record_failure(exc)
            except Exception:  # a bug or an unexpected socket error: log it, keep going
                log.exception("MQTT connection to %s failed unexpectedly", self.address)
            if self._closing:
                return
            if self._established:
                backoff.reset()
            await backoff.sleep()

    async def _session(self) -> None:
        """One connection: connect, restore state, dispatch until it drops."""
        client = self._new_client()
        async with client:
            # Messages go from paho's read callback straight to the subscribers, in the loop
            # turn that read them: aiomqtt's own path (a queue, then a task and asyncio.wait per
            # message in ``client.messages``) costs three more loop turns per message, on every
            # hop of the gamepad -> motor path. Set before any SUBSCRIBE, so nothing is queued.
            client._client.on_message = self._on_paho_message
            # Likewise a QoS 0 PUBLISH leaves in the turn it is made (``writes.PromptWriter``).
            writer = PromptWriter(client, asyncio.get_running_loop())
            session = _Session(client)
            self._client = client
            self._writer = writer
            self._lost = session.lost
            try:
                if self._qos:
                    await client.subscribe(list(self._qos.items()))  # returns on SUBACK
                if self.last_error is not None or self._waiting_since is not None:
                    log.info("connected to MQTT broker %s", self.address)
                self._waiting_since = None
                self.failed_attempts = 0
                self.last_error = self.last_reason = None
                self._refused = False
                self._established = True
                self._session_now = session
                self.connected.set()
                self.spawn(self._announce(session), name=f"announce {self}")
                await _until_disconnected(client)
            finally:
                self.connected.clear()
                self._client = None
                self._writer = None
                writer.close()
                self._session_now = None
                if not session.lost.done():
                    session.lost.set_result(None)
                session.announced.set()

    def _on_paho_message(self, client: Any, userdata: Any, message: Any) -> None:
        """paho's ``on_message``: dispatch now. Never raises (paho would end the session)."""
        try:
            self._dispatch(message.topic, message.payload)
        except Exception:
            log.exception("dispatching a message on %r failed", message.topic)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        for subscribers in self._matcher.iter_match(topic):
            for subscriber in subscribers:
                subscriber.deliver(topic, payload)

    def _record_loss(self, exc: aiomqtt.MqttError) -> None:
        """An established connection dropped: one warning, then reconnect."""
        if isinstance(exc, aiomqtt.MqttCodeError):  # paho's codes say nothing more useful
            reason = "the connection was closed"
        else:
            reason = _os_reason(str(exc.__cause__ or exc))
        self.last_error = MQTTConnectionError(
            f"lost connection to MQTT broker {self.address}: {reason}", broker=str(self.address)
        )
        self.last_reason = reason
        log.warning("%s; reconnecting", self.last_error.message)

    def _record_failure(self, exc: aiomqtt.MqttError) -> None:
        """Turn aiomqtt's error into one clear line, logged when it changes."""
        refused = isinstance(exc, aiomqtt.MqttCodeError) and "refused" in type(exc).__name__.lower()
        refused = refused or type(exc).__name__ == "MqttConnectError"
        if refused:
            reason = str(getattr(exc, "rc", "") or exc)
            reason = reason.lower() if reason else "login refused"
            who = f"user {self.address.username!r}" if self.address.username else "anonymous login"
            message = f"broker {self.address} refused {who}: {reason}"
        else:
            reason = _os_reason(str(exc))
            message = f"cannot reach MQTT broker {self.address}: {reason}"
        changed = self.last_error is None or self.last_error.message != message
        self.last_error = MQTTConnectionError(message, broker=str(self.address))
        self.last_reason = reason
        self._refused = refused
        self.failed_attempts += 1
        self._attempt.set()
        (log.warning if changed else log.debug)("%s (retrying)", message)
