"""``Gateway``: PiE's Dawn and Shepherd on TCP 8101, translated to and from the MQTT contract.

The gateway is a client of the robot like any other: it calls the executor's ``set_mode``,
publishes driver input on ``input/gamepad/<i>`` / ``input/keyboard``, and reads
``device/+/info``, ``device/+/data``, ``log/student`` and ``match``. It never touches the
shared-memory buffers, so it runs wherever MQTT reaches (docs/gateway.md).

The rules of PiE's protocol (docs/gateway.md, "Behaviour clients rely on") are kept here:

- one Dawn and one Shepherd; a new connection with the same identity replaces the old one;
- the identity byte must come within ``identity_timeout`` (1 s);
- any disconnect sets the robot idle (a replaced link counts: the old link is gone); Dawn's
  also marks its gamepads and keyboard gone;
- while Shepherd (field control) is connected, Dawn may only stop: its AUTO/TELEOP is refused
  with a LOG line saying so; its IDLE is always obeyed;
- a malformed, oversized, truncated or unknown frame, or a stall mid-frame, closes that
  connection with one log line; the service and the robot carry on.

Device data is Dawn's alone: ``device/+/data`` is subscribed and DEVICE_DATA sent (25 Hz) only
while a Dawn link is connected, so an idle robot pays nothing for it (issue 14, idle CPU); on
Dawn's connect every known device's values are read again (``read`` on the device service),
since the data topic carries only changes and what was kept meanwhile is stale. Device infos,
``match`` and ``log/student`` stay subscribed all the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from google.protobuf.message import Message
from runtime.complaints import Complaints
from runtime.exception import RuntimeBaseException
from runtime.messages import (
    DeviceData,
    DeviceInfo,
    FieldPresence,
    GameState,
    LogRecord,
    Match,
    encode,
)
from runtime.remote import Client, Connection, Handler, rpc
from runtime.service.gateway import translate
from runtime.service.gateway.proto import pie_client_pb2 as pb
from runtime.service.gateway.wire import (
    CLIENT_MESSAGES,
    FrameError,
    Identity,
    MessageType,
    encode_frame,
    read_identity,
    read_message,
)
from runtime.tasks import TaskSet
from runtime.topics import GAMEPAD_COUNT

log = logging.getLogger(__name__)

DEFAULT_PORT = 8101
IDENTITY_TIMEOUT = 1.0  #: seconds to send the identity byte (PiE's rule)
FRAME_TIMEOUT = 2.0  #: seconds to finish a frame once it has started (slow-loris guard)
DATA_INTERVAL = 0.04  #: DEVICE_DATA to Dawn every 40 ms (25 Hz, as the C runtime)
MAX_UNSENT = 256 * 1024  #: bytes queued to a client that does not read before it is dropped
NAMES = {Identity.SHEPHERD: "Shepherd", Identity.DAWN: "Dawn"}
#: The executor's authority role each client acts in (docs/deployment.md, Authority): the
#: gateway sends their requests to ``as/<role>/rpc/executor/...``.
ROLES = {Identity.SHEPHERD: "field", Identity.DAWN: "driver"}

SetMode = Callable[..., Awaitable[Any]]
#: ``handler(link, message)`` for one message type (the message decoded as its model)
MessageHandler = Callable[["ClientLink", Any], Awaitable[None]]


@dataclass(eq=False)
class ClientLink:
    """One connected Dawn or Shepherd."""

    identity: Identity
    writer: asyncio.StreamWriter
    peer: str
    connected_at: float = field(default_factory=time.monotonic)
    connected_wall: float = field(default_factory=time.time)
    sent: int = 0
    received: int = 0

    @property
    def name(self) -> str:
        return NAMES[self.identity]

    def send(self, kind: MessageType, message: Message) -> None:
        """Queue a message; a client that stops reading is dropped, never buffered forever."""
        if self.writer.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() > MAX_UNSENT:
            log.warning("%s at %s does not read what the robot sends: closing the connection",
                        self.name, self.peer)
            self.close()
            return
        self.writer.write(encode_frame(kind, message))
        self.sent += 1

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


class Gateway(Handler):
    """The gateway service (see the module docstring). RPC service name: ``gateway``.

    ``Gateway(host, port)``; ``await gateway.start(connection)`` listens and subscribes;
    ``await gateway.stop()`` closes every link (which sets the robot idle). ``set_mode`` can be
    given to replace the executor call (an ``async`` callable with ``set_mode``'s arguments).
    """

    service_name = "gateway"

    def __init__(self, host: str = "0.0.0.0", port: int = DEFAULT_PORT, *,
                 identity_timeout: float = IDENTITY_TIMEOUT,
                 frame_timeout: float = FRAME_TIMEOUT,
                 data_interval: float = DATA_INTERVAL,
                 set_mode: SetMode | None = None) -> None:
        self.host = host
        self.port = port
        self.identity_timeout = identity_timeout
        self.frame_timeout = frame_timeout
        self.data_interval = data_interval
        self.links: dict[Identity, ClientLink] = {}
        self.devices: dict[str, tuple[DeviceInfo, dict[str, Any]]] = {}
        self.custom: dict[str, Any] = {}
        self.match: Match | None = None
        self._set_mode = set_mode
        self._connection: Connection | None = None
        self._client: Client | None = None
        self._role_clients: dict[str, Client] = {}
        #: field control's presence connection, while Shepherd is connected
        self._presence: Connection | None = None
        self._server: asyncio.Server | None = None
        self._tasks = TaskSet(log)
        self._links = TaskSet(log)
        self._gamepads_used: set[int] = set()
        self._complaints = Complaints(log, interval=5.0)
        self._game_state: GameState | None = None
        #: device data is followed (``device/+/data`` subscribed, the DEVICE_DATA sender
        #: running) while Dawn is connected; changed by ``_follow_dawn`` only, under the lock
        self._following = False
        self._follow_lock = asyncio.Lock()
        self._sender: asyncio.Task[Any] | None = None
        #: counts follow/unfollow changes and reconnects while following: a ``read`` answer
        #: from an earlier one is dropped
        self._data_epoch = 0
        self._unhook: Callable[[], None] | None = None  #: removes the ``_reconnected`` hook
        #: the latest set_mode request not yet sent (link, mode, kwargs), its waiters, the
        #: task sending them (see ``_change_mode``)
        self._mode_wanted: tuple[ClientLink | None, str, dict[str, Any]] | None = None
        self._mode_waiters: list[asyncio.Future[None]] = []
        self._mode_worker: asyncio.Task[Any] | None = None
        #: what each message type from a client does (types without one are ignored)
        self._handlers: dict[MessageType, MessageHandler] = {
            MessageType.RUN_MODE: self._on_run_mode,
            MessageType.START_POS: self._on_start_pos,
            MessageType.INPUTS: self._on_inputs,
            MessageType.GAME_STATE: self._on_game_state,
            MessageType.TIME_STAMPS: self._on_time_stamps,
        }

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, connection: Connection) -> None:
        """Subscribe to what the clients need, serve RPC, then listen on ``host:port``.

        Device data is subscribed later, while Dawn is connected (``_follow_dawn``)."""
        self._connection = connection
        self._client = Client(connection)
        self._role_clients = {role: Client(connection, role=role) for role in ROLES.values()}
        for client in (self._client, *self._role_clients.values()):
            await client.start()
        topics = connection.topics
        await connection.subscribe_typed(topics.any_device_info, DeviceInfo,
                                         self._on_device_info, qos=1)
        await connection.subscribe_typed(topics.log("student"), LogRecord, self._on_student_log)
        await connection.subscribe_typed(topics.match, Match, self._on_match, qos=1)
        await self.serve(connection)
        self._unhook = connection.on_connected(self._reconnected)
        self._server = await asyncio.start_server(self._on_client, self.host, self.port,
                                                  reuse_address=True)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        log.info("gateway listening for Dawn and Shepherd on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and close every link (each close sets the robot idle)."""
        if self._server is not None:
            self._server.close()
        for link in list(self.links.values()):
            link.close()
        with contextlib.suppress(TimeoutError):  # each closed link sets the robot idle
            async with asyncio.timeout(1.0):
                await asyncio.gather(*self._links, return_exceptions=True)
        await self._links.cancel_all()
        worker = self._mode_worker
        if worker is not None and not worker.done():  # the disconnects' idle is delivered
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(worker), 3.0)
        if self._unhook is not None:
            self._unhook()
        await self._tasks.cancel_all()
        self._sender = None
        if self._following and self._connection is not None:  # a follow change was cancelled
            self._following = False
            await self._connection.unsubscribe(self._connection.topics.any_device_data,
                                               self._on_device_data)
        if self._presence is not None:  # a link that did not finish closing in time
            await self._field_presence(False)
        if self._server is not None:
            await self._server.wait_closed()

    # -- RPC ----------------------------------------------------------------------------------
    @rpc
    def clients(self) -> dict[str, Any]:
        """Who is connected: ``{"dawn": {peer, since, sent, received} | None, "shepherd": ...}``."""
        result: dict[str, Any] = {}
        for identity in Identity:
            link = self.links.get(identity)
            result[NAMES[identity].lower()] = None if link is None else {
                "peer": link.peer, "since": link.connected_wall,
                "sent": link.sent, "received": link.received,
            }
        return result

    # -- TCP clients --------------------------------------------------------------------------
    async def _on_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.set_name("gateway link")
            self._links.add(task)
        peer = _peer(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            identity = await read_identity(reader, self.identity_timeout)
        except FrameError as exc:
            log.warning("client at %s: %s; connection closed", peer, exc.message)
            writer.close()
            return
        link = ClientLink(identity, writer, peer)
        old = self.links.get(identity)
        self.links[identity] = link
        if old is not None:
            log.info("%s connected again from %s: the link from %s is replaced",
                     link.name, peer, old.peer)
            old.close()
        else:
            log.info("%s connected from %s", link.name, peer)
        if identity is Identity.SHEPHERD:
            await self._field_presence(True)
        else:
            self._dawn_changed()
        try:
            await self._serve_link(link, reader)
        finally:
            link.close()
            if self.links.get(identity) is link:
                del self.links[identity]
            await self._on_disconnect(link)

    async def _serve_link(self, link: ClientLink, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                item = await read_message(reader, self.frame_timeout, link.identity)
            except FrameError as exc:
                log.warning("%s at %s sent a bad frame: %s; connection closed",
                            link.name, link.peer, exc.message)
                return
            except (ConnectionError, OSError):
                return
            if item is None:
                return
            link.received += 1
            kind, message = item
            try:
                await self._handle(link, kind, message)
            except Exception:
                log.exception("gateway bug handling %s from %s", kind.name, link.name)

    async def _on_disconnect(self, link: ClientLink) -> None:
        log.info("%s at %s disconnected: robot set to idle", link.name, link.peer)
        if link.identity is Identity.DAWN:
            self._dawn_changed()  # the last Dawn gone (not replaced): device data stops
            await self._inputs_gone()
        elif Identity.SHEPHERD not in self.links:  # not replaced: field control has left
            await self._field_presence(False)
        await self._change_mode(None, "idle", role=ROLES[link.identity])

    async def _handle(self, link: ClientLink, kind: MessageType, message: Message) -> None:
        """One client message to its handler in :attr:`_handlers` (one per message type)."""
        handler = self._handlers.get(kind)
        if handler is not None:
            # read_message decoded it with the model CLIENT_MESSAGES names for its type
            assert isinstance(message, CLIENT_MESSAGES[kind][0])
            await handler(link, message)

    async def _on_time_stamps(self, link: ClientLink, message: pb.TimeStamps) -> None:
        echo = pb.TimeStamps(dawn_timestamp=message.dawn_timestamp,
                             runtime_timestamp=int(time.time() * 1000))
        link.send(MessageType.TIME_STAMPS, echo)

    async def _on_run_mode(self, link: ClientLink, message: pb.RunMode) -> None:
        mode = translate.mode_name(message)
        if mode is None:
            self._tell(link, f"unknown run mode {message.mode}: ignored")
            return
        if (link.identity is Identity.DAWN and mode != "idle"
                and Identity.SHEPHERD in self.links):
            self._tell(link, f"{mode} refused: field control (Shepherd) is connected, so only "
                             "it starts autonomous and teleop; IDLE from Dawn always works")
            return
        if link.identity is Identity.SHEPHERD and mode != "idle":
            # field control starting a match is the explicit clear of a latched estop
            await self._change_mode(link, mode, clear_estop=True)
            return
        await self._change_mode(link, mode)

    async def _on_start_pos(self, link: ClientLink, message: pb.StartPos) -> None:
        position = translate.start_pos_name(message)
        if position is None:
            self._tell(link, f"unknown start position {message.pos}: ignored")
            return
        if self.match is not None and self.match.start_pos == position:
            return
        mode = self.match.mode if self.match is not None else "idle"
        await self._change_mode(link, mode, start_pos=position)

    async def _on_inputs(self, link: ClientLink, message: pb.UserInputs) -> None:
        if link.identity is not Identity.DAWN:
            self._complain(f"{link.name} sent INPUTS (only Dawn drives): ignored")
            return
        assert self._connection is not None
        update = translate.inputs_update(message, time.time())
        for problem in update.problems:
            self._complain(f"Dawn at {link.peer}: {problem}")
        topics = self._connection.topics
        for index, payload in update.gamepads.items():
            self._gamepads_used.add(index)
            await self._connection.publish(topics.gamepad(index),
                                           b"" if payload is None else encode(payload))
        if update.has_keyboard:
            keyboard = update.keyboard
            await self._connection.publish(topics.keyboard,
                                           b"" if keyboard is None else encode(keyboard))

    async def _on_game_state(self, link: ClientLink, message: pb.GameState) -> None:
        if link.identity is not Identity.SHEPHERD:
            self._complain(f"{link.name} sent GAME_STATE (only Shepherd does): ignored")
            return
        assert self._connection is not None
        state = translate.game_state_name(message)
        self._game_state = GameState(state=state, ts=time.time())
        await self._publish_game_state()
        log.info("game state from Shepherd: %s", state)

    async def _publish_game_state(self) -> None:
        assert self._connection is not None
        if self._game_state is not None:
            await self._connection.publish(self._connection.topics.game_state,
                                           encode(self._game_state), qos=1, retain=True)

    async def _field_presence(self, present: bool) -> None:
        """Tell the executor whether field control is here (retained ``field/presence``).

        Published on a connection of its own whose last will says ``offline``, so a gateway
        that dies with Shepherd connected does not leave drivers locked out for good (on
        Mosquitto; amqtt sends no will for a half-open connection, see docs/gateway.md)."""
        main = self._connection
        if main is None:
            return
        topic = main.topics.field_presence
        try:
            if present:
                if self._presence is None:
                    offline = encode(FieldPresence(state="offline", ts=time.time()))
                    self._presence = Connection(_url(main), robot=main.robot,
                                                client_id=f"{main.client_id}-field",
                                                will=(topic, offline), connect_timeout=2.0)
                    await self._presence.start()
                await self._presence.publish(
                    topic, encode(FieldPresence(state="online", ts=time.time())), qos=1,
                    retain=True, timeout=2.0)
            elif self._presence is not None:
                presence, self._presence = self._presence, None
                await presence.publish(
                    topic, encode(FieldPresence(state="offline", ts=time.time())), qos=1,
                    retain=True, timeout=2.0)
                await presence.close()
        except RuntimeBaseException as exc:
            log.warning("field control presence not published: %s", exc.message)

    async def _inputs_gone(self) -> None:
        """Dawn left: every input it drove is marked gone (empty payload, as a last will)."""
        if self._connection is None:
            return
        topics = self._connection.topics
        for index in range(GAMEPAD_COUNT):
            await self._connection.publish(topics.gamepad(index), b"")
        await self._connection.publish(topics.keyboard, b"")
        self._gamepads_used.clear()

    async def _change_mode(self, link: ClientLink | None, mode: str, *, role: str | None = None,
                           **kwargs: Any) -> None:
        """Ask the executor for ``mode``; returns once a call made after this request is done.

        Calls are serialised and coalesced: at most one ``set_mode`` is in flight and the
        latest request replaces any still waiting (a stop asked after a start wins). A storm
        of connections (each disconnect asks for idle) is then a handful of calls, not one
        per connection all at once."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._mode_waiters.append(done)
        if role is None:
            role = ROLES[link.identity] if link is not None else "field"
        self._mode_wanted = (link, mode, {**kwargs, "role": role})
        if self._mode_worker is None or self._mode_worker.done():
            self._mode_worker = self._tasks.spawn(self._send_modes(), name="gateway set_mode")
        await asyncio.shield(done)

    async def _send_modes(self) -> None:
        """The one task that calls ``set_mode``: the latest request, until none is left."""
        try:
            while self._mode_wanted is not None:
                (link, mode, kwargs), self._mode_wanted = self._mode_wanted, None
                waiters, self._mode_waiters = self._mode_waiters, []
                try:
                    await self._call_set_mode(link, mode, **kwargs)
                finally:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            for waiter in self._mode_waiters:  # cancelled (the gateway stops): nobody waits
                if not waiter.done():
                    waiter.set_result(None)

    async def _call_set_mode(self, link: ClientLink | None, mode: str, *, role: str,
                             **kwargs: Any) -> None:
        try:
            if self._set_mode is not None:
                await self._set_mode(mode, **kwargs)
            else:
                client = self._role_clients[role]
                await client.call("executor", "set_mode", mode, timeout=2.0, **kwargs)
        except RuntimeBaseException as exc:
            text = f"set_mode {mode} failed: {exc.message}"
            log.warning("%s (asked by %s)", text, link.name if link else "the gateway")
            if link is not None:
                self._tell(link, text)
        except Exception as exc:  # the robot must not lose the gateway over one call
            log.warning("set_mode %s failed: %s", mode, exc)

    def _tell(self, link: ClientLink, text: str) -> None:
        """A line for the client (Dawn shows LOG lines; Shepherd only gets the log line)."""
        log.info("to %s: %s", link.name, text)
        if link.identity is Identity.DAWN:
            for message in translate.log_frames([f"[gateway] {text}"]):
                link.send(MessageType.LOG, message)

    def _complain(self, text: str) -> None:
        self._complaints.report(text, text)

    # -- device data, while Dawn is connected -------------------------------------------------
    def _dawn_changed(self) -> None:
        """A Dawn link came or went: follow device data or stop, in the background (a SUBACK
        is not worth delaying a link's messages for)."""
        self._tasks.spawn(self._follow_dawn(), name="gateway follow Dawn")

    async def _follow_dawn(self) -> None:
        """Make device data follow ``self.links``: subscribed, values read again and the
        DEVICE_DATA sender running while a Dawn is connected; nothing of it otherwise.

        Runs under a lock and compares with what is (not with what happened): a Dawn that
        replaces another, or connects again before its leaving was handled, changes nothing.
        A reconnect of the MQTT connection re-subscribes what is subscribed then."""
        assert self._connection is not None
        connection = self._connection
        filter_ = connection.topics.any_device_data
        async with self._follow_lock:
            wanted = Identity.DAWN in self.links
            if wanted == self._following:
                return
            self._following = wanted
            self._data_epoch += 1
            if not wanted:
                sender, self._sender = self._sender, None
                if sender is not None:
                    sender.cancel()
                await connection.unsubscribe(filter_, self._on_device_data)
                log.debug("no Dawn: device data no longer followed")
                return
            # Kept since the last Dawn left, the values are stale: forget them before the
            # first data message can arrive, then read them all; a data message that comes
            # before the read's answer is newer and wins (``_read_all``).
            self._sender = self._tasks.spawn(self._send_device_data(),
                                             name="gateway device data")
            self._forget_values()
            await connection.subscribe_typed(filter_, DeviceData, self._on_device_data)
            self._read_values()
            log.debug("Dawn connected: device data followed")

    async def _reconnected(self) -> None:
        """``on_connected``: the MQTT connection is back.

        The game state is published again (a restarted broker lost its retained messages).
        While device data is followed, every value is read again: a ``read`` asked while the
        broker was away (Dawn connected during a broker restart) got no answer, and changes
        published meanwhile were lost, so values that do not change again (an encoder at rest)
        would never show or stay stale. (In a task: a follow change holds the lock across a
        subscribe, which may wait for this reconnection, whose hooks are running now.)"""
        await self._publish_game_state()
        if self._following:
            self._tasks.spawn(self._read_again(), name="gateway read again")

    async def _read_again(self) -> None:
        async with self._follow_lock:
            if not self._following:
                return
            self._data_epoch += 1  # answers to reads asked before the outage are dropped
            self._forget_values()
            self._read_values()

    def _forget_values(self) -> None:
        """Drop every kept value (they are stale: read again with ``_read_values``)."""
        for _, values in self.devices.values():
            values.clear()

    def _read_values(self) -> None:
        """Ask the device service for every known device's values (``_read_all``, one task
        each, tagged with the current ``_data_epoch``)."""
        for uid in self.devices:
            self._tasks.spawn(self._read_all(uid, self._data_epoch), name=f"gateway read {uid}")

    # -- MQTT side ----------------------------------------------------------------------------
    def _on_device_info(self, topic: str, info: DeviceInfo | None) -> None:
        assert self._connection is not None
        uid = self._connection.topics.parse(topic).uid
        if uid is None:
            return
        if info is None:
            self.devices.pop(uid, None)
            return
        known = uid in self.devices
        values = self.devices.get(uid, (info, {}))[1]
        self.devices[uid] = (info, values)
        if not known and self._following:  # else read when Dawn connects (_follow_dawn)
            self._tasks.spawn(self._read_all(uid, self._data_epoch), name=f"gateway read {uid}")

    async def _read_all(self, uid: str, epoch: int) -> None:
        """A device's current values, for a new device or when Dawn connects:
        ``device/<uid>/data`` only carries changes, and Dawn shows every param, so ask the
        device service once (``read``). An answer that comes after device data stopped (or
        stopped and started again) being followed is dropped: it may be older than what a
        later read says (``epoch``: ``_data_epoch`` when the read was asked for)."""
        assert self._client is not None
        try:
            values = await self._client.call("device", "read", uid, timeout=3.0)
        except RuntimeBaseException as exc:
            log.info("no first values of device %s (%s): they show once they change",
                     uid, exc.message)
            return
        entry = self.devices.get(uid)
        if entry is not None and isinstance(values, dict) and epoch == self._data_epoch:
            for name, value in values.items():
                entry[1].setdefault(name, value)  # a newer data message wins

    def _on_device_data(self, topic: str, data: DeviceData | None) -> None:
        assert self._connection is not None
        entry = self.devices.get(self._connection.topics.parse(topic).uid or "")
        if entry is not None and data is not None:
            entry[1].update(data.params)

    def _on_match(self, topic: str, match: Match | None) -> None:
        self.match = match

    def _on_student_log(self, topic: str, record: LogRecord | None) -> None:
        if record is None:
            return
        entry = translate.custom_entry(record)
        if entry is not None:
            self._log_value(*entry)
            return
        dawn = self.links.get(Identity.DAWN)
        if dawn is not None:
            for text in translate.log_frames(translate.record_lines(record)):
                dawn.send(MessageType.LOG, text)

    def _log_value(self, key: str, value: Any) -> None:
        """A ``Robot.log`` entry for CustomData: a known key is updated; a new one is kept
        only while there is room (``MAX_CUSTOM_ENTRIES``) and its key is short enough, so
        DEVICE_DATA always fits its frame whatever a student's loop logs."""
        if key in self.custom:
            self.custom[key] = value
        elif len(key) > translate.MAX_CUSTOM_KEY:
            self._complain(f"Robot.log key of {len(key)} characters not shown to Dawn (at most "
                           f"{translate.MAX_CUSTOM_KEY})")
        elif len(self.custom) >= translate.MAX_CUSTOM_ENTRIES:
            self._complain(f"Robot.log: more than {translate.MAX_CUSTOM_ENTRIES} keys; new keys "
                           "are not shown to Dawn")
        else:
            self.custom[key] = value

    async def _send_device_data(self) -> None:
        """DEVICE_DATA to Dawn every ``data_interval`` seconds while it is connected."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.data_interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() - next_at > self.data_interval:
                next_at = loop.time()  # fell behind (paused): no burst of catch-up frames
            dawn = self.links.get(Identity.DAWN)
            if dawn is None:
                continue
            time_ms = int((time.monotonic() - dawn.connected_at) * 1000)
            try:
                message = translate.dev_data(self.devices.values(), self.custom, time_ms)
                dawn.send(MessageType.DEVICE_DATA, message)
            except Exception as exc:  # said once every few seconds, not 25 times a second
                self._complain(f"gateway bug building DEVICE_DATA: {type(exc).__name__}: {exc}")


def _url(connection: Connection) -> str:
    """The broker URL of ``connection``, with its login (for a second connection)."""
    address = connection.address
    login = ""
    if address.username:
        login = quote(address.username, safe="")
        if address.password:
            login += ":" + quote(address.password, safe="")
        login += "@"
    return f"mqtt://{login}{address.host}:{address.port}"


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
