"""The MQTT topic tree of one robot: ``runtime/<robot>/...`` (design.md's MQTT table).

Every topic string in the code base is built here, so a typo cannot create a topic nobody
listens to, and every name that goes into a topic (robot, service, uid, client id...) is checked
to hold no ``/`` and no wildcard. ``Topics.parse`` is the inverse: it tells what a received topic
is (kind plus its fields) and refuses topics outside the robot's tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from runtime.exception import MessageError
from runtime.protocol.uid import Uid, UidError

ROOT = "runtime"
GAMEPAD_COUNT = 4

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

TopicKind = Literal[
    "status", "device_info", "device_data", "gamepad", "keyboard", "match", "game_state",
    "field_presence", "log", "rpc", "reply"
]


def check_name(value: object, what: str) -> str:
    """``value`` as a topic level: letters, digits, ``_ . -`` only (no ``/``, ``+``, ``#``)."""
    text = str(value)
    if not _NAME.match(text):
        raise MessageError(
            f"invalid {what} {text!r}: use letters, digits, '_', '.' or '-' "
            "(no '/', '+', '#' or spaces)",
            **{what.replace(" ", "_"): text},
        )
    return text


def check_uid(uid: object) -> str:
    """A device uid as it appears in topics: its canonical decimal form (``runtime.protocol.uid``
    is the one parser: ``"0012"`` and ``12`` give ``"12"``, ``2**88`` is refused)."""
    try:
        return str(Uid.parse(uid))
    except UidError as exc:
        raise MessageError(f"invalid device uid: {exc.message}", uid=str(uid)) from None


def check_index(index: object) -> int:
    """A gamepad index: 0..3."""
    if isinstance(index, bool) or not isinstance(index, int | str):
        raise MessageError(f"invalid gamepad index {index!r}: expected 0..{GAMEPAD_COUNT - 1}")
    text = str(index)
    if not (text.isascii() and text.isdigit()) or int(text) >= GAMEPAD_COUNT:
        raise MessageError(
            f"invalid gamepad index {text!r}: expected 0..{GAMEPAD_COUNT - 1}", index=text
        )
    return int(text)


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """What a topic of the robot's tree is: ``kind`` plus the fields its kind has."""

    kind: TopicKind
    robot: str
    service: str | None = None
    uid: str | None = None
    index: int | None = None
    source: str | None = None
    method: str | None = None
    client_id: str | None = None
    rest: str | None = None  # reply subtopic below reply/<client_id>/, if any
    login: str | None = None  # as/<login>/rpc/...: the broker login a request acts as


class Topics:
    """Builders and parser for ``runtime/<robot>/...``.

    Builders check their arguments (``MessageError`` on a wildcard, ``/`` or a bad uid/index);
    the ``any_*`` properties are the wildcard filters for subscribing to a whole family.
    """

    __slots__ = ("_rpc_cache", "prefix", "robot")

    def __init__(self, robot: str = "robot") -> None:
        self.robot = check_name(robot, "robot name")
        self.prefix = f"{ROOT}/{self.robot}/"
        self._rpc_cache: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"Topics({self.robot!r})"

    # -- builders ---------------------------------------------------------------------------
    def status(self, service: str) -> str:
        """Retained ``{state, version, pid, started}`` of a service."""
        return f"{self.prefix}service/{check_name(service, 'service name')}/status"

    def device_info(self, uid: object) -> str:
        """Retained description of a connected device (empty payload once unplugged)."""
        return f"{self.prefix}device/{check_uid(uid)}/info"

    def device_data(self, uid: object) -> str:
        """Changed parameter values of a device, for clients."""
        return f"{self.prefix}device/{check_uid(uid)}/data"

    def gamepad(self, index: int) -> str:
        """Driver station input of gamepad ``index`` (0..3)."""
        return f"{self.prefix}input/gamepad/{check_index(index)}"

    @property
    def keyboard(self) -> str:
        """Driver station keyboard input."""
        return f"{self.prefix}input/keyboard"

    @property
    def match(self) -> str:
        """Retained match state (mode, alliance, start position)."""
        return f"{self.prefix}match"

    @property
    def game_state(self) -> str:
        """Retained game state from field control (``Match.game_state`` in student code)."""
        return f"{self.prefix}field/game_state"

    def log(self, source: str) -> str:
        """Log records of a service, or ``student`` for student output."""
        return f"{self.prefix}log/{check_name(source, 'log source')}"

    def rpc_as(self, login: str, service: str, method: str) -> str:
        """Requests for ``service.method`` by a client acting as its broker ``login`` (the
        ACL lets only that login write here; see ``docs/deployment.md``, Authority)."""
        return f"{self.prefix}as/{check_name(login, 'login')}/" + self.rpc(service, method)[
            len(self.prefix):]

    def rpc_as_filter(self, service: str) -> str:
        """Every role request for ``service``."""
        return f"{self.prefix}as/+/rpc/{check_name(service, 'service name')}/+"

    @property
    def field_presence(self) -> str:
        """Retained ``{state: "online"/"offline", ts}`` of field control (last will offline)."""
        return f"{self.prefix}field/presence"

    def rpc(self, service: str, method: str) -> str:
        """Requests for ``service.method``."""
        key = (service, method)
        topic = self._rpc_cache.get(key)
        if topic is None:
            topic = (
                f"{self.prefix}rpc/{check_name(service, 'service name')}/"
                f"{check_name(method, 'method name')}"
            )
            if len(self._rpc_cache) < 1024:
                self._rpc_cache[key] = topic
        return topic

    def rpc_filter(self, service: str) -> str:
        """Every method of ``service``: ``rpc/<service>/+``."""
        return f"{self.prefix}rpc/{check_name(service, 'service name')}/+"

    def reply(self, client_id: str) -> str:
        """Where a client receives its replies; replies go to this topic or one below it."""
        return f"{self.prefix}reply/{check_name(client_id, 'client id')}"

    def reply_filter(self, client_id: str) -> str:
        """The client's reply topic and everything below it (``reply/<client_id>/#``)."""
        return f"{self.reply(client_id)}/#"

    @property
    def reply_root(self) -> str:
        """Prefix every valid ``reply_to`` starts with (services refuse others)."""
        return f"{self.prefix}reply/"

    # -- wildcard filters -------------------------------------------------------------------
    @property
    def all(self) -> str:
        """Everything of this robot."""
        return f"{self.prefix}#"

    @property
    def any_status(self) -> str:
        return f"{self.prefix}service/+/status"

    @property
    def any_device_info(self) -> str:
        return f"{self.prefix}device/+/info"

    @property
    def any_device_data(self) -> str:
        return f"{self.prefix}device/+/data"

    @property
    def any_gamepad(self) -> str:
        return f"{self.prefix}input/gamepad/+"

    @property
    def any_input(self) -> str:
        return f"{self.prefix}input/#"

    @property
    def any_log(self) -> str:
        return f"{self.prefix}log/+"

    # -- parser -----------------------------------------------------------------------------
    def parse(self, topic: str) -> ParsedTopic:
        """What ``topic`` is; ``MessageError`` if it is not a topic of this robot's tree."""
        if not topic.startswith(self.prefix):
            raise MessageError(
                f"topic {topic!r} is not under {self.prefix!r}", topic=topic, robot=self.robot
            )
        return _parse_levels(self.robot, topic, topic[len(self.prefix) :].split("/"))


def parse_topic(topic: str) -> ParsedTopic:
    """Like ``Topics.parse`` but for any robot (monitors, field control)."""
    levels = topic.split("/")
    if len(levels) < 3 or levels[0] != ROOT or not _NAME.match(levels[1]):
        raise MessageError(f"topic {topic!r} is not a Runtime topic (runtime/<robot>/...)")
    return _parse_levels(levels[1], topic, levels[2:])


def _parse_levels(robot: str, topic: str, levels: list[str]) -> ParsedTopic:
    """Match the levels below ``runtime/<robot>/`` against the MQTT table."""
    n = len(levels)
    head = levels[0]
    try:
        if head == "service" and n == 3 and levels[2] == "status":
            return ParsedTopic("status", robot, service=check_name(levels[1], "service name"))
        if head == "device" and n == 3 and levels[2] in ("info", "data"):
            kind: TopicKind = "device_info" if levels[2] == "info" else "device_data"
            return ParsedTopic(kind, robot, uid=check_uid(levels[1]))
        if head == "input" and n == 3 and levels[1] == "gamepad":
            return ParsedTopic("gamepad", robot, index=check_index(levels[2]))
        if head == "input" and n == 2 and levels[1] == "keyboard":
            return ParsedTopic("keyboard", robot)
        if head == "match" and n == 1:
            return ParsedTopic("match", robot)
        if head == "field" and n == 2 and levels[1] == "game_state":
            return ParsedTopic("game_state", robot)
        if head == "field" and n == 2 and levels[1] == "presence":
            return ParsedTopic("field_presence", robot)
        if head == "as" and n == 5 and levels[2] == "rpc":
            return ParsedTopic(
                "rpc",
                robot,
                service=check_name(levels[3], "service name"),
                method=check_name(levels[4], "method name"),
                login=check_name(levels[1], "login"),
            )
        if head == "log" and n == 2:
            return ParsedTopic("log", robot, source=check_name(levels[1], "log source"))
        if head == "rpc" and n == 3:
            return ParsedTopic(
                "rpc",
                robot,
                service=check_name(levels[1], "service name"),
                method=check_name(levels[2], "method name"),
            )
        if head == "reply" and n >= 2:
            rest = "/".join(levels[2:]) or None
            return ParsedTopic(
                "reply", robot, client_id=check_name(levels[1], "client id"), rest=rest
            )
    except MessageError as exc:
        raise MessageError(f"topic {topic!r}: {exc.message}", topic=topic) from None
    raise MessageError(
        f"topic {topic!r} is not a Runtime topic (expected service/<name>/status, "
        "device/<uid>/info|data, input/gamepad/<0-3>, input/keyboard, match, field/game_state, "
        "field/presence, log/<source>, "
        "[as/<login>/]rpc/<service>/<method> or reply/<client_id>)",
        topic=topic,
    )
