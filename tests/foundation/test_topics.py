"""Topic builders and the parser of the ``runtime/<robot>/...`` tree."""

import pytest
from runtime.exception import MessageError
from runtime.topics import ParsedTopic, Topics, parse_topic

T = Topics("bot1")


def test_builders_follow_the_mqtt_table():
    assert T.status("device") == "runtime/bot1/service/device/status"
    assert T.device_info(123456789) == "runtime/bot1/device/123456789/info"
    assert T.device_data("42") == "runtime/bot1/device/42/data"
    assert T.gamepad(3) == "runtime/bot1/input/gamepad/3"
    assert T.keyboard == "runtime/bot1/input/keyboard"
    assert T.match == "runtime/bot1/match"
    assert T.log("student") == "runtime/bot1/log/student"
    assert T.rpc("executor", "set_mode") == "runtime/bot1/rpc/executor/set_mode"
    assert T.reply("cli-1") == "runtime/bot1/reply/cli-1"


def test_wildcard_filters():
    assert T.all == "runtime/bot1/#"
    assert T.rpc_filter("device") == "runtime/bot1/rpc/device/+"
    assert T.reply_filter("c1") == "runtime/bot1/reply/c1/#"
    assert T.any_status == "runtime/bot1/service/+/status"
    assert T.any_device_info == "runtime/bot1/device/+/info"
    assert T.any_device_data == "runtime/bot1/device/+/data"
    assert T.any_gamepad == "runtime/bot1/input/gamepad/+"
    assert T.any_log == "runtime/bot1/log/+"


@pytest.mark.parametrize("robot", ["", "a/b", "+", "#", "a b", "robot#1"])
def test_robot_names_with_wildcards_or_slashes_are_refused(robot):
    with pytest.raises(MessageError, match="invalid robot name"):
        Topics(robot)


@pytest.mark.parametrize(
    ("build", "what"),
    [
        (lambda: T.status("a/b"), "service name"),
        (lambda: T.log("+"), "log source"),
        (lambda: T.rpc("device", "#"), "method name"),
        (lambda: T.reply("c/1"), "client id"),
        (lambda: T.device_info("12a"), "device uid"),
        (lambda: T.device_data("+"), "device uid"),
        (lambda: T.gamepad(4), "gamepad index"),
        (lambda: T.gamepad(-1), "gamepad index"),
        (lambda: T.gamepad(True), "gamepad index"),
    ],
)
def test_builders_refuse_bad_names(build, what):
    with pytest.raises(MessageError, match=what):
        build()


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("runtime/bot1/service/device/status", ParsedTopic("status", "bot1", service="device")),
        ("runtime/bot1/device/77/info", ParsedTopic("device_info", "bot1", uid="77")),
        ("runtime/bot1/device/77/data", ParsedTopic("device_data", "bot1", uid="77")),
        ("runtime/bot1/input/gamepad/2", ParsedTopic("gamepad", "bot1", index=2)),
        ("runtime/bot1/input/keyboard", ParsedTopic("keyboard", "bot1")),
        ("runtime/bot1/match", ParsedTopic("match", "bot1")),
        ("runtime/bot1/log/student", ParsedTopic("log", "bot1", source="student")),
        (
            "runtime/bot1/rpc/device/ping",
            ParsedTopic("rpc", "bot1", service="device", method="ping"),
        ),
        (
            "runtime/bot1/as/field/rpc/executor/set_mode",
            ParsedTopic("rpc", "bot1", service="executor", method="set_mode", login="field"),
        ),
        ("runtime/bot1/field/presence", ParsedTopic("field_presence", "bot1")),
        ("runtime/bot1/reply/c1", ParsedTopic("reply", "bot1", client_id="c1")),
        ("runtime/bot1/reply/c1/x/y", ParsedTopic("reply", "bot1", client_id="c1", rest="x/y")),
    ],
)
def test_parse_gives_kind_and_fields(topic, expected):
    assert T.parse(topic) == expected
    assert parse_topic(topic) == expected


def test_parse_inverts_every_builder():
    built = [T.status("broker"), T.device_info(5), T.device_data(5), T.gamepad(0), T.keyboard,
             T.match, T.log("device"), T.rpc("broker", "lint"), T.reply("x"),
             T.rpc_as("driver", "executor", "set_mode"), T.field_presence, T.game_state]
    kinds = [T.parse(topic).kind for topic in built]
    assert kinds == ["status", "device_info", "device_data", "gamepad", "keyboard", "match",
                     "log", "rpc", "reply", "rpc", "field_presence", "game_state"]


@pytest.mark.parametrize(
    "topic",
    [
        "runtime/other/match",  # another robot
        "elsewhere/bot1/match",
        "runtime/bot1/unknown",
        "runtime/bot1/device/abc/info",
        "runtime/bot1/device/12/other",
        "runtime/bot1/input/gamepad/9",
        "runtime/bot1/rpc/device",
        "runtime/bot1/as/driver/rpc/executor",
        "runtime/bot1/as/driver/set_mode/executor/x",
        "runtime/bot1/service/x/status/extra",
        "runtime/bot1/",
    ],
)
def test_parse_refuses_foreign_topics(topic):
    with pytest.raises(MessageError, match="topic"):
        T.parse(topic)


def test_parse_topic_accepts_any_robot_but_not_other_trees():
    assert parse_topic("runtime/zeta/match").robot == "zeta"
    with pytest.raises(MessageError, match="not a Runtime topic"):
        parse_topic("homeassistant/light/1")
