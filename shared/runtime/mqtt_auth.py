"""Mosquitto's password file and ACL file, enforced by the embedded amqtt broker.

So that ``runtime up`` and ``runtime mqtt-server`` can run with the very files a compose
deployment gives Mosquitto (``broker-config/passwd`` made by ``mosquitto_passwd``, and
``broker-config/acl``). amqtt's own FileAuthPlugin only reads argon2/crypt hashes and its ACL
plugin has no file format, no patterns and no read/write distinction, hence this module:

- ``PasswordFile``: ``user:$7$<iterations>$<salt>$<hash>`` (PBKDF2-SHA512, mosquitto_passwd's
  default) and ``user:$6$<salt>$<hash>`` (SHA512, Mosquitto <= 1.6);
- ``AccessList``: ``user NAME``, ``topic [read|write|readwrite|deny] FILTER`` and
  ``pattern [...] FILTER`` lines with ``%u`` (username) and ``%c`` (client id), as Mosquitto
  reads them; lines before the first ``user`` apply to anonymous clients;
- ``MosquittoFilesPlugin``: the amqtt plugin using both (``EmbeddedBroker(password_file=...,
  acl_file=...)`` configures it).

Behaviour as with Mosquitto 2.0: a refused publish is dropped silently (QoS 1 still acked); a
subscription is accepted if it can match anything the client may read, and each message is
then checked (``runtime.mqtt_server`` makes amqtt check retained messages too, which it does
not by itself); a last will on a topic the client may not write is discarded at login (amqtt
would publish any will unchecked). Differences: a subscription that can match nothing readable
is refused (SUBACK 0x80) where Mosquitto may grant it and deliver nothing; ``$SYS`` does not
exist on the embedded broker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from pathlib import Path

from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from runtime.exception import MQTTConnectionError

log = logging.getLogger(__name__)

ACCESS = {"read": {"read"}, "write": {"write"}, "readwrite": {"read", "write"}, "deny": set()}


# -- topic filters ----------------------------------------------------------------------------
def filter_matches(filter_: str, topic: str) -> bool:
    """MQTT matching of a topic against a filter (``a/#`` also matches ``a``)."""
    want, have = filter_.split("/"), topic.split("/")
    if topic.startswith("$") and want[0] in ("+", "#"):
        return False
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


def filters_overlap(one: str, other: str) -> bool:
    """True if some topic matches both filters."""
    a, b = one.split("/"), other.split("/")
    wild = ("+", "#")
    if (one.startswith("$") and b[0] in wild) or (other.startswith("$") and a[0] in wild):
        return False  # wildcards at the first level never match $SYS topics
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and "+" not in (x, y):
            return False
    return True


def filter_within(inner: str, outer: str) -> bool:
    """True if every topic that ``inner`` matches is also matched by ``outer``."""
    a, b = inner.split("/"), outer.split("/")
    if inner.startswith("$") != outer.startswith("$") and b[0] in ("+", "#"):
        return False
    for i, level in enumerate(b):
        if level == "#":
            return True
        if i >= len(a):
            return False
        if a[i] == "#" or (a[i] == "+" and level != "+"):
            return False
        if level not in ("+", a[i]):
            return False
    return len(a) == len(b)


# -- password file ----------------------------------------------------------------------------
def _b64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against a Mosquitto hash (``$7$`` PBKDF2-SHA512 or ``$6$`` SHA512)."""
    parts = stored.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            iterations, salt, digest = int(parts[2]), _b64(parts[3]), _b64(parts[4])
            computed = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
        elif len(parts) == 4 and parts[1] == "6":
            salt, digest = _b64(parts[2]), _b64(parts[3])
            computed = hashlib.sha512(password.encode() + salt).digest()
        else:
            return False
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(computed, digest)


class PasswordFile:
    """The users of a Mosquitto password file (hashes only; read once)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.users: dict[str, str] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise MQTTConnectionError(
                f"cannot read MQTT password file {self.path}: {exc.strerror}", path=str(self.path)
            ) from None
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, stored = line.partition(":")
            if not sep or not user or not stored.startswith(("$7$", "$6$")):
                raise MQTTConnectionError(
                    f"MQTT password file {self.path} line {number}: expected user:$7$... "
                    "(a hash made by mosquitto_passwd), not plain text",
                    path=str(self.path), line=number,
                )
            self.users[user] = stored

    def check(self, username: str | None, password: str | None) -> bool:
        stored = self.users.get(username or "")
        return stored is not None and verify_password(password or "", stored)


# -- ACL file ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    access: frozenset[str]  # subset of {"read", "write"}; empty means deny
    filter: str


@dataclass
class AccessList:
    """A Mosquitto ACL file: rules per user, anonymous rules, and patterns for everyone."""

    anonymous: list[Rule] = field(default_factory=list)
    users: dict[str, list[Rule]] = field(default_factory=dict)
    patterns: list[Rule] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> AccessList:
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise MQTTConnectionError(
                f"cannot read MQTT ACL file {path}: {exc.strerror}", path=str(path)
            ) from None
        acl = cls()
        current = acl.anonymous
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword, _, rest = line.partition(" ")
            rest = rest.strip()
            if keyword == "user" and rest:
                current = acl.users.setdefault(rest, [])
                continue
            if keyword in ("topic", "pattern") and rest:
                access, _, topic = rest.partition(" ")
                if access not in ACCESS or not topic.strip():
                    access, topic = "readwrite", rest
                rule = Rule(frozenset(ACCESS[access]), topic.strip())
                (acl.patterns if keyword == "pattern" else current).append(rule)
                continue
            raise MQTTConnectionError(
                f"MQTT ACL file {path} line {number}: {line!r} is not "
                "'user NAME', 'topic [read|write|readwrite|deny] FILTER' or 'pattern ...'",
                path=str(path), line=number,
            )
        return acl

    def rules_for(self, username: str | None, client_id: str | None) -> list[Rule]:
        """The user's rules plus the patterns, with %u and %c filled in."""
        rules = list(self.users.get(username, []) if username else self.anonymous)
        for pattern in self.patterns:
            text = pattern.filter
            if "%u" in text:
                if not username or any(c in username for c in "+#/"):
                    continue
                text = text.replace("%u", username)
            if "%c" in text:
                if not client_id or any(c in client_id for c in "+#/"):
                    continue
                text = text.replace("%c", client_id)
            rules.append(Rule(pattern.access, text))
        return rules

    def allows(self, username: str | None, client_id: str | None, access: str,
               topic: str) -> bool:
        """May this client ``access`` ("read"/"write") the topic ``topic``?"""
        allowed = False
        for rule in self.rules_for(username, client_id):
            if filter_matches(rule.filter, topic):
                if not rule.access:
                    return False  # deny wins
                allowed = allowed or access in rule.access
        return allowed

    def allows_subscription(self, username: str | None, client_id: str | None,
                            filter_: str) -> bool:
        """Can ``filter_`` match anything readable (and is it not wholly denied)?

        Messages are checked one by one on delivery (``allows(..., "read", topic)``).
        """
        rules = self.rules_for(username, client_id)
        if any(not rule.access and filter_within(filter_, rule.filter) for rule in rules):
            return False
        return any("read" in rule.access and filters_overlap(filter_, rule.filter)
                   for rule in rules)


# -- the amqtt plugin -------------------------------------------------------------------------
class MosquittoFilesPlugin(BaseAuthPlugin, BaseTopicPlugin):
    """amqtt plugin: log in against a Mosquitto password file, obey a Mosquitto ACL file.

    Without ``password_file`` every client is admitted (under the name it gives); without
    ``acl_file`` every topic is open.
    """

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        config = self.context.config
        password_file = getattr(config, "password_file", None)
        acl_file = getattr(config, "acl_file", None)
        self.passwords = PasswordFile(password_file) if password_file else None
        self.acl = AccessList.load(acl_file) if acl_file else None

    async def authenticate(self, *, session: Session) -> bool | None:
        if self.passwords is not None and not self.passwords.check(session.username,
                                                                   session.password):
            log.info("refused MQTT login of %r (client %s): bad user name or password",
                     session.username, session.client_id)
            return False
        will_topic = session.will_topic if session.will_flag else None
        if self.acl is not None and will_topic and not self.acl.allows(
            session.username, session.client_id, "write", will_topic
        ):
            log.info("MQTT client %s (%r) may not publish its last will on %s: will discarded",
                     session.client_id, session.username, will_topic)
            session.will_flag = False
            session.will_retain = False
        return True

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool | None:
        if self.acl is None:
            return True
        if session is None or not topic:
            return False
        username, client_id = session.username, session.client_id
        if action == Action.SUBSCRIBE:
            allowed = self.acl.allows_subscription(username, client_id, topic)
        else:
            access = "write" if action == Action.PUBLISH else "read"
            allowed = self.acl.allows(username, client_id, access, topic)
        if not allowed:
            log.debug("ACL: %r (client %s) may not %s %s", username, client_id, action, topic)
        return allowed

    @dataclass
    class Config:
        """Paths of the Mosquitto files (None: no check of that kind)."""

        password_file: str | None = None
        acl_file: str | None = None
