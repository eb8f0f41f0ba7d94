"""Remote procedure calls over MQTT: ``Handler`` serves them, ``Client`` makes them.

A request ``{id, reply_to, args, kwargs}`` on ``rpc/<service>/<method>`` gets exactly one reply
``{id, ok: true, result}`` or ``{id, ok: false, error: {type, message, context}}`` on
``reply_to``, whatever was wrong with it: bad CBOR (answered when a ``reply_to`` can still be
read from it), an unknown method, arguments that do not fit the signature, an exception in the
method, a result CBOR cannot carry. Argument *types* are checked from the method's annotations
before the method runs (``runtime.remote.arguments``): a wrong one is an error naming the
argument, the expected type and what was sent. Only a request without any usable ``reply_to``
is merely logged. ``reply_to`` must lie under the robot's ``reply/`` tree, so a service can
never be made to publish anywhere else.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar, overload

import cbor2
from pydantic import BaseModel

from runtime.exception import MessageError, RPCError, RuntimeBaseException
from runtime.messages import RPCErrorInfo, RPCReply, RPCRequest, encode, loads, validate
from runtime.remote.arguments import ArgumentValidator, value_text
from runtime.remote.connection import Connection
from runtime.topics import check_name

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

RPC_QOS = 1
DROP_INTERVAL = 10.0  #: seconds between two "request dropped" lines for one method


# -- serving --------------------------------------------------------------------------------
@overload
def rpc(func: F) -> F: ...
@overload
def rpc(*, blocking: bool = False) -> Callable[[F], F]: ...
def rpc(func: Any = None, *, blocking: bool = False) -> Any:
    """Mark a ``Handler`` method as callable over RPC.

    Async methods run as tasks (a slow call does not hold up the next request). Plain methods
    run on the event loop and must be quick; ``@rpc(blocking=True)`` runs one in a thread
    instead (pylint, file I/O...).
    """

    def mark(method: F) -> F:
        method.__rpc__ = {"blocking": blocking}  # type: ignore[attr-defined]
        return method

    return mark(func) if func is not None else mark


class Handler:
    """Base class of a service's RPC interface: subclass, decorate methods with ``@rpc``.

    ``await handler.serve(connection)`` subscribes ``rpc/<service>/+`` (QoS 1) and returns;
    requests are then answered until the connection closes.
    """

    service_name: str | None = None  # default for serve(); else the connection's service

    def rpc_methods(self) -> dict[str, Callable[..., Any]]:
        """Name -> bound method of every ``@rpc`` method (subclasses included)."""
        methods = {}
        for name in dir(type(self)):
            if name.startswith("_"):
                continue
            attr = getattr(type(self), name, None)
            if callable(attr) and hasattr(attr, "__rpc__"):
                methods[name] = getattr(self, name)
        return methods

    async def serve(self, connection: Connection, service_name: str | None = None) -> None:
        """Answer ``rpc/<service_name>/<method>`` requests on ``connection``."""
        name = service_name or self.service_name or connection.service
        if name is None:
            raise RPCError("serve() needs a service name (argument, service_name or connection)")
        current = getattr(self, "_rpc_server", None)
        if current is not None:
            raise RPCError(f"this handler already serves {current.service}: one serve() only",
                           service=current.service)
        server = self._rpc_server = _Server(self, connection, check_name(name, "service name"))
        await connection.subscribe(
            connection.topics.rpc_filter(name), server.on_request, qos=RPC_QOS, concurrent=True
        )


def signature_text(name: str, method: Callable[..., Any]) -> str:
    """``name(a, b=None)`` for error messages (no annotations: shorter, clearer)."""
    params = []
    for param in inspect.signature(method).parameters.values():
        text = param.name
        if param.kind is param.VAR_POSITIONAL:
            text = f"*{text}"
        elif param.kind is param.VAR_KEYWORD:
            text = f"**{text}"
        if param.default is not param.empty:
            text += f"={param.default!r}"
        params.append(text)
    return f"{name}({', '.join(params)})"


class _Server:
    """Turns requests for one service into method calls and replies."""

    def __init__(self, handler: Handler, connection: Connection, service: str) -> None:
        self.handler = handler
        self.connection = connection
        self.service = service
        self.methods = handler.rpc_methods()
        self.signatures = {name: inspect.signature(m) for name, m in self.methods.items()}
        self.validators = {
            name: ArgumentValidator(f"{service}.{signature_text(name, m)}", m)
            for name, m in self.methods.items()
        }
        self.reply_root = connection.topics.reply_root
        self._last_drop: dict[str, float] = {}  # method -> when a drop was last logged
        self._drops: dict[str, int] = {}  # method -> drops not logged since

    async def on_request(self, topic: str, payload: bytes) -> None:
        try:
            method_name = self.connection.topics.parse(topic).method or ""
        except MessageError:  # not a valid method name: answered as an unknown method
            method_name = topic.rsplit("/", 1)[-1]
        where = f"{self.service}.{method_name}"
        try:
            raw = loads(payload)
        except MessageError as exc:
            self._dropped(where, f"no reply possible: {exc.message}")
            return
        reply_to = raw.get("reply_to") if isinstance(raw, dict) else None
        request_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(reply_to, str) or not reply_to.startswith(self.reply_root) or any(
            char in reply_to for char in "+#"
        ):
            shown = value_text(reply_to) if reply_to is not None else "None"
            self._dropped(where, f"reply_to {shown} is not a topic under {self.reply_root}")
            return
        if not isinstance(request_id, str | int):
            request_id = None
        try:
            request = validate(RPCRequest, raw)
            result = await self._call(method_name, request)
            reply = RPCReply(id=request.id, ok=True, result=_plain_result(result))
            data = _encode_reply(reply, where)
        except Exception as exc:
            data = encode(self._error_reply(request_id, where, exc))
        try:
            await self.connection.publish(reply_to, data, qos=RPC_QOS)
        except Exception as exc:
            log.warning("rpc %s: could not send the reply to %s: %s", where, reply_to, exc)

    def _dropped(self, where: str, why: str) -> None:
        """Say that a request got no reply: at most once per ``DROP_INTERVAL`` s per method,
        with the count since, so a client sending garbage in a loop cannot flood the log."""
        now = time.monotonic()
        if now - self._last_drop.get(where, -DROP_INTERVAL) < DROP_INTERVAL:
            self._drops[where] = self._drops.get(where, 0) + 1
            return
        count = self._drops.pop(where, 0)
        since = f" ({count} more dropped since the last report)" if count else ""
        self._last_drop[where] = now
        log.warning("rpc %s: request dropped: %s%s", where, why, since)

    async def _call(self, method_name: str, request: RPCRequest) -> Any:
        method = self.methods.get(method_name)
        if method is None:
            available = sorted(self.methods)
            raise RPCError(
                f"{self.service} has no method {method_name!r}; available: "
                f"{', '.join(available) or 'none'}",
                service=self.service, method=method_name, available=available,
            )
        try:
            bound = self.signatures[method_name].bind(*request.args, **request.kwargs)
        except TypeError as exc:
            raise RPCError(
                f"wrong arguments for {self.service}.{signature_text(method_name, method)}: {exc}",
                service=self.service, method=method_name,
            ) from None
        self.validators[method_name].check(bound)
        if inspect.iscoroutinefunction(method):
            return await method(*bound.args, **bound.kwargs)
        if getattr(method, "__rpc__", {}).get("blocking"):
            return await asyncio.to_thread(method, *bound.args, **bound.kwargs)
        result = method(*bound.args, **bound.kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _error_reply(self, request_id: Any, where: str, exc: Exception) -> RPCReply:
        if isinstance(exc, RuntimeBaseException):
            info = exc.to_dict()
            log.info("rpc %s failed: %s", where, exc)
        elif isinstance(exc, MessageError):  # pragma: no cover (MessageError is a Runtime error)
            info = exc.to_dict()
        else:
            info = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__,
                    "context": {}}
            log.error("rpc %s raised %s", where, type(exc).__name__, exc_info=exc)
        return RPCReply(id=request_id, ok=False, error=RPCErrorInfo.model_validate(info))


def _plain_result(value: Any) -> Any:
    """Results as CBOR-friendly data: models dumped, tuples and sets as lists."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {key: _plain_result(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain_result(item) for item in value]
    return value


def _encode_reply(reply: RPCReply, where: str) -> bytes:
    try:
        return cbor2.dumps(reply.to_wire())
    except Exception as exc:
        raise RPCError(
            f"result of {where} cannot be sent as CBOR: {exc}", result_type=type(reply.result)
        ) from None


# -- calling --------------------------------------------------------------------------------
ROLE_LOGINS = ("driver", "field")  #: broker logins whose executor calls carry their role
ROLE_SERVICES = ("executor",)  #: services that tell callers apart by role
class Client:
    """Makes calls: ``await Client(connection).call("executor", "set_mode", "teleop")``."""

    def __init__(self, connection: Connection, role: str | None = None) -> None:
        self.connection = connection
        # executor calls by a role login go to its own topic (as/<login>/rpc/...), the only one
        # the broker's ACL lets it write: the executor knows who calls from the topic
        username = connection.address.username
        self.role = role if role is not None else (
            username if username in ROLE_LOGINS else None)
        self.reply_to = connection.topics.reply(connection.client_id)
        self._prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._subscribed = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Subscribe to this client's replies (done by the first call otherwise)."""
        async with self._lock:
            if not self._subscribed:
                await self.connection.subscribe_typed(
                    self.connection.topics.reply_filter(self.connection.client_id),
                    RPCReply, self._on_reply, qos=RPC_QOS,
                )
                self._subscribed = True

    async def call(self, service: str, method: str, /, *args: Any, timeout: float = 5.0,
                   **kwargs: Any) -> Any:
        """Call ``service.method(*args, **kwargs)``; ``RPCError`` on a remote error or timeout.

        A remote keyword argument named ``timeout`` must go through ``request``.
        """
        return await self.request(service, method, args, kwargs, timeout=timeout)

    async def request(self, service: str, method: str, args: Any = (),
                      kwargs: dict[str, Any] | None = None, *, timeout: float = 5.0) -> Any:
        """Like ``call`` with explicit ``args`` / ``kwargs``."""
        if not self._subscribed:
            await self.start()
        topics = self.connection.topics
        topic = (topics.rpc_as(self.role, service, method)
                 if self.role is not None and service in ROLE_SERVICES
                 else topics.rpc(service, method))
        request_id = f"{self._prefix}-{next(self._ids)}"
        payload = encode(RPCRequest(
            id=request_id, reply_to=self.reply_to, args=list(args), kwargs=dict(kwargs or {})
        ))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            async with asyncio.timeout(timeout):
                await self.connection.publish(topic, payload, qos=RPC_QOS, timeout=timeout)
                return await future
        except TimeoutError:
            raise RPCError(
                f"no reply from {service}.{method} within {timeout:g} s: "
                f"is the {service} service running?",
                service=service, method=method,
            ) from None
        finally:
            self._pending.pop(request_id, None)

    def _on_reply(self, topic: str, reply: RPCReply | None) -> None:
        if reply is None:
            return
        future = self._pending.get(str(reply.id))
        if future is None or future.done():
            log.debug("reply %r on %s matches no pending call (late?)", reply.id, topic)
            return
        if reply.ok:
            future.set_result(reply.result)
            return
        assert reply.error is not None
        future.set_exception(remote_error(reply.error))


def remote_error(info: RPCErrorInfo) -> RPCError:
    """An ``RPCError`` carrying the remote error: its message and context, ``remote_type``."""
    error = RPCError(info.message, **{str(key): value for key, value in info.context.items()})
    error.remote_type = info.type  # type: ignore[attr-defined]
    return error


# -- synchronous helpers for command-line tools -------------------------------------------
def call_sync(
    url: str,
    service: str,
    method: str,
    args: Any = (),
    kwargs: dict[str, Any] | None = None,
    *,
    robot: str = "robot",
    timeout: float = 5.0,
    password_file: str | None = None,
) -> Any:
    """One call from synchronous code: connect, call, disconnect.

    Raises ``MQTTConnectionError`` when the broker cannot be reached within ``timeout`` and
    ``RPCError`` for a remote error or no reply.
    """

    async def run() -> Any:
        async with Connection(url, robot=robot, password_file=password_file,
                              connect_timeout=0) as connection:
            await connection.wait_connected(timeout)
            return await Client(connection).request(service, method, args, kwargs,
                                                    timeout=timeout)

    return asyncio.run(run())


def error_line(exc: BaseException) -> str:
    """One line for a user.

    A remote error shows its type, message and context
    (``ParameterError: value out of bounds (param='duty_cycle')``); a local one (timeout, no
    broker) only its message, which already names what failed.
    """
    remote_type = getattr(exc, "remote_type", None)
    if remote_type:
        return f"{remote_type}: {exc}"
    if isinstance(exc, RuntimeBaseException):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def run_sync(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: run an ``async def`` (CLI) function with ``asyncio.run``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(func(*args, **kwargs))

    return wrapper
