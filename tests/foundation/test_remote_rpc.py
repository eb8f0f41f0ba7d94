"""RPC over both real brokers: every request gets exactly one reply, and the service survives."""

from __future__ import annotations

import asyncio

import cbor2
import pytest
from pydantic import BaseModel
from runtime.exception import OptionError, RPCError
from runtime.remote import Client, Connection, Handler, rpc

from tests.support.wait import wait_for_async


class Point(BaseModel):
    x: int
    y: int


class Calculator(Handler):
    """A small service exercising every kind of method."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    @rpc
    async def add(self, a: int, b: int = 1) -> int:
        """Async method with a default."""
        self.calls += 1
        return a + b

    @rpc
    def echo(self, *args, **kwargs):
        """Plain method (runs on the loop)."""
        return {"args": args, "kwargs": kwargs}

    @rpc(blocking=True)
    def shout(self, text: str) -> str:
        """Blocking method (runs in a thread)."""
        return text.upper()

    @rpc
    async def point(self) -> Point:
        return Point(x=1, y=2)

    @rpc
    async def refuse(self, option: str) -> None:
        raise OptionError(f"unknown option {option!r}", option=option, allowed=["rate"])

    @rpc
    async def crash(self) -> None:
        raise ZeroDivisionError("division by zero")

    @rpc
    async def unsendable(self) -> object:
        return object()

    @rpc
    async def heartbeat(self, uid: str, timeout: float = 1) -> float:
        """A remote argument named like Client.call's own ``timeout``."""
        return timeout

    @rpc
    async def wait(self) -> str:
        await self.release.wait()
        return "released"

    async def not_exposed(self) -> None:
        """No @rpc: not callable remotely."""


@pytest.fixture
async def service(mqtt_broker, robot_name):
    """The calculator served by its own connection."""
    handler = Calculator()
    async with Connection(mqtt_broker.url, robot=robot_name, service="calc") as connection:
        await connection.wait_connected(20)
        await handler.serve(connection)
        yield handler


@pytest.fixture
async def client_connection(mqtt_broker, robot_name):
    async with Connection(mqtt_broker.url, robot=robot_name) as connection:
        await connection.wait_connected(20)
        yield connection


@pytest.fixture
def client(client_connection):
    return Client(client_connection)


async def test_call_returns_the_result(service, client):
    assert await client.call("calc", "add", 2, b=3) == 5
    assert await client.call("calc", "add", 2) == 3
    assert await client.call("calc", "echo", 1, [2], k="v") == {
        "args": [1, [2]], "kwargs": {"k": "v"}}
    assert await client.call("calc", "shout", "go") == "GO"
    assert await client.call("calc", "point") == {"x": 1, "y": 2}


async def test_unknown_method_lists_the_available_ones(service, client):
    with pytest.raises(RPCError, match="calc has no method 'not_exposed'; available: add, "
                       "crash, echo, heartbeat, point, refuse, shout, unsendable, wait") as info:
        await client.call("calc", "not_exposed")
    assert info.value.remote_type == "RPCError"


async def test_wrong_arguments_name_the_method_and_its_signature(service, client):
    with pytest.raises(RPCError, match=r"wrong arguments for calc\.add\(a, b=1\): "
                       "missing a required argument: 'a'"):
        await client.call("calc", "add")
    with pytest.raises(RPCError, match="unexpected keyword argument 'c'"):
        await client.call("calc", "add", 1, c=2)
    with pytest.raises(RPCError, match="too many positional arguments"):
        await client.call("calc", "add", 1, 2, 3)
    assert service.calls == 0


async def test_handler_exceptions_come_back_and_the_service_lives_on(service, client):
    with pytest.raises(RPCError, match="unknown option 'speed'") as info:
        await client.call("calc", "refuse", "speed")
    assert info.value.remote_type == "OptionError"
    assert info.value.context == {"option": "speed", "allowed": ["rate"]}
    with pytest.raises(RPCError, match="division by zero") as info:
        await client.call("calc", "crash")
    assert info.value.remote_type == "ZeroDivisionError"
    with pytest.raises(RPCError, match="cannot be sent as CBOR"):
        await client.call("calc", "unsendable")
    assert await client.call("calc", "add", 1) == 2


async def test_a_slow_call_does_not_hold_up_others(service, client):
    slow = asyncio.ensure_future(client.call("calc", "wait", timeout=20))
    assert await client.call("calc", "add", 40, 2, timeout=20) == 42
    assert not slow.done()
    service.release.set()
    assert await slow == "released"


async def test_no_reply_times_out_with_a_hint(client):
    with pytest.raises(RPCError, match=r"no reply from ghost\.run within 0\.3 s: is the ghost "
                       "service running\\?"):
        await client.call("ghost", "run", timeout=0.3)


class ReplyRecorder:
    """Raw view of a reply topic: what a client that hand-writes requests would see."""

    def __init__(self) -> None:
        self.replies: list[dict] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.replies.append(cbor2.loads(payload))


async def test_bad_requests_each_get_exactly_one_reply(service, client, client_connection):
    topics = client_connection.topics
    reply_to = topics.reply("raw") + "/sub"
    recorder = ReplyRecorder()
    await client_connection.subscribe(topics.reply_filter("raw"), recorder, qos=1)
    rpc_topic = topics.rpc("calc", "add")
    requests = [
        # not CBOR at all: nobody to answer, only logged
        b"\xff\x00garbage",
        # CBOR but not a map
        cbor2.dumps([1, 2, 3]),
        # reply_to outside the reply tree: dropped (never publish elsewhere)
        cbor2.dumps({"id": "x", "reply_to": topics.match, "args": [1]}),
        # schema errors with a usable reply_to: answered
        cbor2.dumps({"id": "bad-args", "reply_to": reply_to, "args": "notalist"}),
        cbor2.dumps({"reply_to": reply_to, "args": [1]}),
        cbor2.dumps({"id": "ok", "reply_to": reply_to, "args": [1], "kwargs": {"b": 5}}),
    ]
    for payload in requests:
        await client_connection.publish(rpc_topic, payload, qos=1)
    await wait_for_async(lambda: len(recorder.replies) >= 3, timeout=20,
                         message=lambda: f"replies so far: {recorder.replies}")
    by_id = {reply.get("id"): reply for reply in recorder.replies}
    assert by_id["ok"] == {"id": "ok", "ok": True, "result": 6}
    assert by_id["bad-args"]["ok"] is False
    assert "args: Input should be a valid list" in by_id["bad-args"]["error"]["message"]
    assert by_id[None]["ok"] is False
    assert "id: Field required" in by_id[None]["error"]["message"]
    # exactly one reply each, and the service still answers
    assert await client.call("calc", "add", 1) == 2
    assert len(recorder.replies) == 3


async def test_request_passes_arguments_that_clash_with_call_options(service, client):
    assert await client.request("calc", "heartbeat", ["7"], {"timeout": 3}, timeout=20) == 3


async def test_a_handler_serves_once(service, client_connection):
    with pytest.raises(RPCError, match="already serves calc"):
        await service.serve(client_connection, "calc")


class Typed(Handler):
    """Methods whose annotations the RPC boundary enforces (strictly: no coercion)."""

    def __init__(self) -> None:
        self.reached: list[str] = []

    @rpc
    async def read(self, uid: str, params: list[str] | None = None) -> list[str]:
        self.reached.append("read")
        return params or []

    @rpc
    async def heartbeat(self, uid: str, heartbeat_id: int | None = None,
                        timeout: float = 1) -> float:
        self.reached.append("heartbeat")
        return timeout

    @rpc
    async def move(self, to: Point, *more: Point) -> int:
        self.reached.append("move")
        return to.x + sum(p.x for p in more)


@pytest.mark.parametrize(("method", "args", "kwargs", "expected"), [
    ("read", ["12", "duty_cycle_a"], {},
     "argument 'params' expects list[str] | None, got str 'duty_cycle_a'"),
    ("read", [12], {}, "argument 'uid' expects str, got int 12"),
    ("read", ["12", ["a", 3]], {}, "argument 'params' expects list[str] | None, got list"),
    ("heartbeat", ["12"], {"timeout": "2"}, "argument 'timeout' expects float, got str '2'"),
    ("heartbeat", ["12", True], {}, "argument 'heartbeat_id' expects int | None, got bool"),
    ("heartbeat", ["12", 1.5], {}, "argument 'heartbeat_id' expects int | None, got float"),
    ("move", [{"x": "1", "y": 2}], {}, "argument 'to' expects Point, got dict"),
    ("move", [{"x": 1, "y": 2}, 7], {}, "argument 'more[0]' expects Point, got int 7"),
])
async def test_wrong_argument_types_are_refused_before_the_method_runs(
    mqtt_broker, robot_name, client, method, args, kwargs, expected
):
    handler = Typed()
    async with Connection(mqtt_broker.url, robot=robot_name, service="typed",
                          connect_timeout=20) as connection:
        await handler.serve(connection)
        with pytest.raises(RPCError) as info:
            await client.request("typed", method, args, kwargs, timeout=20)
        assert expected in str(info.value)
        assert info.value.remote_type == "RPCError"
        assert info.value.context["argument"] in expected
        assert handler.reached == []  # nothing reached the handler
        # right types still work (an int is a float; a dict is a model)
        assert await client.request("typed", "heartbeat", ["12"], {"timeout": 2}) == 2
        assert await client.call("typed", "read", "12", ["a"]) == ["a"]
        assert await client.call("typed", "move", {"x": 1, "y": 2}, {"x": 3, "y": 0}) == 4
