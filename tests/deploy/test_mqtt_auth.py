"""runtime.mqtt_auth: Mosquitto's hash formats, filter logic and ACL file reading."""

from __future__ import annotations

import base64
import hashlib
import subprocess

import pytest
from runtime.exception import MQTTConnectionError
from runtime.mqtt_auth import (
    AccessList,
    PasswordFile,
    filter_matches,
    filter_within,
    filters_overlap,
    verify_password,
)
from runtime.mqtt_server import EmbeddedBroker

from tests.deploy.conftest import CONFIG_DIR, Credentials


def test_hashes_made_by_mosquitto_passwd_verify(credentials: Credentials) -> None:
    users = PasswordFile(credentials.password_file)
    for account, password in credentials.passwords.items():
        assert users.check(account, password)
        assert not users.check(account, password + "x")
    assert not users.check(None, "")
    assert not users.check("nobody", "x")


def test_the_old_sha512_format_verifies(tmp_path) -> None:
    salt = b"0123456789ab"
    digest = hashlib.sha512(b"pw" + salt).digest()
    stored = f"$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert verify_password("pw", stored)
    assert not verify_password("pW", stored)
    assert not verify_password("pw", "$7$x$y$z")
    assert not verify_password("pw", "plain")


def test_sha512_hashes_from_mosquitto_passwd_verify(tmp_path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", "-H", "sha512", str(path), "old", "pw"],
                   check=True, capture_output=True)
    assert PasswordFile(path).check("old", "pw")


@pytest.mark.parametrize("filter_, topic, expected", [
    ("a/#", "a", True), ("a/#", "a/b/c", True), ("a/+", "a/b", True), ("a/+", "a/b/c", False),
    ("+/b", "a/b", True), ("#", "$SYS/x", False), ("$SYS/#", "$SYS/x", True), ("a", "a/b", False),
])
def test_filter_matches(filter_: str, topic: str, expected: bool) -> None:
    assert filter_matches(filter_, topic) is expected


@pytest.mark.parametrize("inner, outer, within, overlap", [
    ("a/b", "a/#", True, True), ("a/#", "a/#", True, True), ("#", "a/#", False, True),
    ("a/+", "a/b", False, True), ("a/+/c", "a/+/+", True, True), ("a/b", "a/c", False, False),
    ("a/+", "a/+/c", False, False), ("a", "a/#", True, True), ("$SYS/#", "#", False, False),
    ("runtime/r/#", "runtime/+/reply/c1/#", False, True),
])
def test_filter_within_and_overlap(inner: str, outer: str, within: bool, overlap: bool) -> None:
    assert filter_within(inner, outer) is within
    assert filters_overlap(inner, outer) is overlap
    assert filters_overlap(outer, inner) is overlap


def test_the_shipped_acl_reads_as_intended() -> None:
    acl = AccessList.load(CONFIG_DIR / "acl")
    assert set(acl.users) == {"broker", "device", "executor", "gateway", "driver", "field",
                              "monitor", "operator"}
    assert acl.anonymous == []
    assert acl.allows("driver", "d1", "write", "runtime/r/input/gamepad/0")
    assert not acl.allows("driver", "d1", "write", "runtime/r/rpc/device/list")
    # executor requests: each login only on its own as/<login>/ topic; the plain one is the
    # local operator's (docs/deployment.md, Authority)
    assert acl.allows("driver", "d1", "write", "runtime/r/as/driver/rpc/executor/set_mode")
    assert not acl.allows("driver", "d1", "write", "runtime/r/as/field/rpc/executor/set_mode")
    assert not acl.allows("driver", "d1", "write", "runtime/r/rpc/executor/set_mode")
    assert acl.allows("field", "f1", "write", "runtime/r/as/field/rpc/executor/set_mode")
    assert not acl.allows("field", "f1", "write", "runtime/r/as/field/rpc/executor/upload")
    assert acl.allows("field", "f1", "write", "runtime/r/field/presence")
    assert not acl.allows("driver", "d1", "write", "runtime/r/field/presence")
    assert acl.allows("operator", "o1", "write", "runtime/r/rpc/executor/set_mode")
    assert not acl.allows("monitor", "m", "write", "runtime/r/as/monitor/rpc/executor/upload")
    assert acl.allows("field", "f1", "read", "runtime/r/reply/f1/3")
    assert acl.allows("field", "f1", "read", "runtime/r/reply/f1")
    assert not acl.allows("field", "f1", "read", "runtime/r/reply/f2")
    assert not acl.allows("field", "f+", "read", "runtime/r/reply/f+")  # no wildcards via %c
    assert not acl.allows(None, "anon", "read", "runtime/r/match")
    assert not acl.allows("monitor", "m", "write", "runtime/r/match")
    # the gateway speaks for Dawn (driver) and Shepherd (field control), nothing more
    assert acl.allows("gateway", "g", "write", "runtime/r/as/driver/rpc/executor/set_mode")
    assert acl.allows("gateway", "g", "write", "runtime/r/as/field/rpc/executor/set_mode")
    assert acl.allows("gateway", "g", "write", "runtime/r/field/presence")
    assert acl.allows("gateway", "g", "write", "runtime/r/input/gamepad/0")
    assert not acl.allows("gateway", "g", "write", "runtime/r/rpc/executor/set_mode")
    assert not acl.allows("gateway", "g", "write", "runtime/r/as/field/rpc/executor/upload")
    assert not acl.allows("gateway", "g", "write", "runtime/r/match")
    assert acl.allows_subscription("field", "f1", "runtime/r/#")  # filtered per message
    assert not acl.allows_subscription("field", "f1", "runtime/r/device/#")


def test_deny_lines_win(tmp_path) -> None:
    path = tmp_path / "acl"
    path.write_text("topic read a/#\ntopic deny a/secret/#\nuser u\ntopic a/#\n")
    acl = AccessList.load(path)
    assert acl.allows(None, "c", "read", "a/b")
    assert not acl.allows(None, "c", "read", "a/secret/x")
    assert not acl.allows_subscription(None, "c", "a/secret/+")
    assert acl.allows("u", "c", "write", "a/b")  # no access word: readwrite


def test_bad_files_are_one_clear_error(tmp_path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("user u\ntopik read a\n")
    with pytest.raises(MQTTConnectionError, match=r"acl line 2: 'topik read a' is not 'user"):
        AccessList.load(acl)
    with pytest.raises(MQTTConnectionError, match="cannot read MQTT password file"):
        PasswordFile(tmp_path / "missing")


async def test_the_embedded_broker_names_a_bad_file_when_starting(tmp_path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("nonsense\n")
    broker = EmbeddedBroker(acl_file=acl)
    with pytest.raises(MQTTConnectionError, match="line 1: 'nonsense'"):
        await broker.start()
    assert not broker.running
